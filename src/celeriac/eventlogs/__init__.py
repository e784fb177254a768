"""Event logs: where workers' events travel, one module per technology.

An event log is an append-only, bounded sequence of encoded events that any number of
readers follow, each from its own cursor. It lives beside the broker (a Redis stream, a
table in the broker's SQLite file or PostgreSQL database, a RabbitMQ stream queue, or memory),
so events travel on every broker. See :mod:`celeriac.eventlogs.base`.
"""

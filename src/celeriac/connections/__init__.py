"""The drivers: connections to Redis, RabbitMQ, PostgreSQL and SQLite (and the in-process
store of ``memory://``), shared by the brokers, result backends and the database schedule.
Driver errors are translated here into :class:`~celeriac.exceptions.OperationalError`."""

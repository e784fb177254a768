"""The systems under test, by name."""

from __future__ import annotations

from systems.base import NotAvailable, System

PEERS = ["celery", "dramatiq", "rq", "huey", "arq", "taskiq", "saq", "streaq"]
CELERIAC_BROKERS = ["sqlite", "amqp", "postgres"]
#: the rabbitmq workload's systems: celeriac (confirmed, its default, then unconfirmed) and
#: Celery (unconfirmed, its default, then confirmed) on RabbitMQ
RABBITMQ = ["celeriac-amqp", "celeriac-amqp-unconfirmed", "celery-amqp", "celery-amqp-confirm"]
#: systems the rabbitmq workload measures publishing only (their worker is another's)
PUBLISH_ONLY = ["celeriac-amqp-unconfirmed"]
#: the postgres workload's systems: celeriac and the task queues built on PostgreSQL alone
POSTGRES = ["celeriac-postgres", "pgqueuer", "procrastinate"]


def make(name: str) -> System:
    """``celeriac``, ``celeriac-<broker>`` or a peer's name."""
    if name.startswith("celeriac"):
        from systems.celeriac import Celeriac

        return Celeriac(name.partition("-")[2] or "redis")
    if name.startswith("celery-amqp"):
        from systems.celery_amqp import CeleryAMQP

        return CeleryAMQP(name)
    if name == "celery":
        from systems.celery import CelerySystem

        return CelerySystem()
    if name == "dramatiq":
        from systems.dramatiq import Dramatiq

        return Dramatiq()
    if name == "rq":
        from systems.rq import RQ

        return RQ()
    if name == "huey":
        from systems.huey import Huey

        return Huey()
    if name == "arq":
        from systems.arq import Arq

        return Arq()
    if name == "taskiq":
        from systems.taskiq import Taskiq

        return Taskiq()
    if name == "saq":
        from systems.saq import Saq

        return Saq()
    if name == "streaq":
        from systems.streaq import Streaq

        return Streaq()
    if name == "pgqueuer":
        from systems.pgqueuer import PgQueuer

        return PgQueuer()
    if name == "procrastinate":
        from systems.procrastinate import Procrastinate

        return Procrastinate()
    raise KeyError(f"unknown system {name!r}")


__all__ = ["CELERIAC_BROKERS", "PEERS", "POSTGRES", "RABBITMQ", "NotAvailable", "System", "make"]

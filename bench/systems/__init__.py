"""The systems under test, by name."""

from __future__ import annotations

from systems.base import NotAvailable, System

PEERS = ["celery", "dramatiq", "rq", "huey", "arq", "taskiq"]
CELERIAC_BROKERS = ["sqlite", "amqp", "postgres"]


def make(name: str) -> System:
    """``celeriac``, ``celeriac-<broker>`` or a peer's name."""
    if name.startswith("celeriac"):
        from systems.celeriac import Celeriac

        return Celeriac(name.partition("-")[2] or "redis")
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
    raise KeyError(f"unknown system {name!r}")


__all__ = ["CELERIAC_BROKERS", "PEERS", "NotAvailable", "System", "make"]

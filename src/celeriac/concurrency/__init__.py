"""Celery's ``celery.concurrency``: the pool classes by their ``-P`` names."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..exceptions import ImproperlyConfigured

if TYPE_CHECKING:
    from ..worker.pools import Pool


def get_implementation(name: str) -> type[Pool]:
    """The pool class that ``-P name`` runs: ``prefork``/``processes``, ``threads``,
    ``asyncio``, ``solo``; ``gevent`` and ``eventlet`` run on the threads pool here.
    ImproperlyConfigured for any other name."""
    from ..worker.worker import GREEN_POOLS, POOLS  # the worker layer, only when asked

    pool = POOLS.get("threads" if name in GREEN_POOLS else name)
    if pool is None:
        raise ImproperlyConfigured(
            f"unknown pool {name!r}: celeriac has {', '.join([*POOLS, *GREEN_POOLS])}"
        )
    return pool

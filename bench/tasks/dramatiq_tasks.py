"""Dramatiq's benchmark actors (Redis broker; Results middleware for ``echo`` only)."""

from __future__ import annotations

import time

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.results import Results
from dramatiq.results.backends import RedisBackend

import common
from systems.dramatiq import URL

broker = RedisBroker(url=URL)
broker.add_middleware(Results(backend=RedisBackend(url=URL)))
dramatiq.set_broker(broker)

COUNTER = common.counter_client()
DONE = common.done_key()
STAMPS = common.stamps_key()


@dramatiq.actor
def incr(i: int) -> None:
    COUNTER.incr(DONE)


@dramatiq.actor
def stamp(sent: float) -> None:
    COUNTER.rpush(STAMPS, time.time() - sent)


@dramatiq.actor(store_results=True)
def echo(i: int) -> int:
    return i

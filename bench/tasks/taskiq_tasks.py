"""Taskiq's benchmark tasks on taskiq-redis's ListQueueBroker.

A result backend is attached only in the processes of the results workload
(BENCH_RESULTS=1): with one, taskiq stores every task's result.
"""

from __future__ import annotations

import asyncio
import time

from taskiq_redis import ListQueueBroker, RedisAsyncResultBackend

import common
from systems.taskiq import URL

broker = ListQueueBroker(url=URL)
if common.results_enabled():
    broker = broker.with_result_backend(RedisAsyncResultBackend(redis_url=URL))

COUNTER = common.async_counter_client()
DONE = common.done_key()
STAMPS = common.stamps_key()


@broker.task
async def incr(i: int) -> None:
    await COUNTER.incr(DONE)


@broker.task
async def asleep(i: int) -> None:
    await asyncio.sleep(common.ASYNCIO_SLEEP)
    await COUNTER.incr(DONE)


@broker.task
async def stamp(sent: float) -> None:
    now = time.time()
    await COUNTER.rpush(STAMPS, now - sent)


@broker.task
async def echo(i: int) -> int:
    return i

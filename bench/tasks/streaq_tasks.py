"""streaq's benchmark tasks and worker (``streaq run tasks.streaq_tasks:worker``).

The worker's concurrency comes from BENCH_CONCURRENCY (2 unless the workload says otherwise).
``ttl=0`` keeps no result for the tasks whose result nobody reads; ``silent=True`` turns
off the two log lines per task streaq's CLI writes at INFO level (the other systems run
with their per-task logging off too).
"""

from __future__ import annotations

import asyncio
import os
import time

from streaq import Worker

import common
from systems.streaq import URL

worker = Worker(redis_url=URL, concurrency=int(os.environ.get("BENCH_CONCURRENCY", "2")))

COUNTER = common.async_counter_client()
DONE = common.done_key()
STAMPS = common.stamps_key()


@worker.task(ttl=0, silent=True)
async def incr(i: int) -> None:
    await COUNTER.incr(DONE)


@worker.task(ttl=0, silent=True)
async def asleep(i: int) -> None:
    await asyncio.sleep(common.ASYNCIO_SLEEP)
    await COUNTER.incr(DONE)


@worker.task(ttl=0, silent=True)
async def stamp(sent: float) -> None:
    now = time.time()
    await COUNTER.rpush(STAMPS, now - sent)


@worker.task(silent=True)
async def echo(i: int) -> int:
    return i

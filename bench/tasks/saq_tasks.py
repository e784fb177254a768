"""SAQ's benchmark jobs and worker settings (``saq tasks.saq_tasks.settings``).

The worker's concurrency comes from BENCH_CONCURRENCY (2 unless the workload says otherwise).
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import common
from systems.saq import make_queue

COUNTER = common.async_counter_client()
DONE = common.done_key()
STAMPS = common.stamps_key()


async def incr(ctx: dict[str, Any], *, i: int) -> None:
    await COUNTER.incr(DONE)


async def asleep(ctx: dict[str, Any], *, i: int) -> None:
    await asyncio.sleep(common.ASYNCIO_SLEEP)
    await COUNTER.incr(DONE)


async def stamp(ctx: dict[str, Any], *, sent: float) -> None:
    now = time.time()
    await COUNTER.rpush(STAMPS, now - sent)


async def echo(ctx: dict[str, Any], *, i: int) -> int:
    return i


CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "2"))
settings = {
    "queue": make_queue(CONCURRENCY),
    "functions": [incr, asleep, stamp, echo],
    "concurrency": CONCURRENCY,
}

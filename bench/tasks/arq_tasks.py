"""arq's benchmark jobs and worker settings."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from arq import func

import common
from systems.arq import SETTINGS

COUNTER = common.async_counter_client()
DONE = common.done_key()
STAMPS = common.stamps_key()


async def incr(ctx: dict[str, Any], i: int) -> None:
    await COUNTER.incr(DONE)


async def asleep(ctx: dict[str, Any], i: int) -> None:
    await asyncio.sleep(common.ASYNCIO_SLEEP)
    await COUNTER.incr(DONE)


async def stamp(ctx: dict[str, Any], sent: float) -> None:
    now = time.time()
    await COUNTER.rpush(STAMPS, now - sent)


async def echo(ctx: dict[str, Any], i: int) -> int:
    return i


class WorkerSettings:
    # keep_result=0: no result is stored for the jobs whose result nobody reads.
    functions = [
        func(incr, keep_result=0),
        func(asleep, keep_result=0),
        func(stamp, keep_result=0),
        echo,
    ]
    redis_settings = SETTINGS["redis_settings"]
    # 2 unless the workload says otherwise (the asyncio workload: 500)
    max_jobs = int(os.environ.get("BENCH_CONCURRENCY", SETTINGS["max_jobs"]))
    poll_delay = SETTINGS["poll_delay"]

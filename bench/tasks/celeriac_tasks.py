"""celeriac's benchmark tasks; the broker URL comes from BENCH_CELERIAC_BROKER."""

from __future__ import annotations

import os
import time
from typing import Any

from celeriac import Celery

import common
from systems.celeriac import SETTINGS

app = Celery("bench", broker=os.environ.get("BENCH_CELERIAC_BROKER", common.redis_url(3)))
app.conf.update(SETTINGS)
if os.environ.get("BENCH_CELERIAC_EVENTS"):  # the events workload: every event on
    app.conf.worker_send_task_events = True
    app.conf.task_send_sent_event = True

COUNTER = common.counter_client()
ACOUNTER: Any = None  # made by the first aincr: only the asyncio pool's workload needs it
DONE = common.done_key()
STAMPS = common.stamps_key()


@app.task
def incr(i: int) -> None:
    COUNTER.incr(DONE)


@app.task
async def aincr(i: int) -> None:
    global ACOUNTER
    if ACOUNTER is None:
        import redis.asyncio

        ACOUNTER = redis.asyncio.Redis(
            host=common.REDIS_HOST, port=common.REDIS_PORT, db=common.COUNTER_DB
        )
    await ACOUNTER.incr(DONE)


@app.task
def stamp(sent: float) -> None:
    COUNTER.rpush(STAMPS, time.time() - sent)


@app.task(ignore_result=False)
def echo(i: int) -> int:
    return i

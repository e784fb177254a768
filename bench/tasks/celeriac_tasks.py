"""celeriac's benchmark tasks; the broker URL comes from BENCH_CELERIAC_BROKER."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from celeriac import Celery

import common
from systems.celeriac import SETTINGS

app = Celery("bench", broker=os.environ.get("BENCH_CELERIAC_BROKER", common.redis_url(3)))
app.conf.update(SETTINGS)
if os.environ.get("BENCH_CELERIAC_UNCONFIRMED"):  # celeriac-amqp-unconfirmed
    app.conf.broker_transport_options = {"confirm_publish": False}
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


def _acounter() -> Any:
    global ACOUNTER
    if ACOUNTER is None:
        ACOUNTER = common.async_counter_client()
    return ACOUNTER


@app.task
async def aincr(i: int) -> None:
    await _acounter().incr(DONE)


@app.task
async def asleep(i: int) -> None:
    """The asyncio workload's task: a sleep, then the count."""
    await asyncio.sleep(common.ASYNCIO_SLEEP)
    await _acounter().incr(DONE)


# the scale-out workload's task: sets its argument's bit, counts the run and the runs of its
# process; a run whose bit was already set counts as a task run twice. One round trip, as
# incr's INCR.
MARK = COUNTER.register_script(
    "if redis.call('SETBIT', KEYS[1], ARGV[1], 1) == 1 then redis.call('INCR', KEYS[3]) end "
    "redis.call('HINCRBY', KEYS[4], ARGV[2], 1) "
    "return redis.call('INCR', KEYS[2])"
)
MARK_KEYS = [common.seen_key(), DONE, common.twice_key(), common.shares_key()]


@app.task
def mark(i: int) -> None:
    MARK(keys=MARK_KEYS, args=[i, os.getpid()])


@app.task
def stamp(sent: float) -> None:
    COUNTER.rpush(STAMPS, time.time() - sent)


@app.task(ignore_result=False)
def echo(i: int) -> int:
    return i

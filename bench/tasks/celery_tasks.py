"""Celery's benchmark tasks (Redis broker, Redis result backend for ``echo`` only)."""

from __future__ import annotations

import time

from celery import Celery

import common
from systems.celery import SETTINGS

app = Celery("bench")
app.conf.update(SETTINGS)

COUNTER = common.counter_client()
DONE = common.done_key()
STAMPS = common.stamps_key()


@app.task(ignore_result=True)
def incr(i: int) -> None:
    COUNTER.incr(DONE)


@app.task(ignore_result=True)
def stamp(sent: float) -> None:
    COUNTER.rpush(STAMPS, time.time() - sent)


@app.task
def echo(i: int) -> int:
    return i

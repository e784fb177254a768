"""Celery's benchmark tasks on RabbitMQ; which variant (``celery-amqp`` or
``celery-amqp-confirm``) comes from BENCH_TAG, set by the orchestrator."""

from __future__ import annotations

import os
import time

from celery import Celery

import common
from systems.celery_amqp import NAMES, settings

NAME = common.tag() if common.tag() in NAMES else NAMES[0]

app = Celery("bench")
app.conf.update(settings(NAME, fallback=bool(os.environ.get("BENCH_CELERY_AMQP_FALLBACK"))))

COUNTER = common.counter_client()
DONE = common.done_key()
STAMPS = common.stamps_key()


@app.task
def incr(i: int) -> None:
    COUNTER.incr(DONE)


@app.task
def stamp(sent: float) -> None:
    COUNTER.rpush(STAMPS, time.time() - sent)

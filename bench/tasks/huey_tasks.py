"""Huey's benchmark tasks on Redis storage."""

from __future__ import annotations

import time

from huey import RedisHuey

import common
from systems.huey import URL

# notify_result: a waiting result(blocking=True) is woken by the worker instead of
# polling with back-off. Only ``echo`` returns a value, so only it stores a result.
huey = RedisHuey("bench", url=URL, notify_result=True)

COUNTER = common.counter_client()
DONE = common.done_key()
STAMPS = common.stamps_key()


@huey.task()
def incr(i: int) -> None:
    COUNTER.incr(DONE)


@huey.task()
def stamp(sent: float) -> None:
    COUNTER.rpush(STAMPS, time.time() - sent)


@huey.task()
def echo(i: int) -> int:
    return i

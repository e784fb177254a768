"""RQ's benchmark jobs: plain functions, found by the worker by their dotted names."""

from __future__ import annotations

import time

import common

COUNTER = common.counter_client()
DONE = common.done_key()
STAMPS = common.stamps_key()


def incr(i: int) -> None:
    COUNTER.incr(DONE)


def stamp(sent: float) -> None:
    COUNTER.rpush(STAMPS, time.time() - sent)


def echo(i: int) -> int:
    return i

"""Procrastinate's benchmark tasks (async, so the worker runs them on its event loop)."""

from __future__ import annotations

import time

import redis.asyncio
from procrastinate import App, PsycopgConnector

import common
from systems.procrastinate import URL

app = App(connector=PsycopgConnector(conninfo=URL))

COUNTER = redis.asyncio.Redis(host=common.REDIS_HOST, port=common.REDIS_PORT, db=common.COUNTER_DB)
DONE = common.done_key()
STAMPS = common.stamps_key()


@app.task(name="incr")
async def incr(i: int) -> None:
    await COUNTER.incr(DONE)


@app.task(name="stamp")
async def stamp(sent: float) -> None:
    now = time.time()
    await COUNTER.rpush(STAMPS, now - sent)

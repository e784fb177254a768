"""PgQueuer's benchmark jobs, and its worker: ``python -m tasks.pgqueuer_tasks BATCH CAP``.

The worker is started the way ``pgq run tasks.pgqueuer_tasks:create`` starts it (PgQueuer's
``run()`` on uvloop), from Python: ``pgq run`` fails at start-up with the installed Typer.
The schema comes from PGQUEUER_SCHEMA, set by systems/pgqueuer.py.
"""

from __future__ import annotations

import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import redis.asyncio
from pgqueuer import PgQueuer
from pgqueuer.models import Job

import common
from systems.postgres import DSN

COUNTER = redis.asyncio.Redis(host=common.REDIS_HOST, port=common.REDIS_PORT, db=common.COUNTER_DB)
DONE = common.done_key()
STAMPS = common.stamps_key()


@asynccontextmanager
async def create() -> AsyncIterator[PgQueuer]:
    """The worker on one asyncpg connection, as PgQueuer's docs advise for its manager."""
    conn = await asyncpg.connect(DSN)
    try:
        pgq = PgQueuer.from_asyncpg_connection(conn)

        @pgq.entrypoint("incr")
        async def incr(job: Job) -> None:
            await COUNTER.incr(DONE)

        @pgq.entrypoint("stamp")
        async def stamp(job: Job) -> None:
            now = time.time()
            await COUNTER.rpush(STAMPS, now - float(job.payload or b"0"))

        yield pgq
    finally:
        await conn.close()


def work(batch_size: int, max_concurrent_tasks: int) -> None:
    """What ``pgq run --batch-size B --max-concurrent-tasks C`` does."""
    import pgqueuer
    import uvloop
    from pgqueuer.core.logconfig import LogLevel, setup_fancy_logger

    setup_fancy_logger(LogLevel.WARNING)
    uvloop.run(
        pgqueuer.run(create, batch_size=batch_size, max_concurrent_tasks=max_concurrent_tasks)
    )


if __name__ == "__main__":
    work(int(sys.argv[1]), int(sys.argv[2]))

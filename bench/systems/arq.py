"""arq: one asyncio worker process running up to two jobs at once."""

from __future__ import annotations

from typing import Any

from arq.connections import RedisSettings

import common
from systems.base import BIN, AsyncSystem, NotAvailable

SETTINGS: dict[str, Any] = {
    # arq's own pool: redis-py's asyncio pool fails a command beyond 100 connections, fewer
    # than the asyncio workload's 500 jobs finishing at once
    "redis_settings": RedisSettings(
        host=common.REDIS_HOST,
        port=common.REDIS_PORT,
        database=common.DB["arq"],
        max_connections=1_000,
    ),
    "max_jobs": 2,
    # arq polls its queue (no blocking pop); the default pause between polls is 0.5 s
    "poll_delay": 0.005,
}


class Arq(AsyncSystem):
    name = "arq"
    label = "arq"
    dist = "arq"
    concurrency_note = "one process, max_jobs=2"
    asyncio = True

    def config(self) -> dict[str, Any]:
        return {
            "broker": common.redis_url(common.DB["arq"]),
            "settings": {"max_jobs": 2, "poll_delay": "0.005 s (the default is 0.5 s)"},
            "results": "keep_result=0 for the jobs whose result is not read; the results "
            "workload waits with job.result() (polls every 0.5 s, the default)",
            "worker": " ".join(self.worker_command()[1:]),
            "concurrency": self.concurrency_note,
            "bulk": "n/a: arq has no batch API",
        }

    def worker_command(
        self, concurrency: int = 2, pool: str | None = None, results: bool = False
    ) -> list[str]:
        return [str(BIN / "arq"), "tasks.arq_tasks.WorkerSettings"]

    async def _pool(self) -> Any:
        if getattr(self, "_redis", None) is None:
            from arq import create_pool

            self._redis = await create_pool(SETTINGS["redis_settings"])
        return self._redis

    async def send_task(self, task: str, i: int) -> Any:
        return await (await self._pool()).enqueue_job(task, i)

    async def send_incr(self, i: int) -> Any:
        return await (await self._pool()).enqueue_job("incr", i)

    async def send_stamp(self, sent: float) -> Any:
        return await (await self._pool()).enqueue_job("stamp", sent)

    def round_tripper(self) -> Any:
        async def trip(i: int) -> Any:
            job = await (await self._pool()).enqueue_job("echo", i)
            return await job.result(timeout=30)

        return lambda i: self.run(trip(i))

    def send_batch(self, n: int) -> None:
        raise NotAvailable("arq has no batch API")

"""streaq on Redis streams: one worker process, an anyio loop running up to
``concurrency`` tasks at once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import common
from systems.base import BIN, AsyncSystem

URL = common.redis_url(common.DB["streaq"])


class Streaq(AsyncSystem):
    name = "streaq"
    label = "streaq"
    dist = "streaq"
    concurrency_note = "one process, Worker(concurrency=2) (tasks at once on its event loop)"
    asyncio = True

    def config(self) -> dict[str, Any]:
        return {
            "broker": f"Worker(redis_url={URL})",
            "settings": {
                "concurrency": "2 (BENCH_CONCURRENCY; 500 in the asyncio workload)",
                "prefetch": "the default (as many as concurrency, beyond those running)",
            },
            "results": "ttl=0 (no result kept) for the tasks whose result is not read; the "
            "results workload waits with task.result(timeout=30) (Redis pub/sub); "
            "silent=True on every task (no log line per task)",
            "worker": " ".join(self.worker_command()[1:]),
            "concurrency": self.concurrency_note,
            "bulk": "Worker.enqueue_many (one Redis pipeline)",
        }

    def worker_command(
        self, concurrency: int = 2, pool: str | None = None, results: bool = False
    ) -> list[str]:
        return [str(BIN / "streaq"), "run", "tasks.streaq_tasks:worker"]

    async def _tasks(self) -> Any:
        from tasks import streaq_tasks

        if not getattr(self, "_entered", False):
            await streaq_tasks.worker.__aenter__()  # connects; the producer exits without leaving
            self._entered = True
        return streaq_tasks

    async def send_task(self, task: str, i: int) -> Any:
        return await getattr(await self._tasks(), task).enqueue(i)

    async def send_incr(self, i: int) -> Any:
        return await (await self._tasks()).incr.enqueue(i)

    async def send_stamp(self, sent: float) -> Any:
        return await (await self._tasks()).stamp.enqueue(sent)

    def round_tripper(self) -> Callable[[int], Any]:
        async def trip(i: int) -> Any:
            task = await (await self._tasks()).echo.enqueue(i)
            return (await task.result(timeout=30)).result

        return lambda i: self.run(trip(i))

    def send_batch(self, n: int) -> None:
        self.fill(n)

    def fill(self, n: int, task: str = "incr") -> None:
        """``n`` tasks named ``task`` in one ``enqueue_many`` (one pipeline)."""

        async def batch() -> None:
            tasks = await self._tasks()
            registered = getattr(tasks, task)
            await tasks.worker.enqueue_many([registered.enqueue(i) for i in range(n)])

        self.run(batch())

"""Taskiq with taskiq-redis's ListQueueBroker; one worker process, two tasks at once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import common
from systems.base import BIN, AsyncSystem, NotAvailable

URL = common.redis_url(common.DB["taskiq"])


class Taskiq(AsyncSystem):
    name = "taskiq"
    label = "Taskiq"
    dist = "taskiq"
    concurrency_note = "--workers 1 --max-async-tasks 2 (a parent and one worker process)"
    asyncio = True

    def config(self) -> dict[str, Any]:
        return {
            "broker": f"ListQueueBroker({URL})",
            "results": "RedisAsyncResultBackend attached only for the results workload, "
            "which waits with wait_result() (checks every 0.2 s, the default)",
            "worker": " ".join(self.worker_command()[1:]),
            "concurrency": self.concurrency_note,
            "bulk": "n/a: taskiq has no batch API",
        }

    def worker_command(
        self, concurrency: int = 2, pool: str | None = None, results: bool = False
    ) -> list[str]:
        return [
            str(BIN / "taskiq"), "worker", "tasks.taskiq_tasks:broker",
            "--workers", "1", "--max-async-tasks", str(concurrency),
        ]  # fmt: skip

    async def _started(self) -> Any:
        from tasks import taskiq_tasks

        if not getattr(self, "_up", False):
            await taskiq_tasks.broker.startup()
            self._up = True
        return taskiq_tasks

    async def send_task(self, task: str, i: int) -> Any:
        return await getattr(await self._started(), task).kiq(i)

    async def send_incr(self, i: int) -> Any:
        return await (await self._started()).incr.kiq(i)

    async def send_stamp(self, sent: float) -> Any:
        return await (await self._started()).stamp.kiq(sent)

    def round_tripper(self) -> Callable[[int], Any]:
        async def trip(i: int) -> Any:
            task = await (await self._started()).echo.kiq(i)
            result = await task.wait_result(timeout=30)
            return result.return_value

        return lambda i: self.run(trip(i))

    def send_batch(self, n: int) -> None:
        raise NotAvailable("taskiq has no batch API")

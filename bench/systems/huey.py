"""Huey with Redis storage; a consumer with two worker threads."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import common
from systems.base import BIN, System

URL = common.redis_url(common.DB["huey"])


class Huey(System):
    name = "huey"
    label = "Huey"
    dist = "huey"
    concurrency_note = "one consumer process, -w 2 -k thread (the tasks wait on I/O)"

    def config(self) -> dict[str, Any]:
        return {
            "storage": f"RedisHuey(url={URL}, notify_result=True) (blocking dequeue, the default)",
            "results": "only tasks returning a value store one (here only the results "
            "workload's); result(blocking=True) is woken by notify_result",
            "worker": " ".join(self.worker_command()[1:]),
            "concurrency": self.concurrency_note,
            "bulk": "task.map(): Huey has no batched enqueue, map() enqueues one by one",
        }

    def worker_command(
        self, concurrency: int = 2, pool: str | None = None, results: bool = False
    ) -> list[str]:
        return [
            str(BIN / "huey_consumer"), "tasks.huey_tasks.huey",
            "-w", str(concurrency), "-k", pool or "thread", "-q",
        ]  # fmt: skip

    def incr_sender(self) -> Callable[[int], Any]:
        from tasks.huey_tasks import incr

        return incr  # type: ignore[no-any-return]

    def stamp_sender(self) -> Callable[[float], Any]:
        from tasks.huey_tasks import stamp

        return stamp  # type: ignore[no-any-return]

    def round_tripper(self) -> Callable[[int], Any]:
        from tasks.huey_tasks import echo

        return lambda i: echo(i).get(blocking=True, timeout=30)

    def send_batch(self, n: int) -> None:
        from tasks.huey_tasks import incr

        incr.map(range(n))

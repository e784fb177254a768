"""Dramatiq with its Redis broker; one worker process with two threads."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import common
from systems.base import BIN, System

URL = common.redis_url(common.DB["dramatiq"])


class Dramatiq(System):
    name = "dramatiq"
    label = "Dramatiq"
    dist = "dramatiq"
    concurrency_note = "--processes 1 --threads 2 (a parent and one worker process)"

    def config(self) -> dict[str, Any]:
        return {
            "broker": f"RedisBroker({URL})",
            "middleware": "the defaults, plus Results(RedisBackend) for the store_results "
            "actor of the results workload",
            "prefetch": "the default (2 per thread)",
            "worker": " ".join(self.worker_command()[1:]),
            "concurrency": self.concurrency_note,
            "bulk": "group(...).run(): Dramatiq has no batched enqueue, a group enqueues "
            "its messages one by one",
        }

    def worker_command(
        self, concurrency: int = 2, pool: str | None = None, results: bool = False
    ) -> list[str]:
        return [
            str(BIN / "dramatiq"), "tasks.dramatiq_tasks",
            "--processes", "1", "--threads", str(concurrency),
        ]  # fmt: skip

    def incr_sender(self) -> Callable[[int], Any]:
        from tasks.dramatiq_tasks import incr

        return incr.send

    def stamp_sender(self) -> Callable[[float], Any]:
        from tasks.dramatiq_tasks import stamp

        return stamp.send

    def round_tripper(self) -> Callable[[int], Any]:
        from tasks.dramatiq_tasks import echo

        return lambda i: echo.send(i).get_result(block=True, timeout=30_000)

    def send_batch(self, n: int) -> None:
        from dramatiq import group

        from tasks.dramatiq_tasks import incr

        group(incr.message(i) for i in range(n)).run()

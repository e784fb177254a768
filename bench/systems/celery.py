"""Celery with Redis as broker and result backend, prefork pool."""

from __future__ import annotations

from typing import Any

import common
from systems.base import BIN, CeleryAPI

URL = common.redis_url(common.DB["celery"])

# Applied by tasks/celery_tasks.py.
SETTINGS: dict[str, Any] = {
    "broker_url": URL,
    "result_backend": URL,
    "broker_connection_retry_on_startup": True,
    # Celery's optimizing guide: with many short tasks where throughput matters, the
    # prefetch multiplier "should be large ... Say 64, or 128" (the default is 4).
    "worker_prefetch_multiplier": 64,
}


class CelerySystem(CeleryAPI):
    tasks_module = "tasks.celery_tasks"
    canvas_module = "celery"

    name = "celery"
    label = "Celery"
    dist = "celery"
    concurrency_note = "prefork pool, -c 2 (one parent and two child processes)"

    def config(self) -> dict[str, Any]:
        return {
            "broker": URL,
            "settings": SETTINGS,
            "results": "ignore_result=True on every task but the results workload's",
            "prefetch": "worker_prefetch_multiplier 64, as the optimizing guide advises for "
            "many short tasks (default 4)",
            "worker": " ".join(self.worker_command()[1:]),
            "concurrency": self.concurrency_note,
            "bulk": "group(...).apply_async()",
        }

    def worker_command(
        self, concurrency: int = 2, pool: str | None = None, results: bool = False
    ) -> list[str]:
        return [
            str(BIN / "celery"), "-A", self.tasks_module, "worker",
            "-P", pool or "prefork", "-c", str(concurrency), "-l", "WARNING",
        ]  # fmt: skip

"""RQ: one worker (RQ runs one job at a time per worker), SimpleWorker class."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import common
from systems.base import BIN, System

URL = common.redis_url(common.DB["rq"])
QUEUE = "bench"


class RQ(System):
    name = "rq"
    label = "RQ"
    dist = "rq"
    concurrency_note = "one worker, which runs one job at a time (RQ has no in-worker concurrency)"

    def config(self) -> dict[str, Any]:
        return {
            "broker": URL,
            "results": "result_ttl=0 (no result kept) except in the results workload, "
            "which waits with job.latest_result(timeout=...) (a blocking stream read)",
            "worker_class": "SimpleWorker: RQ's performance notes name it for jobs lasting "
            "single-digit milliseconds (the default Worker forks once per job)",
            "worker": " ".join(self.worker_command()[1:]),
            "concurrency": self.concurrency_note,
            "bulk": "Queue.enqueue_many (one Redis pipeline)",
        }

    def worker_command(
        self, concurrency: int = 2, pool: str | None = None, results: bool = False
    ) -> list[str]:
        return [
            str(BIN / "rq"), "worker", "--url", URL, "--worker-class", "rq.worker.SimpleWorker",
            "--quiet", QUEUE,
        ]  # fmt: skip

    def _queue(self) -> Any:
        from redis import Redis
        from rq import Queue

        return Queue(QUEUE, connection=Redis.from_url(URL))

    def incr_sender(self) -> Callable[[int], Any]:
        from tasks.rq_tasks import incr

        queue = self._queue()
        return lambda i: queue.enqueue(incr, i, result_ttl=0)

    def stamp_sender(self) -> Callable[[float], Any]:
        from tasks.rq_tasks import stamp

        queue = self._queue()
        return lambda sent: queue.enqueue(stamp, sent, result_ttl=0)

    def round_tripper(self) -> Callable[[int], Any]:
        from tasks.rq_tasks import echo

        queue = self._queue()

        def trip(i: int) -> Any:
            result = queue.enqueue(echo, i).latest_result(timeout=30)
            return None if result is None else result.return_value

        return trip

    def send_batch(self, n: int) -> None:
        from rq import Queue

        from tasks.rq_tasks import incr

        queue = self._queue()
        queue.enqueue_many([Queue.prepare_data(incr, (i,), result_ttl=0) for i in range(n)])

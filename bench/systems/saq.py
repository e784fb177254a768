"""SAQ (Simple Async Queue) on Redis: one worker process, an asyncio loop running up to
``concurrency`` jobs at once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import common
from systems.base import BIN, AsyncSystem, NotAvailable

URL = common.redis_url(common.DB["saq"])
QUEUE = "bench"


def make_queue(concurrency: int = 2) -> Any:
    """The queue the producer and the worker share (SAQ's RedisQueue). Each of the worker's
    ``concurrency`` slots holds a connection in its blocking dequeue; redis-py's asyncio
    pool holds 100 by default, so the pool is sized for them."""
    import redis.asyncio
    from saq.queue.redis import RedisQueue

    client = redis.asyncio.from_url(URL, max_connections=2 * concurrency + 20)
    return RedisQueue(client, name=QUEUE)


class Saq(AsyncSystem):
    name = "saq"
    label = "SAQ"
    dist = "saq"
    concurrency_note = "one process, concurrency=2 (jobs at once on its event loop)"
    asyncio = True

    def config(self) -> dict[str, Any]:
        return {
            "broker": f"RedisQueue({URL}, name={QUEUE!r})",
            "settings": {"concurrency": "2 (BENCH_CONCURRENCY; 500 in the asyncio workload)"},
            "results": "ttl=-1 (no job data kept after it finished) for the jobs whose result "
            "is not read; the results workload waits with job.refresh(until_complete=1), "
            "which listens for the job's update on Redis pub/sub, reading the job again "
            "when that times out (an update published before the subscription is missed)",
            "worker": " ".join(self.worker_command()[1:]),
            "concurrency": self.concurrency_note,
            "bulk": "n/a: SAQ has no batched enqueue (Queue.map enqueues jobs one by one and "
            "waits for their results)",
        }

    def worker_command(
        self, concurrency: int = 2, pool: str | None = None, results: bool = False
    ) -> list[str]:
        return [str(BIN / "saq"), "tasks.saq_tasks.settings"]

    def _queue(self) -> Any:
        if getattr(self, "_q", None) is None:
            self._q = make_queue()
        return self._q

    async def send_task(self, task: str, i: int) -> Any:
        return await self._queue().enqueue(task, i=i, ttl=-1)

    async def send_incr(self, i: int) -> Any:
        return await self.send_task("incr", i)

    async def send_stamp(self, sent: float) -> Any:
        return await self._queue().enqueue("stamp", sent=sent, ttl=-1)

    def round_tripper(self) -> Callable[[int], Any]:
        async def trip(i: int) -> Any:
            job = await self._queue().enqueue("echo", i=i)
            for _ in range(30):
                try:
                    await job.refresh(until_complete=1)
                except TimeoutError:
                    # refresh reads the job, then subscribes to its updates: an update
                    # published in between is missed, so the job is read again
                    await job.refresh()
                if job.completed:
                    return job.result
            raise TimeoutError(f"job {i} not complete after 30 s")

        return lambda i: self.run(trip(i))

    def send_batch(self, n: int) -> None:
        raise NotAvailable("SAQ has no batched enqueue")

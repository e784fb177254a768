"""The asyncio pool: coroutine tasks on one event loop, in a thread of the worker's process
(plain functions run in the loop's executor)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading

from ... import states
from ...execution import REQUEUE, Outcome, execute_async
from .base import Job, Pool

logger = logging.getLogger("celeriac.worker")


class _Limit:
    """At most ``size`` holders at once, on one event loop; the size can change."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.held = 0
        self._changed = asyncio.Condition()

    async def __aenter__(self) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self.held < self.size)
            self.held += 1

    async def __aexit__(self, *exc: object) -> None:
        async with self._changed:
            self.held -= 1
            self._changed.notify()

    async def resize(self, size: int) -> None:
        async with self._changed:
            self.size = size
            self._changed.notify_all()


class AsyncioPool(Pool):
    """An event loop in its own thread runs up to ``concurrency`` tasks at once; ``async def``
    tasks run on the loop, plain functions in the loop's default thread pool."""

    name = "asyncio"

    def start(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run_loop, name="celeriac-asyncio", daemon=True)
        self._thread.start()
        self._ready.wait()

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._sem = _Limit(self.concurrency)
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._ready.set()
        self._loop.run_forever()

    def submit(self, job: Job) -> None:
        super().submit(job)
        self._loop.call_soon_threadsafe(self._spawn, job)

    def _spawn(self, job: Job) -> None:
        self._tasks[job.id] = self._loop.create_task(self._run(job))

    async def _run(self, job: Job) -> None:
        try:
            async with self._sem:
                with self._lock:
                    if job not in self._pending:
                        return  # taken back by cancel_pending
                    self._pending.remove(job)
                    self._take(job)
                try:
                    outcome = await execute_async(
                        self.app,
                        job.task,
                        job.message,
                        self.hostname,
                        job.delivery_info,
                        (job.soft_limit, job.hard_limit),
                    )
                except BaseException as exc:  # never leave a job unsettled
                    logger.exception("internal error running %s", job.message.id)
                    outcome = Outcome(REQUEUE, states.PENDING, f"internal error: {exc!r}", 1.0)
            await asyncio.to_thread(self._finish, job, outcome)
        finally:
            self._tasks.pop(job.id, None)

    def resize(self, concurrency: int) -> None:
        """Run up to ``concurrency`` tasks at once; with fewer, running ones finish first."""
        if concurrency < 1:
            raise ValueError("an asyncio pool runs at least one task at a time")
        asyncio.run_coroutine_threadsafe(self._sem.resize(concurrency), self._loop).result(5)
        self.concurrency = concurrency

    def terminate(self) -> list[Job]:
        running = super().terminate()
        for task in list(self._tasks.values()):
            self._loop.call_soon_threadsafe(task.cancel)
        return running

    def stop(self) -> None:
        super().stop()
        future = asyncio.run_coroutine_threadsafe(self._drain(), self._loop)
        with contextlib.suppress(Exception):
            future.result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _drain(self) -> None:
        """Let finished jobs' coroutines return, so none is destroyed while pending."""
        tasks = list(self._tasks.values())
        if tasks:
            await asyncio.wait(tasks, timeout=2)
        for task in tasks:
            task.cancel()

"""The asyncio pool: coroutine tasks on one event loop, in a thread of the worker's process
(plain functions run in the loop's executor)."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import threading

from ... import states
from ...exceptions import ImproperlyConfigured
from ...execution import ACK, REQUEUE, Outcome, execute_async
from .base import Job, Pool

logger = logging.getLogger("celeriac.worker")


def new_loop(kind: str = "auto") -> asyncio.AbstractEventLoop:
    """A new event loop of ``kind`` (``worker_asyncio_loop``): ``"auto"``, uvloop's when it is
    installed and asyncio's otherwise; ``"asyncio"``; ``"uvloop"``."""
    if kind not in ("auto", "asyncio", "uvloop"):
        raise ImproperlyConfigured(
            f"worker_asyncio_loop must be 'auto', 'asyncio' or 'uvloop', not {kind!r}"
        )
    if kind != "asyncio":
        try:
            uvloop = importlib.import_module("uvloop")  # optional: not a dependency
        except ImportError:
            if kind == "uvloop":
                raise ImproperlyConfigured(
                    "worker_asyncio_loop='uvloop' but uvloop is not installed"
                ) from None
        else:
            loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
            return loop
    return asyncio.new_event_loop()


class AsyncioPool(Pool):
    """An event loop in its own thread runs up to ``concurrency`` tasks at once; ``async def``
    tasks run on the loop, plain functions in the loop's default thread pool. The loop is
    uvloop's when uvloop is installed (``worker_asyncio_loop``).

    Jobs wait in the pending queue until a slot is free; the loop starts them itself, a
    task per running job (not one per waiting job), and the consumer wakes the loop once
    for all the jobs it submits before the loop looks. Finished jobs to acknowledge are
    reported together, once per turn of the loop, on the loop's thread (queuing an
    acknowledgement does no I/O); any other outcome is settled from the loop's executor."""

    name = "asyncio"

    def start(self) -> None:
        self._loop = new_loop(self.app.conf.worker_asyncio_loop)
        self._ready = threading.Event()
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._active = 0  # jobs holding a slot (the loop's thread only)
        self._waking = False  # a call to _start_pending is on its way (under self._lock)
        self._acked: list[tuple[Job, Outcome]] = []  # to report at the end of this turn
        self._thread = threading.Thread(target=self._run_loop, name="celeriac-asyncio", daemon=True)
        self._thread.start()
        self._ready.wait()

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:  # stopped: nothing runs on it again
            with contextlib.suppress(Exception):
                self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

    def submit(self, job: Job) -> None:
        with self._lock:
            self._pending.append(job)
            self._lock.notify()
            if self._waking:
                return  # the loop has yet to look: it will see this job too
            self._waking = True
        self._loop.call_soon_threadsafe(self._start_pending)

    def _start_pending(self) -> None:
        """Start waiting jobs while slots are free (on the loop's thread)."""
        with self._lock:
            self._waking = False
            started = []
            while self._pending and self._active < self.concurrency and not self._stopping:
                job = self._pending.popleft()
                self._take(job)
                self._active += 1
                started.append(job)
        for job in started:
            self._tasks[job.id] = self._loop.create_task(self._run(job))

    async def _run(self, job: Job) -> None:
        try:
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
        finally:
            self._tasks.pop(job.id, None)
            self._active -= 1
            if self._pending:  # read without the lock: _start_pending looks again under it
                self._start_pending()
        if outcome.action == ACK:
            self._acked.append((job, outcome))
            if len(self._acked) == 1:
                self._loop.call_soon(self._report_acked)
        else:  # a release or dead-lettering: a broker round trip, off the loop
            await asyncio.to_thread(self._finish, job, outcome)

    def _report_acked(self) -> None:
        """Report this turn's finished jobs to acknowledge, in one call."""
        done, self._acked = self._acked, []
        self._finish_many(done)

    def resize(self, concurrency: int) -> None:
        """Run up to ``concurrency`` tasks at once; with fewer, running ones finish first."""
        if concurrency < 1:
            raise ValueError("an asyncio pool runs at least one task at a time")

        async def apply() -> None:
            self.concurrency = concurrency
            self._start_pending()

        asyncio.run_coroutine_threadsafe(apply(), self._loop).result(5)

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
        if self._acked:
            self._report_acked()

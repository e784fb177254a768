"""Execution pools behind one small interface: threads, asyncio, solo (and prefork, in
``prefork.py``).

The consumer hands a :class:`Job` to ``submit``; the pool runs it when a slot is free and calls
``on_done([(job, outcome), ...])`` from one of its own threads (the solo pool: from the main
thread); the prefork pool hands over every outcome its children have ready at once, so the
worker can settle them in one broker round trip.
``cancel_pending`` takes back jobs that have not started (warm shutdown), ``terminate`` stops
running ones and returns them (cold shutdown).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import states
from ..brokers.base import Delivery
from ..exceptions import SoftTimeLimitExceeded, Terminated, TimeLimitExceeded
from ..execution import REQUEUE, Outcome, execute, execute_async
from ..message import Message
from ..task import Task
from ..utils import keep_running
from .limits import alarm_limits, raise_in_thread

if TYPE_CHECKING:
    from ..app import Celeriac

logger = logging.getLogger("celeriac.worker")


@dataclass(eq=False)
class Job:
    """A received message on its way through the pool."""

    id: int
    message: Message
    delivery: Delivery
    task: Task
    soft_limit: float | None = None
    hard_limit: float | None = None
    acked: bool = False
    started_at: float | None = None  # time.monotonic() when it began running
    thread_id: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @functools.cached_property
    def delivery_info(self) -> dict[str, Any]:
        d = self.delivery
        return {
            "queue": d.queue,
            "routing_key": d.queue,
            "exchange": "",
            "priority": d.priority,
            "redelivered": d.redelivered,
        }


OnDone = Callable[[list[tuple[Job, Outcome]]], None]


class Pool:
    """Base class: the pending queue and bookkeeping every pool shares."""

    name = "base"
    #: its processes consume from the broker themselves (the worker only supervises)
    consumes = False
    #: it takes no more jobs (``max_tasks_per_child`` reached in a prefork child)
    retiring = False

    def __init__(
        self,
        app: Celeriac,
        concurrency: int,
        on_done: OnDone,
        hostname: str,
        max_tasks_per_child: int | None = None,
    ) -> None:
        self.app = app
        self.concurrency = concurrency
        self.on_done = on_done
        self.hostname = hostname
        self.max_tasks_per_child = max_tasks_per_child
        self._lock = threading.Condition()
        self._pending: deque[Job] = deque()
        self._running: dict[int, Job] = {}
        self._stopping = False

    def start(self) -> None: ...

    def submit(self, job: Job) -> None:
        with self._lock:
            self._pending.append(job)
            self._lock.notify()

    def cancel_pending(self) -> list[Job]:
        with self._lock:
            jobs = list(self._pending)
            self._pending.clear()
            return jobs

    def running(self) -> list[Job]:
        with self._lock:
            return list(self._running.values())

    def withdraw(self, unwanted: Callable[[Job], bool]) -> list[Job]:
        """Take back the jobs not started yet for which ``unwanted(job)`` is true."""
        with self._lock:
            jobs = [job for job in self._pending if unwanted(job)]
            for job in jobs:
                self._pending.remove(job)
            return jobs

    def has_pending(self) -> bool:
        """Are jobs waiting for a free slot?"""
        with self._lock:
            return bool(self._pending)

    def held(self) -> list[Delivery]:
        """Deliveries its processes hold that the worker renews the leases of (consuming
        pools only: the worker knows its own)."""
        return []

    def held_up(self) -> list[Job]:
        """Jobs taken back because a long task held them up (a consuming child's pool)."""
        return []

    def finished(self) -> bool:
        """Done for good: every process of a consuming pool ended (burst mode)."""
        return False

    def busy(self) -> bool:
        with self._lock:
            return bool(self._pending or self._running)

    def poll(self) -> None:
        """Called by the consumer loop on the main thread between fetches."""

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` for pending and running jobs; True when all are done."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._working():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(min(left, 0.1))
        return True

    def pids(self) -> list[int]:
        """The processes that run its tasks."""
        return [os.getpid()]

    def _working(self) -> bool:
        """Jobs are left (call with the lock held)."""
        return bool(self._pending or self._running)

    def terminate(self) -> list[Job]:
        """Stop at once; returns the jobs that were still running."""
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
            return list(self._running.values())

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            self._lock.notify_all()

    def terminate_job(self, task_id: str, signum: int) -> bool:
        """Stop the running job of ``task_id`` if this pool can; returns whether it did."""
        return False

    def _take(self, job: Job) -> None:
        job.started_at = time.monotonic()
        self._running[job.id] = job

    def _finish(self, job: Job, outcome: Outcome) -> None:
        self._finish_many([(job, outcome)])

    def _finish_many(self, done: list[tuple[Job, Outcome]]) -> None:
        # A job counts as running until its message is settled, so join() (warm shutdown)
        # returns only when nothing is left to acknowledge.
        try:
            self.on_done(done)
        finally:
            with self._lock:
                for job, _ in done:
                    self._running.pop(job.id, None)
                self._lock.notify_all()


class SoloPool(Pool):
    """One task at a time, in the worker's main thread (SIGALRM time limits work)."""

    name = "solo"

    def poll(self) -> None:
        with self._lock:
            if not self._pending or self._stopping:
                return
            job = self._pending.popleft()
            self._take(job)
        self._finish(job, self._run(job))

    def _run(self, job: Job) -> Outcome:
        with alarm_limits(job.soft_limit, job.hard_limit):
            return execute(self.app, job.task, job.message, self.hostname, job.delivery_info)

    def join(self, timeout: float) -> bool:
        self.poll()
        return super().join(0)


class ThreadPool(Pool):
    """``concurrency`` threads; time limits are raised in the task's thread."""

    name = "threads"

    def start(self) -> None:
        self._threads = [
            threading.Thread(target=self._loop, name=f"celeriac-thread-{i}", daemon=True)
            for i in range(self.concurrency)
        ]
        for t in self._threads:
            t.start()
        self._watchdog = threading.Thread(target=self._watch, name="celeriac-limits", daemon=True)
        self._watchdog.start()

    def _loop(self) -> None:
        keep_running(self._run_jobs, "a pool thread", lambda: self._stopping)

    def _run_jobs(self) -> None:
        while True:
            with self._lock:
                while not self._pending and not self._stopping:
                    self._lock.wait()
                if self._stopping:
                    return
                job = self._pending.popleft()
                job.thread_id = threading.get_ident()
                self._take(job)
            try:
                outcome = execute(self.app, job.task, job.message, self.hostname, job.delivery_info)
            except (SoftTimeLimitExceeded, TimeLimitExceeded, Terminated):  # came too late
                outcome = Outcome("ack", states.SUCCESS)
            finally:
                with self._lock:
                    job.thread_id = None
                raise_in_thread(threading.get_ident(), None)
            self._finish(job, outcome)

    def terminate_job(self, task_id: str, signum: int) -> bool:
        """Raise :class:`Terminated` in the thread running ``task_id``."""
        with self._lock:
            for job in self._running.values():
                if job.message.id == task_id and job.thread_id is not None:
                    raise_in_thread(job.thread_id, Terminated)
                    return True
        return False

    def _watch(self) -> None:
        keep_running(self._enforce_limits, "the time-limit watchdog", lambda: self._stopping)

    def _enforce_limits(self) -> None:
        while not self._stopping:
            time.sleep(0.05)
            now = time.monotonic()
            with self._lock:
                for job in self._running.values():
                    if job.thread_id is None or job.started_at is None:
                        continue
                    elapsed = now - job.started_at
                    stage = job.extra.get("limit_stage", 0)
                    if stage == 0 and job.soft_limit and elapsed > job.soft_limit:
                        job.extra["limit_stage"] = 1
                        raise_in_thread(job.thread_id, SoftTimeLimitExceeded)
                    elif stage < 2 and job.hard_limit and elapsed > job.hard_limit:
                        job.extra["limit_stage"] = 2
                        raise_in_thread(job.thread_id, TimeLimitExceeded)


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
        self._sem = asyncio.Semaphore(self.concurrency)
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

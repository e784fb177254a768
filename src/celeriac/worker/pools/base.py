"""The pool interface, and the solo pool (the other pools: ``threads.py``, ``aio.py``, and
prefork's two kinds, ``fed.py`` and ``consuming.py``).

The consumer hands a :class:`Job` to ``submit``; the pool runs it when a slot is free and calls
``on_done([(job, outcome), ...])`` from one of its own threads (the solo pool: from the main
thread); the prefork pool hands over every outcome its children have ready at once, so the
worker can settle them in one broker round trip.
``cancel_pending`` takes back jobs that have not started (warm shutdown), ``terminate`` stops
running ones and returns them (cold shutdown).
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ...brokers.base import Delivery
from ...execution import Outcome, close_loop, execute
from ...message import Message
from ...task import Task
from ..timelimits import alarm_limits

if TYPE_CHECKING:
    from ...app import Celeriac

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

    def restart(self) -> bool:
        """Replace the processes that run tasks with new ones (``pool_restart``: they run the
        code as reloaded in the worker's process); the ones replaced finish their task
        first. False where the tasks run in the worker's own process: nothing to replace."""
        return False

    def resize(self, concurrency: int) -> None:
        """Run up to ``concurrency`` jobs at once from now on (``pool_grow``, ``pool_shrink``
        and ``autoscale``); NotImplementedError saying why where the pool cannot."""
        raise NotImplementedError(
            f"the {self.name} pool has a fixed size: start the worker again with -c"
        )

    def _take(self, job: Job) -> None:
        job.started_at = time.monotonic()
        job.extra["pid"] = os.getpid()  # inspect's worker_pid: the process that runs it
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

    def stop(self) -> None:
        super().stop()
        close_loop()  # the loop async tasks ran on, in this (the worker's) thread

    def join(self, timeout: float) -> bool:
        self.poll()
        return super().join(0)

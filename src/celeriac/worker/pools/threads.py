"""The threads pool: ``concurrency`` threads in the worker's process."""

from __future__ import annotations

import threading
import time

from ... import states
from ...exceptions import SoftTimeLimitExceeded, Terminated, TimeLimitExceeded
from ...execution import Outcome, close_loop, execute
from ...utils import keep_running
from ..timelimits import raise_in_thread
from .base import Pool


class ThreadPool(Pool):
    """``concurrency`` threads; time limits are raised in the task's thread."""

    name = "threads"

    def start(self) -> None:
        self._threads: list[threading.Thread] = []
        self._to_retire = 0  # threads to end after their job (pool_shrink)
        self._add_threads(self.concurrency)
        self._watchdog = threading.Thread(target=self._watch, name="celeriac-limits", daemon=True)
        self._watchdog.start()

    def _add_threads(self, count: int) -> None:
        for _ in range(count):
            n = len(self._threads) + 1
            t = threading.Thread(target=self._loop, name=f"celeriac-thread-{n}", daemon=True)
            self._threads.append(t)
            t.start()

    def resize(self, concurrency: int) -> None:
        """Start threads, or let some end after their job, to run ``concurrency`` at once."""
        if concurrency < 1:
            raise ValueError("a pool needs at least one thread")
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            live = len(self._threads) - self._to_retire
            if concurrency > live:
                cancelled = min(self._to_retire, concurrency - live)
                self._to_retire -= cancelled
                self._add_threads(concurrency - live - cancelled)
            else:
                self._to_retire += live - concurrency
                self._lock.notify_all()
            self.concurrency = concurrency

    def _loop(self) -> None:
        try:
            keep_running(self._run_jobs, "a pool thread", lambda: self._stopping)
        finally:
            close_loop()

    def _run_jobs(self) -> None:
        while True:
            with self._lock:
                while not self._pending and not self._stopping and not self._to_retire:
                    self._lock.wait()
                if self._stopping:
                    return
                if self._to_retire:
                    self._to_retire -= 1
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

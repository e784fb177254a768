"""Execution pools behind one small interface: prefork, threads, asyncio, solo.

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
import pickle
import select
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import states
from ..brokers.base import Delivery
from ..exceptions import SoftTimeLimitExceeded, Terminated, TimeLimitExceeded
from ..message import Message
from ..task import Task
from ..utils.io import ReadableCheck
from .executor import REQUEUE, Outcome, execute, execute_async
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
    worker_pid: int | None = None
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

    def has_pending(self) -> bool:
        """Are jobs waiting for a free slot?"""
        with self._lock:
            return bool(self._pending)

    def busy(self) -> bool:
        with self._lock:
            return bool(self._pending or self._running)

    def poll(self) -> None:
        """Called by the consumer loop on the main thread between fetches."""

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` for pending and running jobs; True when all are done."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._pending or self._running:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(min(left, 0.1))
        return True

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
        with alarm_limits(job.soft_limit, job.hard_limit):
            outcome = execute(self.app, job.task, job.message, self.hostname, job.delivery_info)
        self._finish(job, outcome)

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


# -- prefork -----------------------------------------------------------------------------------


def _die_with_parent() -> None:
    try:
        import ctypes
        import signal as _signal

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, _signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:  # not Linux: the child notices the closed pipe instead
        pass


def _send(conn: Any, item: Any) -> None:
    """Send ``item`` between the prefork parent and a child: a plain pickle (jobs and
    outcomes pickle as tuples), without multiprocessing's reducer machinery."""
    conn.send_bytes(pickle.dumps(item, pickle.HIGHEST_PROTOCOL))


def _receive(conn: Any) -> Any:
    """What :func:`_send` sent."""
    return pickle.loads(conn.recv_bytes())


def _child_main(
    app: Celeriac, conn: Any, hostname: str, max_tasks: int | None, parent_pid: int
) -> None:
    import signal as _signal

    from .. import signals

    _die_with_parent()
    if os.getppid() != parent_pid:
        os._exit(1)
    # The parent decides about shutdown; a Ctrl-C sent to the process group is not ours.
    _signal.signal(_signal.SIGINT, _signal.SIG_IGN)
    _signal.signal(_signal.SIGTERM, _signal.SIG_DFL)
    signals.worker_process_init.send(sender=None)
    done = 0
    while True:
        try:
            item = _receive(conn)
        except (EOFError, OSError):
            break
        if item is None:
            break
        job_id, message, name, soft, hard, delivery_info = item
        task = app.tasks[name]
        try:
            with alarm_limits(soft, hard):
                outcome = execute(app, task, message, hostname, delivery_info)
        except (SoftTimeLimitExceeded, TimeLimitExceeded):  # fired between task and return
            outcome = Outcome("ack", states.SUCCESS)
        done += 1
        retiring = bool(max_tasks and done >= max_tasks)
        _send(conn, (job_id, outcome, retiring))  # the parent sends nothing more once retiring
        if retiring:
            break
    signals.worker_process_shutdown.send(sender=None, pid=os.getpid(), exitcode=0)
    conn.close()
    os._exit(0)


class _Child:
    def __init__(self, process: Any, conn: Any) -> None:
        self.process = process
        self.conn = conn
        self.job: Job | None = None
        self.killed_for: str | None = None
        self.retiring = False
        self.readable = ReadableCheck(conn.fileno())


class PreforkPool(Pool):
    """``concurrency`` child processes (forked). A job goes to an idle child from the thread
    that submits it; a supervisor thread hands out the rest as children free up, reads their
    outcomes, enforces hard time limits by killing, and replaces children that exit."""

    name = "prefork"

    def start(self) -> None:
        import multiprocessing

        self._ctx = multiprocessing.get_context("fork")
        self._children: list[_Child] = []
        self._wake_r, self._wake_w = os.pipe()
        self._asleep = False
        self._started = threading.Event()
        self._supervisor = threading.Thread(
            target=self._supervise, name="celeriac-prefork", daemon=True
        )
        self._supervisor.start()
        self._started.wait()

    def _spawn(self) -> _Child:
        parent_conn, child_conn = self._ctx.Pipe()
        proc = self._ctx.Process(
            target=_child_main,
            args=(self.app, child_conn, self.hostname, self.max_tasks_per_child, os.getpid()),
            name=f"ForkPoolWorker-{len(self._children) + 1}",
            daemon=True,
        )
        proc.start()
        child_conn.close()
        child = _Child(proc, parent_conn)
        self._children.append(child)
        return child

    def submit(self, job: Job) -> None:
        with self._lock:
            self._pending.append(job)
            # an idle child gets it from this thread: no hop through the supervisor's
            self._dispatch()
            wake = bool(self._pending) and self._asleep
        if wake:  # _asleep is set under the lock right after the supervisor's last dispatch
            os.write(self._wake_w, b"x")

    def _supervise(self) -> None:
        for _ in range(self.concurrency):
            self._spawn()
        self._started.set()
        # One poll object for the supervisor's life, re-registered only when children change
        # (building a selector per wait costs more than the rest of a task's handling).
        poller = select.poll()
        watched: dict[int, tuple[_Child | None, str]] = {}
        while True:
            with self._lock:
                if self._stopping and not self._running:
                    break
                self._dispatch()
                self._asleep = True
            self._watch(poller, watched)
            ready = [watched[fd] for fd, _ in poller.poll(100) if fd in watched]
            self._asleep = False
            if any(kind == "wake" for _, kind in ready):
                os.read(self._wake_r, 4096)
            self._collect([c for c, kind in ready if kind == "result" and c is not None])
            for child, kind in ready:
                if kind == "exit" and child is not None and child in self._children:
                    self._reap(child)
            self._enforce_limits()
        self._shutdown_children()

    def _watch(self, poller: Any, watched: dict[int, tuple[_Child | None, str]]) -> None:
        """Keep ``poller`` registered on the wake pipe and every child's pipe and sentinel."""
        wanted: dict[int, tuple[_Child | None, str]] = {self._wake_r: (None, "wake")}
        for c in self._children:
            wanted[c.conn.fileno()] = (c, "result")
            wanted[c.process.sentinel] = (c, "exit")
        if wanted == watched:
            return
        for fd in set(watched) - set(wanted):
            poller.unregister(fd)
        for fd in set(wanted) - set(watched):
            poller.register(fd, select.POLLIN)
        watched.clear()
        watched.update(wanted)

    def _dispatch(self) -> None:
        for child in self._children:
            if not self._pending:
                return
            if child.job is None and not child.retiring and child.process.exitcode is None:
                job = self._pending.popleft()
                child.job = job
                job.worker_pid = child.process.pid
                self._take(job)
                item = (
                    job.id,
                    job.message,
                    job.task.name,
                    job.soft_limit,
                    job.hard_limit,
                    job.delivery_info,
                )
                try:
                    _send(child.conn, item)
                except OSError:
                    pass  # the child died; its sentinel tells

    def _collect(self, children: list[_Child]) -> None:
        """Read the outcomes ``children`` sent and settle them together."""
        done: list[tuple[Job, Outcome]] = []
        for child in children:
            try:
                while child.readable():
                    _job_id, outcome, child.retiring = _receive(child.conn)
                    job, child.job = child.job, None
                    if job is not None:
                        done.append((job, outcome))
            except (EOFError, OSError):
                pass  # it died: its sentinel tells
        if done:
            self._finish_many(done)

    def _reap(self, child: _Child) -> None:
        child.process.join(0)
        self._children.remove(child)
        child.conn.close()
        job = child.job
        if job is not None:
            self._finish(job, self._lost(job, child))
        if not self._stopping:
            self._spawn()

    def _lost(self, job: Job, child: _Child) -> Outcome:
        """The outcome of a job whose process died under it."""
        from ..exceptions import WorkerLostError
        from .executor import TaskRun, make_request

        code = child.process.exitcode
        run = TaskRun(
            self.app,
            job.task,
            make_request(job.task, job.message, self.hostname, job.delivery_info),
        )
        if child.killed_for == "revoked":
            signum = -code if code is not None and code < 0 else None
            return run.terminated(Terminated(f"terminated by revoke (exit code {code})"), signum)
        if child.killed_for == "time_limit":
            exc: BaseException = TimeLimitExceeded(f"time limit ({job.hard_limit}s) exceeded")
        else:
            reject = job.task.reject_on_worker_lost
            if reject is None:
                reject = self.app.conf.task_reject_on_worker_lost
            if reject or child.killed_for == "shutdown":
                return Outcome(REQUEUE, states.PENDING, "worker process lost")
            exc = WorkerLostError(f"Worker exited prematurely: exitcode {code}.")
        logger.error("Task %s[%s]: %s", job.task.name, job.message.id, exc)
        return run.failed(exc)

    def _enforce_limits(self) -> None:
        now = time.monotonic()
        for child in self._children:
            job = child.job
            if job and job.hard_limit and job.started_at and now - job.started_at > job.hard_limit:
                if child.killed_for is None and child.process.pid:
                    child.killed_for = "time_limit"
                    os.kill(child.process.pid, 9)

    def terminate_job(self, task_id: str, signum: int) -> bool:
        for child in self._children:
            if child.job and child.job.message.id == task_id and child.process.pid:
                child.killed_for = "revoked"
                os.kill(child.process.pid, signum)
                return True
        return False

    def terminate(self) -> list[Job]:
        with self._lock:
            running = list(self._running.values())
            self._stopping = True
            for child in self._children:
                if child.process.pid and child.process.is_alive():
                    child.killed_for = "shutdown"
                    os.kill(child.process.pid, 9)
        os.write(self._wake_w, b"x")
        self._supervisor.join(5)
        return running

    def stop(self) -> None:
        super().stop()
        os.write(self._wake_w, b"x")
        self._supervisor.join(10)

    def _shutdown_children(self) -> None:
        for child in self._children:
            with contextlib.suppress(OSError):
                _send(child.conn, None)
        for child in self._children:
            child.process.join(3)
            if child.process.is_alive():
                child.process.kill()
                child.process.join(1)


POOLS: dict[str, type[Pool]] = {
    "prefork": PreforkPool,
    "processes": PreforkPool,
    "threads": ThreadPool,
    "asyncio": AsyncioPool,
    "solo": SoloPool,
}

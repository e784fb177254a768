"""The prefork pool fed by its parent, for brokers whose leases live in the consuming
process (RabbitMQ, memory): child processes that take jobs from one shared queue.

The parent puts jobs on a ``SOCK_SEQPACKET`` socket shared by every child (a whole job per
datagram; plain datagrams where unix sockets have no sequenced packets, as on macOS), up to
``DEPTH`` per child, so a child that finishes a task takes the next one at once, without
waiting for the parent to notice; whichever child is free first takes the next job, so a
short task never waits behind a long one in a busy child. While every child has
several jobs queued, the parent lets outcomes gather for a moment before it reads them (see
:meth:`FedPool._gather_time`): reading them one at a time costs more than the task.
A child takes a job under a lock (``lockf``, released by the kernel if the child dies) and
writes the job's number and start time into its slot in shared memory before letting go, so
the parent always knows which job each child runs: for hard time limits, terminating a
revoked task, and the outcome of a job whose child died. Outcomes come back over a pipe per
child.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import mmap
import os
import pickle
import select
import signal
import socket
import struct
import tempfile
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ... import signals, states
from ...exceptions import SoftTimeLimitExceeded, TimeLimitExceeded
from ...execution import Outcome, execute
from ...utils import keep_running
from ..timelimits import alarm_limits
from .base import Job, Pool
from .processes import (
    MAX_PROCESSES,
    REAP_WAIT,
    anonymous_file,
    die_with_parent,
    lost_outcome,
    over_memory,
    read_frames,
    send_frame,
)

if TYPE_CHECKING:
    from ...app import Celeriac

logger = logging.getLogger("celeriac.worker")

SLOT = struct.Struct("qd")  # a child's slot: the job it runs (0: none) and when it took it
GENERATION = struct.Struct("q")
SPILL = b"@"  # a datagram naming a file that holds a job too large for one datagram
STOP = pickle.dumps(None)
#: queued by pool_restart so that idle children wake up and see they are to be replaced
WAKE = pickle.dumps(())
MAX_DATAGRAM = 256 << 10
# The queue's socket: sequenced packets where unix sockets have them (Linux), else datagrams
# (macOS), which keep each job whole just the same but may be smaller (larger jobs go
# through a file either way)
SOCKET_TYPES: tuple[socket.SocketKind, ...] = (socket.SOCK_SEQPACKET, socket.SOCK_DGRAM)
DEPTH = 16  # jobs in the pool per taking child, counting the one it runs
GATHER_MAX = 0.0005  # the longest the supervisor lets outcomes gather (seconds)


def _socketpair() -> tuple[socket.socket, socket.socket]:
    for kind in SOCKET_TYPES[:-1]:
        with contextlib.suppress(OSError):
            return socket.socketpair(socket.AF_UNIX, kind)
    return socket.socketpair(socket.AF_UNIX, SOCKET_TYPES[-1])


def _spill(data: bytes) -> bytes:
    """Write a job too large for a datagram to a file; the datagram that names it."""
    fd, path = tempfile.mkstemp(prefix="celeriac-job-")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return SPILL + os.fsencode(path)


class _Queue:
    """The shared job queue, its lock and the children's slots (all inherited by fork)."""

    def __init__(self, slots: int) -> None:
        self.send_end, self.recv_end = _socketpair()
        with contextlib.suppress(OSError):
            self.send_end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        # a datagram must fit in the sender's buffer and the receivers' (every process has
        # one, so it is kept small); larger jobs go through a file
        sndbuf = self.send_end.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        self.max_datagram = min(sndbuf // 2, MAX_DATAGRAM)
        self.buffer = bytearray(self.max_datagram)
        self._lockfile = anonymous_file()
        self.capacity = slots
        self.slots = mmap.mmap(-1, SLOT.size * slots)
        # the pool's generation: a child forked in an earlier one takes no more jobs
        self._generation = mmap.mmap(-1, GENERATION.size)
        # only the parent writes to this pipe (never, in fact): when it dies the children
        # read its end of file, whatever the socket's type tells them
        self._parent_r, self._parent_w = os.pipe()
        self.poller = select.poll()
        self.poller.register(self.recv_end.fileno(), select.POLLIN)
        self.poller.register(self._parent_r, select.POLLIN)

    def child_side(self) -> None:
        """In a child: drop the parent's ends, so the parent's death shows as end of file."""
        self.send_end.close()
        os.close(self._parent_w)

    def __enter__(self) -> _Queue:
        """``with queue:`` holds its lock: no job is taken meanwhile."""
        fcntl.lockf(self._lockfile, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        fcntl.lockf(self._lockfile, fcntl.LOCK_UN)

    def put(self, data: bytes) -> bool:
        """Queue one job without blocking; False if the queue is full."""
        if len(data) > self.max_datagram - 64:
            data = _spill(data)
        try:
            self.send_end.send(data, socket.MSG_DONTWAIT)
        except OSError as exc:
            if exc.errno == errno.EMSGSIZE and not data.startswith(SPILL):
                self.max_datagram = min(self.max_datagram, len(data))  # smaller than it said
                return self.put(data)
            if data.startswith(SPILL):
                with contextlib.suppress(OSError):
                    os.unlink(os.fsdecode(data[len(SPILL) :]))
            if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.ENOBUFS):
                return False  # full (macOS says ENOBUFS for a full datagram queue)
            raise
        return True

    def get_nowait(self) -> bytes | None:
        """The next job, if one is queued (call with the lock held)."""
        try:
            n = self.recv_end.recv_into(self.buffer, 0, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return None
        data = bytes(memoryview(self.buffer)[:n])
        if data.startswith(SPILL):
            path = os.fsdecode(data[len(SPILL) :])
            with open(path, "rb") as f:
                data = f.read()
            os.unlink(path)
        return data

    def generation(self) -> int:
        """The pool's generation, which :meth:`FedPool.restart` moves on."""
        return int(GENERATION.unpack_from(self._generation)[0])

    def next_generation(self) -> None:
        """Move the generation on (with the lock held): children of earlier ones stop."""
        GENERATION.pack_into(self._generation, 0, self.generation() + 1)

    def take(self, index: int, generation: int) -> Any:
        """Wait for a job and take it, recording it in slot ``index`` (the child's side);
        None when told to stop, when the pool moved past the child's ``generation``, or when
        the parent is gone (the queue reads as closed)."""
        while True:
            with self:
                if self.generation() != generation:
                    return None
                data = self.get_nowait()
                if data == WAKE:
                    continue
                if data is not None:
                    item = pickle.loads(data) if data else None
                    seq = item[0] if item is not None else 0
                    SLOT.pack_into(self.slots, index * SLOT.size, seq, time.monotonic())
                    return item
            # nothing queued: wait (without the lock) and try again, unless the parent died
            if any(fd == self._parent_r for fd, _ in self.poller.poll()):
                return None

    def drain(self) -> list[bytes]:
        """Take every queued job back (with the lock held)."""
        taken = []
        while (data := self.get_nowait()) is not None:
            taken.append(data)
        return taken

    @staticmethod
    def seq(data: bytes) -> int | None:
        """The sequence number of a queued job (None: the stop sign, or a wake-up)."""
        item = pickle.loads(data)
        return int(item[0]) if item else None

    def slot(self, index: int) -> tuple[int, float]:
        seq, started = SLOT.unpack_from(self.slots, index * SLOT.size)
        return int(seq), float(started)

    def clear(self, index: int) -> None:
        SLOT.pack_into(self.slots, index * SLOT.size, 0, 0.0)


def _child_main(
    app: Celeriac,
    queue: _Queue,
    index: int,
    outcomes: int,
    hostname: str,
    max_tasks: int | None,
    parent_pid: int,
    generation: int,
) -> None:
    die_with_parent()
    if os.getppid() != parent_pid:
        os._exit(1)
    queue.child_side()
    # The parent decides about shutdown; a Ctrl-C sent to the process group is not ours.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signals.worker_process_init.send(sender=None)
    done = 0
    while True:
        try:
            item = queue.take(index, generation)
        except OSError:
            break
        if item is None:
            break
        seq, message, name, soft, hard, delivery_info, task_events = item
        if task_events:
            app.events.enable_task_events(hostname)
        else:
            app.events.disable_task_events()
        task = app.tasks[name]
        try:
            with alarm_limits(soft, hard):
                outcome = execute(app, task, message, hostname, delivery_info)
        except (SoftTimeLimitExceeded, TimeLimitExceeded):  # fired between task and return
            outcome = Outcome("ack", states.SUCCESS)
        done += 1
        retiring = bool(max_tasks and done >= max_tasks) or over_memory(app)
        send_frame(outcomes, (seq, outcome, retiring))
        if retiring:  # it takes no more jobs
            break
    app.events.flush()
    signals.worker_process_shutdown.send(sender=None, pid=os.getpid(), exitcode=0)
    os._exit(0)


class _Child:
    def __init__(self, process: Any, outcomes: int, index: int) -> None:
        self.process = process
        self.outcomes = outcomes  # the read end of its outcome pipe (non-blocking)
        self.index = index
        self.killed_for: str | None = None
        self.retiring = False
        self.unread = bytearray()

    def read(self) -> list[Any]:
        """The outcomes it has sent since the last read."""
        return read_frames(self.outcomes, self.unread)


class FedPool(Pool):
    """``concurrency`` child processes (forked) fed from one shared queue. The thread that
    submits a job queues it when there is room; a supervisor thread reads outcomes, queues
    more as room frees up, enforces hard time limits by killing, and replaces children that
    exit."""

    name = "prefork"

    def start(self) -> None:
        import multiprocessing

        self._ctx = multiprocessing.get_context("fork")
        self._children: list[_Child] = []
        self._queue = _Queue(max(self.concurrency, MAX_PROCESSES))
        self._wanted = self.concurrency  # the children to keep (pool_grow, pool_shrink)
        self._queued: dict[int, Job] = {}  # by sequence number: queued or running in a child
        self._runtime = 0.0  # a moving average of the tasks' run times
        self._seq = 0
        self._wake_r, self._wake_w = os.pipe()
        self._supervisor = threading.Thread(
            target=self._supervise, name="celeriac-prefork", daemon=True
        )
        self._started = threading.Event()
        self._supervisor.start()
        self._started.wait()

    def _spawn(self, index: int) -> _Child:
        generation = self._queue.generation()  # read before the fork: a restart replaces it
        reader, writer = os.pipe()
        os.set_blocking(reader, False)
        self._queue.clear(index)
        signals.worker_before_create_process.send(sender=self)
        proc = self._ctx.Process(
            target=_child_main,
            args=(
                self.app,
                self._queue,
                index,
                writer,
                self.hostname,
                self.max_tasks_per_child,
                os.getpid(),
                generation,
            ),
            name=f"ForkPoolWorker-{index + 1}",
            daemon=True,
        )
        proc.start()
        os.close(writer)
        child = _Child(proc, reader, index)
        self._children.append(child)
        return child

    def submit(self, job: Job) -> None:
        with self._lock:
            self._pending.append(job)
            self._fill()

    def _fill(self) -> None:
        """Queue pending jobs while there is room: ``DEPTH`` per taking child, counting
        those running (call with the pool's lock held)."""
        room = DEPTH * self._takers()
        while self._pending and len(self._queued) < room:
            job = self._pending[0]
            seq = self._seq + 1
            item = (
                seq,
                job.message,
                job.task.name,
                job.soft_limit,
                job.hard_limit,
                job.delivery_info,
                self.app.events.tasks is not None and self.app.events.tasks.enabled,
            )
            if not self._queue.put(pickle.dumps(item, pickle.HIGHEST_PROTOCOL)):
                return  # full: more room comes with the next outcome
            self._seq = seq
            self._pending.popleft()
            self._queued[seq] = job
            self._take(job)

    def _takers(self) -> int:
        """The children that take more jobs (a retiring child finishes its last one)."""
        return sum(1 for c in self._children if not c.retiring)

    def _supervise(self) -> None:
        self._grow()
        self._started.set()
        # never ends on an error: the children die with the thread that forked them
        keep_running(self._supervise_loop, "the prefork supervisor", lambda: False)
        self._shutdown_children()

    def _supervise_loop(self) -> None:
        # One poll object for the supervisor's life, re-registered only when children change
        # (building a selector per wait costs more than the rest of a task's handling).
        poller = select.poll()
        watched: dict[int, tuple[_Child | None, str]] = {}
        self._watch(poller, watched)
        next_check = 0.0
        while True:
            with self._lock:
                if self._stopping and not self._running:
                    break
                self._fill()
            pause = self._gather_time()
            if pause:
                time.sleep(pause)
            ready = [watched[fd] for fd, _ in poller.poll(100) if fd in watched]
            if any(kind == "wake" for _, kind in ready):
                os.read(self._wake_r, 4096)
                if self._grow():
                    self._watch(poller, watched)
            self._collect([c for c, kind in ready if kind == "result" and c is not None])
            exited = [c for c, kind in ready if kind == "exit" and c in self._children]
            for child in exited:
                assert child is not None
                self._reap(child)
            if exited:
                self._watch(poller, watched)
            now = time.monotonic()
            if now >= next_check:  # hard time limits, checked a few times a second
                self._enforce_limits()
                next_check = now + 0.05

    def _gather_time(self) -> float:
        """How long to wait before reading outcomes: none unless every child has more jobs
        queued than it runs in that time (judged by the tasks' average run time), so a child
        never runs dry while the parent waits, and a lone task's outcome is read at once."""
        takers = self._takers() or 1
        queued_each = len(self._queued) / takers - 1  # beyond the one each child runs
        if queued_each < 2:
            return 0.0
        return min(GATHER_MAX, (queued_each - 1) * self._runtime)

    def _watch(self, poller: Any, watched: dict[int, tuple[_Child | None, str]]) -> None:
        """Keep ``poller`` registered on the wake pipe and every child's pipe and sentinel."""
        wanted: dict[int, tuple[_Child | None, str]] = {self._wake_r: (None, "wake")}
        for c in self._children:
            wanted[c.outcomes] = (c, "result")
            wanted[c.process.sentinel] = (c, "exit")
        if wanted == watched:
            return
        for fd in set(watched) - set(wanted):
            poller.unregister(fd)
        for fd in set(wanted) - set(watched):
            poller.register(fd, select.POLLIN)
        watched.clear()
        watched.update(wanted)

    def _collect(self, children: list[_Child]) -> None:
        """Read the outcomes ``children`` sent and settle them together."""
        with self._lock:
            done = self._read_outcomes(children)
        if done:
            self._finish_many(done)

    def _read_outcomes(self, children: list[_Child]) -> list[tuple[Job, Outcome]]:
        """The outcomes ``children`` have sent so far (call with the pool's lock held)."""
        done: list[tuple[Job, Outcome]] = []
        for child in children:
            try:
                items = child.read()
            except OSError:
                continue  # it died: its sentinel tells
            for seq, outcome, child.retiring in items:
                self._runtime += (outcome.runtime - self._runtime) * 0.05
                job = self._queued.pop(seq, None)
                if job is not None:
                    done.append((job, outcome))
        return done

    def _running_seqs(self, exclude: _Child | None = None) -> dict[int, _Child]:
        """The job each live child runs, by sequence number."""
        running = {}
        for child in self._children:
            if child is not exclude:
                seq, _ = self._queue.slot(child.index)
                if seq:
                    running[seq] = child
        return running

    def _reap(self, child: _Child) -> None:
        """A child exited: settle the job it died under, and start another child.

        With the queue locked no child takes a job, and every child sends an outcome before
        it takes its next job, so a job that is neither queued, nor in a live child's slot,
        nor finished in an outcome sent by now was taken by the child that died."""
        child.process.join(REAP_WAIT)  # its exit code, for the outcome of what it held
        with self._lock:
            with self._queue:
                done = self._read_outcomes(self._children)
                queued = self._queue.drain()
                for data in queued:  # back, in the same order
                    self._queue.put(data)
                alive = self._running_seqs(exclude=child)
            waiting = set(map(_Queue.seq, queued))
            lost = [s for s in self._queued if s not in alive and s not in waiting]
            lost_jobs = [self._queued.pop(seq) for seq in lost]
            self._children.remove(child)
        os.close(child.outcomes)
        code = child.process.exitcode
        done += [
            (job, lost_outcome(self.app, self.hostname, job, code, child.killed_for))
            for job in lost_jobs
        ]
        if done:
            self._finish_many(done)
        self._grow()

    def _grow(self) -> bool:
        """Start children until there are as many as wanted; whether any started. In the
        supervisor thread: children die with the thread that forked them."""
        with self._lock:
            used = {c.index for c in self._children}
            missing = 0 if self._stopping else self._wanted - len(self._children)
        free = [i for i in range(self._queue.capacity) if i not in used][: max(missing, 0)]
        for index in free:
            self._spawn(index)
        return bool(free)

    def resize(self, concurrency: int) -> None:
        """Keep ``concurrency`` children: the supervisor starts the new ones; for each one
        fewer, a stop sign is queued, and the first child to take it exits (after the jobs
        queued before it have been taken)."""
        if not 1 <= concurrency <= self._queue.capacity:
            raise ValueError(f"a prefork pool runs 1 to {self._queue.capacity} processes")
        with self._lock:
            if self._stopping:
                raise ValueError("the pool is stopping")
            fewer = self._wanted - concurrency
            self._wanted = self.concurrency = concurrency
            for _ in range(fewer):
                self._queue.put(STOP)
        os.write(self._wake_w, b"x")

    def restart(self) -> bool:
        """Replace every child: each takes no more jobs and exits once its task is done (an
        idle one at once), and another, forked with the worker's code as it is now, takes
        its place."""
        with self._lock:
            if self._stopping:
                raise ValueError("the pool is stopping")
            with self._queue:
                self._queue.next_generation()
                self._queue.put(WAKE)  # idle children wait for the queue to be readable
        return True

    def _enforce_limits(self) -> None:
        now = time.monotonic()
        for child in self._children:
            seq, started = self._queue.slot(child.index)
            job = self._queued.get(seq)
            if job and job.hard_limit and now - started > job.hard_limit:
                if child.killed_for is None and child.process.pid:
                    child.killed_for = "time_limit"
                    os.kill(child.process.pid, 9)

    def pids(self) -> list[int]:
        with self._lock:
            return [c.process.pid for c in self._children if c.process.pid]

    def running(self) -> list[Job]:
        """The jobs children have taken (not those still queued for them)."""
        with self._lock:
            jobs = []
            for child in self._children:
                seq, started = self._queue.slot(child.index)
                job = self._queued.get(seq) if seq else None
                if job is not None:  # when and where it runs, for time_start and worker_pid
                    job.started_at = started or job.started_at
                    job.extra["pid"] = child.process.pid
                    jobs.append(job)
            return jobs

    def terminate_job(self, task_id: str, signum: int) -> bool:
        with self._lock, self._queue:  # no child takes another job meanwhile
            for seq, child in self._running_seqs().items():
                job = self._queued.get(seq)
                if job is not None and job.message.id == task_id and child.process.pid:
                    child.killed_for = "revoked"
                    os.kill(child.process.pid, signum)
                    return True
        return False

    def withdraw(self, unwanted: Callable[[Job], bool]) -> list[Job]:
        """Take back unwanted jobs, pending or queued for the children (not running)."""
        with self._lock:
            back = super().withdraw(unwanted)
            running = self._running_seqs()
            if not any(unwanted(j) for s, j in self._queued.items() if s not in running):
                return back
            with self._queue:  # no child takes a job meanwhile
                for data in self._queue.drain():
                    seq = _Queue.seq(data)
                    job = self._queued.get(seq) if seq is not None else None
                    if seq is not None and job is not None and unwanted(job):
                        del self._queued[seq]
                        self._running.pop(job.id, None)
                        back.append(job)
                    else:
                        self._queue.put(data)  # back, in the same order
            return back

    def cancel_pending(self) -> list[Job]:
        """Take back the jobs no child has taken yet."""
        with self._lock:
            with self._queue:
                queued = self._queue.drain()
            back = []
            for seq in map(_Queue.seq, queued):
                job = self._queued.pop(seq, None) if seq is not None else None
                if job is not None:
                    self._running.pop(job.id, None)
                    back.append(job)
            back += self._pending
            self._pending.clear()
            self._lock.notify_all()
            return back

    def terminate(self) -> list[Job]:
        """Kill the children; returns every job handed to them, queued ones included."""
        with self._lock:
            running = list(self._running.values())
            self._stopping = True
            for child in self._children:
                if child.process.pid and child.process.is_alive():
                    child.killed_for = "shutdown"
                    os.kill(child.process.pid, 9)
            with self._queue:
                self._queue.drain()  # those jobs are released with the running ones
            self._queued.clear()
            self._running.clear()
            self._lock.notify_all()
        os.write(self._wake_w, b"x")
        self._supervisor.join(5)
        return running

    def stop(self) -> None:
        super().stop()
        os.write(self._wake_w, b"x")
        self._supervisor.join(10)

    def _shutdown_children(self) -> None:
        for _ in self._children:
            with contextlib.suppress(OSError):
                self._queue.send_end.send(STOP)
        for child in self._children:
            child.process.join(3)
            if child.process.is_alive():
                child.process.kill()
                child.process.join(1)
        with contextlib.suppress(OSError), self._queue:
            self._queue.drain()  # spilled jobs' files go with them

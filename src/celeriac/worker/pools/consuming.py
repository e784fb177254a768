"""The consuming prefork pool, on brokers whose deliveries any process can settle (Redis, SQLite,
PostgreSQL): every child consumes by itself, the parent supervises.

A child is a forked copy of the worker. It claims its own share of the prefetch window
(``worker_prefetch_multiplier`` messages), runs the jobs one at a time in its main thread and
settles them itself, so a task costs no trip through the parent. The parent

* renews the leases of every message its children hold, so a long task keeps its message
  even while it never lets go of the GIL;
* kills a child whose task outlives its hard time limit, or runs a task revoked with
  ``terminate=True``;
* settles what a dead child leaves: the task it ran fails (TimeLimitExceeded,
  WorkerLostError; back to its queue on a cold shutdown), the tasks it finished whose
  acknowledgements had not gone out yet are acknowledged, the ones it had not started go back
  to their queue; and starts another child.

For that, a child reports to its parent over a pipe, which the parent reads a few dozen times
a second (a report wakes nobody): what each fetch claimed and acknowledged, each task
finished with its acknowledgement still to go, each other settlement. The job a child runs is
in the child's slot in shared memory. A child killed for a task it had just finished, having
moved on to the next, does not make that next one fail: it goes back to its queue. A child
gives the jobs it prefetched back to the queue when a task has held them up for a while
(:data:`HELD_UP_AFTER`, or four times its tasks' usual time), so a short task does not wait
behind a long one while another process could run it. Per-worker rate limits are buckets in
shared memory (:class:`~celeriac.worker.ratelimit.SharedClocks`).

Warm shutdown: the parent asks each child (``SIGUSR1``) to stop after its task; the child
gives back what it prefetched, sends its acknowledgements and exits. Cold shutdown: the
parent kills the children and gives back every message they held.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import logging
import mmap
import os
import select
import signal
import struct
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ... import signals, states
from ...brokers.base import DeadLetter, Delivery, Outgoing, QueueStats
from ...exceptions import SoftTimeLimitExceeded, TimeLimitExceeded
from ...execution import ACK, Outcome
from ...utils import keep_running
from ..ratelimit import SharedClocks
from .base import Job, Pool, SoloPool
from .processes import (
    MAX_PROCESSES,
    PIPE_SIZE,
    REAP_WAIT,
    anonymous_file,
    die_with_parent,
    lost_outcome,
    over_memory,
    read_frames,
    send_frame,
)

if TYPE_CHECKING:
    from ...brokers.base import Broker
    from ..worker import Worker

logger = logging.getLogger("celeriac.worker")

# a child's slot: the number of the delivery it runs (0: none), since when (monotonic) and
# its hard time limit (0: none)
SLOT = struct.Struct("qdd")
CLAIMED, FINISHED, SETTLED, EXITING = b"C", b"F", b"S", b"E"
READ_EVERY = 0.025  # seconds between the parent's readings of its children's reports
HELD_UP_AFTER = 1.0  # a task running this long (at least) gives back the jobs behind it
STOP = signal.SIGUSR1  # "stop after your task", to a child


class _Slots:
    """Each child's slot in shared memory: the job it runs."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.mem = mmap.mmap(-1, SLOT.size * count)

    def set(self, index: int, seq: int = 0, started: float = 0.0, hard: float = 0.0) -> None:
        SLOT.pack_into(self.mem, index * SLOT.size, seq, started, hard)

    def get(self, index: int) -> tuple[int, float, float]:
        """``(seq, started, hard limit)``, read until two reads agree (its child may be
        writing it)."""
        while True:
            first = SLOT.unpack_from(self.mem, index * SLOT.size)
            if SLOT.unpack_from(self.mem, index * SLOT.size) == first:
                return int(first[0]), float(first[1]), float(first[2])


# -- the child's side ------------------------------------------------------------------------


class _Channel:
    """A child's reports to its parent: whole frames on a pipe, one thread at a time."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._lock = threading.Lock()
        self._seq = 0
        #: the tasks run since the last claim was reported, by name (the parent's ``total``)
        self.ran: collections.Counter[str] = collections.Counter()

    def claimed(self, deliveries: Sequence[Delivery], settled: Sequence[Delivery]) -> None:
        """A fetch acknowledged ``settled`` and claimed ``deliveries`` (numbered here); the
        tasks run since the last report go with it."""
        for d in deliveries:
            self._seq += 1
            d.seq = self._seq
        fields = [(d.seq, d.body, d.queue, d.priority, d.tag, d.delivery_count) for d in deliveries]
        self._send(CLAIMED, ([d.seq for d in settled], fields, self._take_ran()))

    def count(self, name: str) -> None:
        """A task of that name ran."""
        with self._lock:
            self.ran[name] += 1

    def _take_ran(self) -> dict[str, int]:
        with self._lock:
            ran, self.ran = dict(self.ran), collections.Counter()
        return ran

    def finished(self, delivery: Delivery) -> None:
        """Its task finished; the acknowledgement goes with the next fetch."""
        self._send(FINISHED, delivery.seq)

    def settled(self, deliveries: Sequence[Delivery]) -> None:
        self._send(SETTLED, [d.seq for d in deliveries])

    def exiting(self, reason: str) -> None:
        self._send(EXITING, (reason, self._take_ran()))

    def _send(self, kind: bytes, payload: Any) -> None:
        with self._lock:
            send_frame(self.fd, (kind, payload))


class _ReportingBroker:
    """The broker as a consuming child uses it: each claim and settlement is reported."""

    def __init__(self, broker: Broker, channel: _Channel) -> None:
        self._broker = broker
        self._channel = channel
        self.url = broker.url
        self.visibility_timeout = broker.visibility_timeout
        self.local_leases = broker.local_leases

    def fetch(
        self, queues: Sequence[str], limit: int, timeout: float, acks: Sequence[Delivery] = ()
    ) -> list[Delivery]:
        got = self._broker.fetch(queues, limit, timeout, acks)
        if got or acks or self._channel.ran:
            self._channel.claimed(got, acks)
        return got

    def ack(self, delivery: Delivery) -> None:
        self._broker.ack(delivery)
        self._channel.settled([delivery])

    def ack_many(self, deliveries: Sequence[Delivery]) -> None:
        self._broker.ack_many(deliveries)
        if deliveries:
            self._channel.settled(deliveries)

    def release(self, delivery: Delivery, delay: float | None = None) -> None:
        self._broker.release(delivery, delay)
        self._channel.settled([delivery])

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        self._broker.dead_letter(delivery, reason)
        self._channel.settled([delivery])

    # the rest as they are
    def publish(self, messages: Sequence[Outgoing]) -> None:
        self._broker.publish(messages)

    def extend(self, deliveries: Sequence[Delivery]) -> None:
        self._broker.extend(deliveries)

    def queue_length(self, queue: str) -> int:
        return self._broker.queue_length(queue)

    def queue_stats(self, queue: str) -> QueueStats:
        return self._broker.queue_stats(queue)

    def purge(self, queue: str) -> int:
        return self._broker.purge(queue)

    def dead_letters(self, queue: str, limit: int = 100) -> list[DeadLetter]:
        return self._broker.dead_letters(queue, limit)

    def requeue_dead_letters(self, queue: str, ids: Sequence[Any] | None = None) -> int:
        return self._broker.requeue_dead_letters(queue, ids)

    def purge_dead_letters(self, queue: str) -> int:
        return self._broker.purge_dead_letters(queue)

    def wakeup(self) -> None:
        self._broker.wakeup()

    def close(self) -> None:
        self._broker.close()


class _ChildPool(SoloPool):
    """A consuming child's pool: one job at a time in its main thread, written into the
    child's slot while it runs."""

    name = "prefork"

    def __init__(
        self, worker: Worker, slots: _Slots, index: int, channel: _Channel, parent: int
    ) -> None:
        super().__init__(worker.app, 1, worker.on_done, worker.hostname, worker.max_tasks_per_child)
        self.slots = slots
        self.index = index
        self.channel = channel
        self.parent = parent
        self.ran = 0
        self.runtime = 0.0  # a moving average of its tasks' run times

    def _run(self, job: Job) -> Outcome:
        acked_early = job.acked  # acks_late=False
        self.slots.set(self.index, job.delivery.seq, time.monotonic(), job.hard_limit or 0.0)
        try:
            outcome = super()._run(job)
        except (SoftTimeLimitExceeded, TimeLimitExceeded):  # fired between task and return
            outcome = Outcome(ACK, states.SUCCESS)
        if outcome.action == ACK and not acked_early:
            self.channel.finished(job.delivery)  # before the slot says it is not running
        self.slots.set(self.index)
        self.channel.count(job.message.task)
        self.runtime += (outcome.runtime - self.runtime) * 0.1
        self.ran += 1
        self.retiring = bool(
            self.max_tasks_per_child and self.ran >= self.max_tasks_per_child
        ) or over_memory(self.app)
        return outcome

    def held_up(self) -> list[Job]:
        """The jobs waiting behind a task that has run for long (taken back: they will not
        run here). Also where a child notices that its parent died, on systems that do not
        kill it with its parent."""
        if os.getppid() != self.parent:
            os._exit(1)
        with self._lock:
            running = next(iter(self._running.values()), None)
            if running is None or running.started_at is None or not self._pending:
                return []
            if time.monotonic() - running.started_at < max(HELD_UP_AFTER, 4 * self.runtime):
                return []
            jobs = list(self._pending)
            self._pending.clear()
            return jobs


def _child_main(worker: Worker, pool: ConsumingPool, index: int, reports: int, parent: int) -> None:
    die_with_parent()
    if os.getppid() != parent:
        os._exit(1)
    pool.leave_to_child()
    # The parent decides about shutdown; a Ctrl-C sent to the process group is not ours.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # revoke(terminate=True)'s default
    signal.signal(STOP, lambda signum, frame: worker.stop())
    channel = _Channel(reports)
    child_pool = _ChildPool(worker, pool.slots, index, channel, parent)
    signals.worker_process_init.send(sender=None)
    reason = "failed"
    try:
        worker.run_as_child(child_pool, _ReportingBroker(worker.app.broker, channel), pool.clocks)
        done = "stopped" if worker.stopping else "drained"
        reason = "retired" if child_pool.retiring else done
    except BaseException:
        logger.exception("prefork child %d failed", index + 1)
    worker.app.events.flush()
    with contextlib.suppress(OSError):
        channel.exiting(reason)
    signals.worker_process_shutdown.send(sender=None, pid=os.getpid(), exitcode=0)
    os._exit(0)


# -- the parent's side -----------------------------------------------------------------------


def _delivery(fields: tuple[Any, ...]) -> Delivery:
    seq, body, queue, priority, tag, count = fields
    return Delivery(body, queue, priority, tag, count, seq)


class _Child:
    """A child process and what its reports say it holds."""

    def __init__(
        self,
        process: Any,
        reports: int,
        index: int,
        generation: int,
        ran: collections.Counter[str],
    ) -> None:
        self.process = process
        self.reports = reports  # the read end of its report pipe (non-blocking)
        self.index = index
        self.generation = generation  # the pool's generation it was forked in (pool_restart)
        self.killed_for: str | None = None
        self.killed_seq = 0  # the number of the delivery it was killed for
        self.exit_reason: str | None = None
        self.leaving = False  # asked to stop after its task (pool_shrink, pool_restart)
        self.held: dict[int, tuple[Any, ...]] = {}  # claimed, not settled: by number
        self.finished: set[int] = set()  # held, and finished: acknowledgement not sent yet
        self.ran = ran  # the worker's count of the tasks run, by name
        self._unread = bytearray()

    def read(self) -> None:
        """Take in the reports it wrote since the last read."""
        for kind, payload in read_frames(self.reports, self._unread):
            if kind == CLAIMED:
                self._forget(payload[0])
                for fields in payload[1]:
                    self.held[fields[0]] = fields
                self.ran.update(payload[2])
            elif kind == FINISHED:
                self.finished.add(payload)
            elif kind == SETTLED:
                self._forget(payload)
            elif kind == EXITING:
                self.exit_reason, ran = payload
                self.ran.update(ran)

    def _forget(self, seqs: list[int]) -> None:
        for seq in seqs:
            self.held.pop(seq, None)
            self.finished.discard(seq)

    def running(self, slots: _Slots) -> Delivery | None:
        """The delivery of the task it runs, if any."""
        seq = slots.get(self.index)[0]
        fields = self.held.get(seq) if seq else None
        return None if fields is None or seq in self.finished else _delivery(fields)


class ConsumingPool(Pool):
    """``concurrency`` child processes that each consume from the broker and run one job at
    a time; a supervisor thread in the parent reads their reports, enforces hard time limits,
    and settles for and replaces children that exit."""

    name = "prefork"
    consumes = True

    def __init__(self, worker: Worker) -> None:
        super().__init__(
            worker.app,
            worker.concurrency,
            worker.on_done,
            worker.hostname,
            worker.max_tasks_per_child,
        )
        self.worker = worker
        self._children: list[_Child] = []
        self._wanted = self.concurrency  # children to keep (burst mode: those not drained)
        self._generation = 0  # children forked before the last pool_restart are replaced

    def start(self) -> None:
        import multiprocessing

        self._ctx = multiprocessing.get_context("fork")
        self.slots = _Slots(max(self.concurrency, MAX_PROCESSES))
        self.clocks = SharedClocks(list(self.app.tasks), anonymous_file())
        self._wake_r, self._wake_w = os.pipe()
        # a child that gets "stop" before it can handle it ignores it, instead of dying
        with contextlib.suppress(ValueError):  # not the main thread: nothing to inherit
            signal.signal(STOP, signal.SIG_IGN)
        self._supervisor = threading.Thread(
            target=self._supervise, name="celeriac-prefork", daemon=True
        )
        self._started = threading.Event()
        self._supervisor.start()
        self._started.wait()

    def leave_to_child(self) -> None:
        """In a new child: close the parent's ends of every pipe."""
        for fd in [c.reports for c in self._children] + [self._wake_r, self._wake_w]:
            with contextlib.suppress(OSError):
                os.close(fd)

    def _spawn(self, index: int) -> None:
        generation = self._generation  # read before the fork: a restart meanwhile replaces it
        reader, writer = os.pipe()
        with contextlib.suppress(OSError, AttributeError):
            fcntl.fcntl(writer, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        os.set_blocking(reader, False)
        self.slots.set(index)
        signals.worker_before_create_process.send(sender=self)
        process = self._ctx.Process(
            target=_child_main,
            args=(self.worker, self, index, writer, os.getpid()),
            name=f"ForkPoolWorker-{index + 1}",
            daemon=True,
        )
        process.start()
        os.close(writer)
        with self._lock:
            self._children.append(_Child(process, reader, index, generation, self.worker.total))

    def _supervise(self) -> None:
        for index in range(self.concurrency):
            self._spawn(index)
        self._started.set()
        # never ends on an error: the children die with the thread that forked them
        keep_running(self._supervise_loop, "the prefork supervisor", lambda: False)

    def _supervise_loop(self) -> None:
        poller = select.poll()
        watched: dict[int, _Child | None] = {}
        next_check = 0.0
        while True:
            with self._lock:
                if self._stopping and not self._children:
                    break
                children = list(self._children)
            wanted = {self._wake_r: None, **{c.process.sentinel: c for c in children}}
            if wanted.keys() != watched.keys():
                for fd in watched.keys() - wanted.keys():
                    poller.unregister(fd)
                for fd in wanted.keys() - watched.keys():
                    poller.register(fd, select.POLLIN)
                watched = wanted
            ready = [fd for fd, _ in poller.poll(READ_EVERY * 1000)]
            if self._wake_r in ready:
                os.read(self._wake_r, 4096)
            with self._lock:
                for child in children:
                    child.read()
            for fd in ready:
                exited = watched.get(fd)
                if exited is not None:
                    self._reap(exited)
            self._top_up()
            now = time.monotonic()
            if now >= next_check:  # hard time limits, checked a few times a second
                self._enforce_limits(now)
                next_check = now + 0.05

    def _top_up(self) -> None:
        """Ask the children forked before a :meth:`restart` to stop after their task, and
        start children until as many stay as wanted (after :meth:`resize`); in the
        supervisor thread, as children die with the thread that forked them."""
        with self._lock:
            stale = [c for c in self._children if not c.leaving and c.generation < self._generation]
            for child in stale:
                child.leaving = True
        for child in stale:
            if child.process.pid:
                with contextlib.suppress(OSError):
                    os.kill(child.process.pid, STOP)
        with self._lock:
            staying = [c for c in self._children if not c.leaving]
            if self._stopping or len(staying) >= self._wanted:
                return
            used = {c.index for c in self._children}
            free = [i for i in range(self.slots.count) if i not in used]
            missing = min(self._wanted - len(staying), len(free))
        for index in free[: max(missing, 0)]:
            self._spawn(index)

    def resize(self, concurrency: int) -> None:
        """Run ``concurrency`` children: the supervisor starts the new ones; those that go
        stop after their task, giving back what they prefetched."""
        if not 1 <= concurrency <= self.slots.count:
            raise ValueError(f"a prefork pool runs 1 to {self.slots.count} processes")
        with self._lock:
            if self._stopping:
                raise ValueError("the pool is stopping")
            staying = [c for c in self._children if not c.leaving]
            going = staying[concurrency:] if len(staying) > concurrency else []
            for child in going:
                child.leaving = True
            self._wanted = self.concurrency = concurrency
        for child in going:
            if child.process.pid:
                with contextlib.suppress(OSError):
                    os.kill(child.process.pid, STOP)
        os.write(self._wake_w, b"x")

    def restart(self) -> bool:
        """Replace every child: new ones are forked (with the worker's code as it is now),
        and the old ones stop after their task, giving back what they prefetched."""
        with self._lock:
            if self._stopping:
                raise ValueError("the pool is stopping")
            self._generation += 1
        os.write(self._wake_w, b"x")
        return True

    def _reap(self, child: _Child) -> None:
        """A child exited: settle what it held, and start another one (unless stopping, or
        it ran out of work in burst mode)."""
        child.process.join(REAP_WAIT)  # its exit code, for the outcome of what it held
        with self._lock:
            child.read()  # what it wrote before it went
            self._children.remove(child)
            running = child.running(self.slots)
            held = [_delivery(f) for f in child.held.values()]
            finished = [d for d in held if d.seq in child.finished]
            if child.exit_reason == "drained":
                self._wanted -= 1
            respawn = not self._stopping and len(self._children) < self._wanted
        os.close(child.reports)
        self.slots.set(child.index)
        back = [d for d in held if d.seq not in child.finished and d is not running]
        if running is not None:
            job = self.worker.consumer.job_for(running)
            if job is None:  # cannot be read (it would have been dead-lettered): give it back
                back.append(running)
            else:
                reason = child.killed_for
                if reason is not None and running.seq != child.killed_seq:
                    reason = "another task"  # killed for the one it had just finished
                code = child.process.exitcode
                self.on_done([(job, lost_outcome(self.app, self.hostname, job, code, reason))])
        self.worker.consumer.take_back(finished, back)
        if respawn:
            self._spawn(child.index)
        with self._lock:
            self._lock.notify_all()

    def _kill(self, child: _Child, reason: str, seq: int, signum: int = signal.SIGKILL) -> None:
        if child.process.pid and child.killed_for is None:
            child.killed_for, child.killed_seq = reason, seq
            with contextlib.suppress(OSError):
                os.kill(child.process.pid, signum)

    def _enforce_limits(self, now: float) -> None:
        with self._lock:
            children = list(self._children)
        for child in children:
            seq, started, hard = self.slots.get(child.index)
            if seq and hard and now - started > hard:
                self._kill(child, "time_limit", seq)

    # -- what the worker asks ---------------------------------------------------------------

    def held(self) -> list[Delivery]:
        """Every delivery the children hold, finished ones whose acknowledgement has not gone
        out yet included: the worker renews their leases."""
        with self._lock:
            for child in self._children:
                child.read()
            return [_delivery(f) for c in self._children for f in c.held.values()]

    def pids(self) -> list[int]:
        with self._lock:
            return [c.process.pid for c in self._children if c.process.pid]

    def running(self) -> list[Job]:
        with self._lock:
            for child in self._children:
                child.read()
            running = [(c, c.running(self.slots), self.slots.get(c.index)) for c in self._children]
        jobs = []
        for child, delivery, (_, started, _) in running:
            job = self.worker.consumer.job_for(delivery) if delivery is not None else None
            if job is not None:  # when and where it runs, for inspect's time_start, worker_pid
                job.started_at = started or job.started_at
                job.extra["pid"] = child.process.pid
                jobs.append(job)
        return jobs

    def terminate_job(self, task_id: str, signum: int) -> bool:
        with self._lock:
            for child in self._children:
                child.read()
            running = [(c, c.running(self.slots)) for c in self._children]
        for child, delivery in running:
            job = self.worker.consumer.job_for(delivery) if delivery is not None else None
            if job is not None and job.message.id == task_id:
                self._kill(child, "revoked", job.delivery.seq, signum)
                return True
        return False

    def cancel_pending(self) -> list[Job]:
        """Ask every child to stop after its task (giving back what it prefetched)."""
        with self._lock:
            self._stopping = True
            children = list(self._children)
        for child in children:
            if child.process.pid:
                with contextlib.suppress(OSError):
                    os.kill(child.process.pid, STOP)
        return []

    def _working(self) -> bool:
        return bool(self._children)  # join() waits for them to exit, once asked to stop

    def terminate(self) -> list[Job]:
        """Kill the children; the messages they held go back to their queues."""
        with self._lock:
            self._stopping = True
            children = list(self._children)
        for child in children:
            self._kill(child, "shutdown", self.slots.get(child.index)[0])
        self.join(10)
        return []

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
        os.write(self._wake_w, b"x")
        self._supervisor.join(10)

    def finished(self) -> bool:
        with self._lock:
            return self._wanted == 0

    def busy(self) -> bool:
        with self._lock:
            return bool(self._children)

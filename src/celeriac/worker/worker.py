"""The worker: consume under leases, hand jobs to a pool, settle messages, shut down cleanly.

One message's path: ``fetch`` (leased) -> :meth:`Worker._receive` (decode, reject bad input to
the dead-letter queue, skip revoked/finished ids) -> pool -> executor -> :meth:`Worker._on_done`
(ack, release or dead-letter). A heartbeat thread extends the leases of every message held.
"""

from __future__ import annotations

import gc
import heapq
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .. import signals, states, subscriptions, workflow
from .._state import Context
from ..beat import Beat
from ..brokers.base import Broker, Delivery, dead_letter_queue
from ..exceptions import (
    ImproperlyConfigured,
    InvalidTaskError,
    OperationalError,
    WorkerLostError,
)
from ..execution import ACK, DEAD_LETTER, REQUEUE, Outcome, make_request
from ..keys import REVOCATIONS_KEY, REVOKED_SET
from ..message import Message
from ..routing import Broadcast, join_broadcasts, leave_broadcasts, private_queue
from ..serialization import content_types
from ..utils import keep_running, safe_str
from ..utils.urls import safe_url
from .keeper import LeaseKeeper
from .pools import AsyncioPool, ConsumingPool, FedPool, Job, Pool, SoloPool, ThreadPool
from .ratelimit import RateLimits, SharedClocks
from .remote import Remote
from .settle import Settlements

if TYPE_CHECKING:
    from ..app import Celeriac

logger = logging.getLogger("celeriac.worker")


POOLS: dict[str, type[Pool]] = {
    "prefork": FedPool,
    "processes": FedPool,
    "threads": ThreadPool,
    "asyncio": AsyncioPool,
    "solo": SoloPool,
}

#: How often a worker looks for new revocations (seconds).
REVOCATION_CHECK_INTERVAL = 0.5


class ColdShutdown(BaseException):
    """Raised in the main thread to abandon a task running there (solo pool)."""


class _Chores:
    """Runs a background thread's chores one at a time, so one that fails does not keep the
    others from running. Each failure is logged once, and its end once, per chore: an
    outage of the broker or result backend is one line, not one per heartbeat."""

    def __init__(self) -> None:
        self.failing: set[str] = set()

    def run(self, name: str, chore: Callable[[], object]) -> None:
        try:
            chore()
        except OperationalError as exc:
            if name not in self.failing:
                self.failing.add(name)
                logger.warning("%s failed: %s", name, safe_str(exc))
        except Exception:
            if name not in self.failing:
                self.failing.add(name)
                logger.exception("%s failed", name)
        else:
            if name in self.failing:
                self.failing.discard(name)
                logger.warning("%s works again", name)


def expand_hostname(name: str | None) -> str:
    """``-n`` value with ``%h`` (host), ``%n`` (short host), ``%d`` (domain) expanded."""
    host = socket.gethostname()
    short, _, domain = host.partition(".")
    name = name or "celeriac@%h"
    if "@" not in name:
        name = f"{name}@%h"
    return name.replace("%h", host).replace("%n", short).replace("%d", domain)


class Worker:
    """Consumes ``queues`` and runs their tasks in a pool until stopped."""

    def __init__(
        self,
        app: Celeriac,
        queues: Sequence[str] | str | None = None,
        exclude_queues: Sequence[str] | str | None = None,
        concurrency: int | None = None,
        pool: str | None = None,
        hostname: str | None = None,
        prefetch_multiplier: int | None = None,
        max_tasks_per_child: int | None = None,
        burst: bool = False,
        beat: bool = False,
        install_signal_handlers: bool = True,
        lease_keeper: bool | None = None,
        **kwargs: Any,
    ) -> None:
        conf = app.conf
        self.app = app
        self.hostname = expand_hostname(hostname)
        self.queues = _queue_list(queues) or list(app.queues) or [conf.task_default_queue]
        excluded = set(_queue_list(exclude_queues))
        self.queues = [q for q in self.queues if q not in excluded]
        if not self.queues:
            raise ImproperlyConfigured("no queues left to consume after -X")
        self.broadcasts = [q for q in self.queues if isinstance(app.queues.get(q), Broadcast)]
        if self.broadcasts and not app.results.enabled:
            raise ImproperlyConfigured("broadcast queues need a result backend")
        self.queues = [
            private_queue(q, self.hostname) if q in self.broadcasts else q for q in self.queues
        ]
        self.queue_order = conf.worker_queue_order or "round_robin"
        if self.queue_order not in ("round_robin", "priority"):
            raise ImproperlyConfigured(
                f"worker_queue_order must be 'round_robin' or 'priority', not {self.queue_order!r}"
            )
        self._rotation = 0
        self.pool_name = pool or conf.worker_pool
        if self.pool_name not in POOLS:
            raise ImproperlyConfigured(f"unknown pool {self.pool_name!r}: use {', '.join(POOLS)}")
        default_c = 100 if self.pool_name == "asyncio" else (os.cpu_count() or 1)
        self.concurrency = (
            1
            if self.pool_name == "solo"
            else int(concurrency or conf.worker_concurrency or default_c)
        )
        multiplier = (
            prefetch_multiplier
            if prefetch_multiplier is not None
            else conf.worker_prefetch_multiplier
        )
        self.prefetch_multiplier = max(1, int(multiplier))
        self.max_inflight = self.concurrency * self.prefetch_multiplier
        self.fetch_batch = max(1, self.max_inflight // 2)
        self.max_tasks_per_child = max_tasks_per_child or conf.worker_max_tasks_per_child
        self.burst = burst
        self.embed_beat = beat
        self.beat: Any = None
        self.install_signal_handlers = install_signal_handlers
        # a lease keeper process (see keeper.py) when tasks run in this process and the
        # worker owns the process (it is the program, not a thread of another one)
        if lease_keeper is None:
            lease_keeper = install_signal_handlers
        self.keeper: LeaseKeeper | None = None
        self._wants_keeper = lease_keeper and self.pool_name in ("threads", "asyncio", "solo")
        self.accept = content_types(conf.accept_content)
        self.max_deliveries = conf.worker_max_deliveries
        self.exitcode = 0
        self._inflight: dict[int, Job] = {}
        self._inflight_lock = threading.Lock()
        self.settlements = Settlements(lambda: self.broker)
        self._chores = _Chores()
        self._room = threading.Event()
        self._stop_requested = False
        self._cold = False
        self._done = threading.Event()
        self._next_job_id = 0
        self.pool: Pool | None = None
        self.rate_limits = RateLimits(app, disabled=bool(conf.worker_disable_rate_limits))
        # jobs waiting for their rate limit: (monotonic time to try again, job id, job); only
        # the consumer thread touches it. They stay in flight (leases renewed) but do not take
        # prefetch room, so other tasks keep running.
        self._held: list[tuple[float, int, Job]] = []
        self.max_held = self.max_inflight * 10
        self._revocations: bytes | None = None  # the counter value the set was read at
        self._revoked: frozenset[str] = frozenset()
        self._failures = 0  # fetches failed in a row
        self._broker: Broker | None = None  # a prefork child's: it reports to its parent
        self.remote = Remote(self)

    @property
    def broker(self) -> Broker:
        """The broker this worker consumes from."""
        return self._broker or self.app.broker

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> int:
        """Run until stopped (or, in burst mode, until the queues are empty); returns the
        exit code."""
        app = self.app
        signals.celeryd_init.send(sender=self.hostname, instance=self, conf=app.conf, options={})
        signals.import_modules.send(sender=app)
        app.finalize()
        signals.worker_init.send(sender=self)
        self._wait_for_broker()
        self._join_broadcasts()
        subscriptions.announce(app)
        signals.celeryd_after_setup.send(sender=self.hostname, instance=self, conf=app.conf)
        self._chores.run("reading revocations", self._refresh_revocations)
        # what start-up made lives as long as the worker: keep it out of the collector's
        # scans (and out of the pages it would write to in forked children)
        gc.freeze()
        if self._wants_keeper and not self.broker.local_leases:
            self.keeper = LeaseKeeper(self.broker, self._beat_interval())
            self.keeper.start()
        self.pool = self._make_pool()
        self.pool.start()
        if self.install_signal_handlers:
            self._install_signals()
        # from here on, control requests are this worker's too
        self._chores.run("answering control requests", self._answer_control)
        heartbeat = threading.Thread(target=self._heartbeat, name="celeriac-heartbeat", daemon=True)
        heartbeat.start()
        logger.info(
            "%s ready: %s, queues %s, pool %s (concurrency %d)",
            self.hostname,
            safe_url(app.broker.url),
            ",".join(self.queues),
            self.pool_name,
            self.concurrency,
        )
        signals.worker_ready.send(sender=self)
        beat_thread = self._start_beat()
        try:
            if self.pool.consumes:
                self._supervise()
            else:
                self._consume()
        except ColdShutdown:
            self._cold = True
        finally:
            if self.beat is not None:
                self.beat.stop()
                beat_thread.join(10)  # type: ignore[union-attr]
            self._shutdown()
            self._done.set()
            heartbeat.join(2)
        return self.exitcode

    def _make_pool(self) -> Pool:
        """The pool. Prefork children consume from the broker themselves unless its leases
        live in one process (then the parent consumes and hands them jobs)."""
        if POOLS[self.pool_name] is FedPool and not self.app.broker.local_leases:
            return ConsumingPool(self)
        return POOLS[self.pool_name](
            self.app, self.concurrency, self._on_done, self.hostname, self.max_tasks_per_child
        )

    def _start_beat(self) -> threading.Thread | None:
        """``-B``: run beat in this process, in a thread of its own."""
        if not self.embed_beat:
            return None
        self.beat = Beat(self.app)
        signals.beat_embedded_init.send(sender=self.beat)
        thread = threading.Thread(target=self.beat.run, name="celeriac-beat", daemon=True)
        thread.start()
        return thread

    def stop(self, cold: bool = False) -> None:
        """Ask the worker to stop: warm (finish running tasks) or cold (abandon them)."""
        if cold or self._stop_requested:
            self._cold = True
        self._stop_requested = True
        self._room.set()
        self.broker.wakeup()

    def _install_signals(self) -> None:
        def on_term(signum: int, frame: Any) -> None:
            name = signal.Signals(signum).name
            if self._stop_requested or signum == signal.SIGQUIT:
                logger.warning("worker: Cold shutdown (%s)", name)
                self.stop(cold=True)
                if self.pool_name == "solo" and self.pool is not None and self.pool.running():
                    raise ColdShutdown()
            else:
                logger.warning("worker: Warm shutdown (%s)", name)
                signals.worker_shutting_down.send(
                    sender=self.hostname, sig=name, how="Warm", exitcode=0
                )
                self.stop()

        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
            signal.signal(sig, on_term)

    def _wait_for_broker(self) -> None:
        conf = self.app.conf
        retries = conf.broker_connection_max_retries or 0
        delay = 1.0
        attempt = 0
        while True:
            try:
                self.broker.queue_length(self.queues[0])
                return
            except OperationalError as exc:
                attempt += 1
                if not conf.broker_connection_retry_on_startup or (retries and attempt > retries):
                    raise
                logger.error(
                    "Cannot connect to %s: %s. Trying again in %.0f seconds...",
                    safe_url(self.broker.url),
                    exc,
                    delay,
                )
                if self._sleep(delay):
                    raise
                delay = min(delay * 2, 32.0)

    def _sleep(self, seconds: float) -> bool:
        """Sleep unless asked to stop; True if stopping."""
        end = time.monotonic() + seconds
        while not self._stop_requested and time.monotonic() < end:
            time.sleep(min(0.1, end - time.monotonic()))
        return self._stop_requested

    # -- consuming ------------------------------------------------------------------------

    def _consume(self) -> None:
        assert self.pool is not None
        while not self._stop_requested:
            self.pool.poll()
            until_held = self._admit_held()
            with self._inflight_lock:
                room = self._room_left()
            # Fetch in batches: while the pool still has work waiting, wait until half the
            # prefetch window is free, so one broker round trip brings several messages.
            refill = room >= self.fetch_batch or not self.pool.has_pending()
            if room <= 0 or not refill or len(self._held) >= self.max_held:
                self._room.wait(min(0.5, until_held))
                self._room.clear()
                continue
            timeout = 0.0 if self.pool.busy() and self.pool_name == "solo" else 1.0
            if self._fetch_and_receive(room, min(timeout, until_held)) is False:
                return

    def _fetch_and_receive(self, room: int, timeout: float) -> bool | None:
        """Fetch up to ``room`` messages (waiting up to ``timeout``), sending the queued
        acknowledgements along, and receive them. True if any came; None if the broker
        failed (after a pause that grows with each failure in a row); False when, in burst
        mode, nothing is left to do."""
        if self.burst:
            timeout = min(timeout, 0.05)
        acks = self.settlements.take_acks()  # those gathered since the last fetch go with it
        try:
            deliveries = self._fetch(room, timeout, acks)
        except Exception as exc:
            self.settlements.keep_acks(acks)
            self._failures += 1
            if not isinstance(exc, OperationalError):  # a bug: say so, and keep consuming
                logger.exception("fetching from %s failed", safe_url(self.broker.url))
            elif self._failures == 1:
                logger.warning(
                    "broker %s unavailable (%s); reconnecting", safe_url(self.broker.url), exc
                )
            self._sleep(min(2.0 ** (self._failures - 1), 32.0))
            return None
        if self._failures:
            logger.warning("broker connection restored after %d attempt(s)", self._failures)
            self._failures = 0
        if deliveries:
            if self.keeper is not None:
                self.keeper.add(deliveries)
            self._receive(deliveries)
            return True
        return False if self.burst and self._drained() else None

    def _supervise(self) -> None:
        """The parent of consuming children: settle what dead children left behind (their
        acknowledgements are queued here) until asked to stop, or, in burst mode, until
        every child has found its queues empty."""
        assert self.pool is not None
        while not self._stop_requested and not self.pool.finished():
            self._room.wait(0.5)
            self._room.clear()
            self.settlements.flush_acks()

    @property
    def stopping(self) -> bool:
        """Asked to stop."""
        return self._stop_requested

    def run_as_child(self, pool: Pool, broker: Broker, clocks: SharedClocks) -> None:
        """A prefork child's life (in the forked copy of its parent's worker): consume with
        ``broker`` and run each job here, in ``pool``, until asked to stop, retired by
        ``max_tasks_per_child`` or, in burst mode, out of work. The parent renews the
        leases; this process keeps its revoked ids and rate limits up to date, and gives
        back the jobs it prefetched when a long task holds them up."""
        self._broker, self.pool = broker, pool
        self.concurrency = 1
        self.max_inflight = self.prefetch_multiplier
        self.fetch_batch = max(1, self.max_inflight // 2)
        self.max_held = self.max_inflight * 10
        # the parent's state at the fork, and its threads' locks, are not this process's
        self._inflight_lock = threading.Lock()
        self._room = threading.Event()
        self._done = threading.Event()
        self._inflight, self._held = {}, []
        self.settlements = Settlements(lambda: self.broker)
        self._chores = _Chores()
        self.rate_limits = self.rate_limits.sharing(clocks)
        self._chores.run("reading revocations", self._refresh_revocations)
        pool.start()
        watcher = threading.Thread(target=self._watch_child, name="celeriac-watch", daemon=True)
        watcher.start()
        try:
            self._consume_here()
        finally:
            held, self._held = [entry[2] for entry in self._held], []
            self._release(held + pool.cancel_pending())
            self.settlements.retry()
            self.settlements.flush_acks()
            self._done.set()
            watcher.join(2)

    def _consume_here(self) -> None:
        """A consuming child's loop: run the jobs it holds one at a time; when none is left,
        fetch (sending the acknowledgements gathered meanwhile), waiting for messages."""
        pool = self.pool
        assert pool is not None
        while not self._stop_requested and not pool.retiring:
            until_held = self._admit_held()
            if pool.has_pending():
                pool.poll()
                continue
            with self._inflight_lock:
                room = self._room_left()
            if room > 0 and len(self._held) < self.max_held:
                if self._fetch_and_receive(room, min(1.0, until_held)) is False:
                    return
            else:  # every message held for its rate limit
                self._room.wait(min(0.5, until_held))
                self._room.clear()

    def _watch_child(self) -> None:
        keep_running(self._watch_child_loop, "the prefork child's watcher", self._done.is_set)

    def _watch_child_loop(self) -> None:
        """A consuming child's second thread: new revocations (prefetched revoked or expired
        jobs are dropped), rate limits, settlements that failed, and jobs held up behind a
        long task given back to the queue for other processes."""
        pool = self.pool
        assert pool is not None
        interval = self._beat_interval()
        next_beat = time.monotonic() + interval
        chores = self._chores
        while not self._done.wait(REVOCATION_CHECK_INTERVAL):
            chores.run("reading revocations", self._refresh_revocations)
            chores.run("withdrawing revoked jobs", self._withdraw_unwanted)
            chores.run("giving back held-up jobs", lambda: self._release(pool.held_up()))
            if time.monotonic() < next_beat:
                continue
            next_beat = time.monotonic() + interval
            chores.run("settling", self.settlements.retry)
            chores.run("reading rate limits", self.rate_limits.refresh)

    def _fetch(self, room: int, timeout: float, acks: list[Delivery]) -> list[Delivery]:
        """Claim up to ``room`` messages. Across queues the highest priority comes first; among
        equal priorities, ``worker_queue_order="priority"`` prefers queues in ``-Q`` order
        (a queue is drained before the next is touched), and ``"round_robin"`` rotates which
        queue is preferred on each fetch."""
        broker, queues = self.broker, self.queues
        if len(queues) == 1:
            return broker.fetch(queues, room, timeout, acks)
        if self.queue_order == "priority":
            for queue in queues[:-1]:
                found = broker.fetch([queue], room, 0.0, acks)
                acks = []
                if found:
                    return found
            return broker.fetch(queues, room, timeout, acks)
        self._rotation = (self._rotation + 1) % len(queues)
        rotated = queues[self._rotation :] + queues[: self._rotation]
        return broker.fetch(rotated, room, timeout, acks)

    def _drained(self) -> bool:
        """Burst mode: nothing held, nothing running, nothing waiting (delayed included)."""
        assert self.pool is not None
        with self._inflight_lock:
            if self._inflight or self._held or self.settlements or self.pool.busy():
                return False
        return all(self.broker.queue_length(q) == 0 for q in self.queues)

    def _receive(self, deliveries: list[Delivery]) -> None:
        """Decode what a fetch brought and start, skip or dead-letter each message. Nothing
        in a message stops the worker: one that breaks an assumption of celeriac's own code
        is dead-lettered with the error."""
        candidates: list[tuple[Delivery, Message]] = []
        for d in deliveries:
            try:
                message = self._admissible(d)
            except Exception as exc:
                self._internal_error(d, exc, "receiving")
                continue
            if message is not None:
                candidates.append((d, message))
        if not candidates:
            return
        # only redelivered or revoked ids can need skipping: read just their states
        metas = self._metas([m.id for d, m in candidates if d.redelivered or m.id in self._revoked])
        now = time.time()
        for d, message in candidates:
            try:
                self._start(d, message, metas.get(message.id), now)
            except Exception as exc:
                self._internal_error(d, exc, "starting")

    def _admissible(self, d: Delivery) -> Message | None:
        """The message of ``d`` if it may run here; else it is dead-lettered (a defect the
        broker found, too many deliveries, bad bytes, an unknown task) and None."""
        if d.defect is not None:
            logger.error("Rejected a bad message from queue %s: %s", d.queue, d.defect)
            self._dead_letter(d, d.defect)
            return None
        if self.max_deliveries and d.delivery_count > self.max_deliveries:
            self._poisoned(d)
            return None
        try:
            message = Message.decode(d.body, self.accept)
            workflow.check(message)
        except InvalidTaskError as exc:
            logger.error("Rejected a bad message from queue %s: %s", d.queue, exc)
            signals.task_rejected.send(sender=None, message=d.body, exc=exc)
            self._dead_letter(d, f"invalid message: {exc}")
            return None
        if message.task not in self.app.tasks:
            logger.error(
                "Received unregistered task %r (id %s); moved to %s.dlq",
                message.task,
                message.id,
                d.queue,
            )
            signals.task_unknown.send(
                sender=None,
                name=message.task,
                id=message.id,
                message=message.to_dict(),
                exc=None,
            )
            self._dead_letter(d, f"unknown task {message.task!r}")
            return None
        return message

    def _poisoned(self, d: Delivery) -> None:
        """A message delivered more often than ``worker_max_deliveries`` (its task keeps
        killing its process, or its workers die): dead-lettered, and its task recorded as
        failed, so waiting on its result does not hang."""
        reason = (
            f"delivered {d.delivery_count} times without completing "
            f"(worker_max_deliveries={self.max_deliveries})"
        )
        try:
            message: Message | None = Message.decode(d.body, self.accept)
        except InvalidTaskError:
            message = None
        if message is not None:
            logger.error(
                "Task %s[%s] %s; moved to %s.dlq", message.task, message.id, reason, d.queue
            )
            if self.app.results.enabled and not message.ignore_result:
                lost = WorkerLostError(f"{reason}; moved to {dead_letter_queue(d.queue)}")
                try:
                    self.app.results.store_failure(message.id, lost, message.task, None)
                except OperationalError as exc:
                    logger.warning("could not record %s as failed: %s", message.id, exc)
        self._dead_letter(d, reason)

    def _start(
        self, d: Delivery, message: Message, meta: dict[str, Any] | None, now: float
    ) -> None:
        """Run a received message, unless it was revoked, expired, or already finished (a
        redelivered copy: its workflow steps are replayed instead)."""
        state = meta["status"] if meta is not None else None
        if state == states.REVOKED:
            self._discard_revoked(d, message, expired=False)
        elif meta is not None and state in states.READY_STATES and d.redelivered:
            self._replay(d, message, meta)
        elif message.expires is not None and message.expires < now:
            self._discard_revoked(d, message, expired=True)
        else:
            self._dispatch(d, message)

    def _internal_error(self, d: Delivery, exc: Exception, stage: str) -> None:
        logger.error(
            "Internal error %s a message from queue %s; dead-lettered", stage, d.queue, exc_info=exc
        )
        self._dead_letter(d, f"internal error {stage} it: {type(exc).__name__}: {safe_str(exc)}")

    def _metas(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        if not ids or not self.app.results.enabled:
            return {}
        try:
            return self.app.results.metas(ids)
        except OperationalError as exc:
            logger.warning("result backend unavailable (%s); not checking for duplicates", exc)
            return {}

    def _replay(self, d: Delivery, message: Message, meta: dict[str, Any]) -> None:
        """A redelivered task that already finished: not run again, but its workflow steps
        (callbacks, the chain's next step, the chord join) are redone where they may have
        been cut short."""
        logger.info(
            "Task %s[%s] already %s; redelivered copy acknowledged",
            message.task,
            message.id,
            meta["status"],
        )
        try:
            request = make_request(self.app.tasks[message.task], message, None, {})
            workflow.replay(self.app, request, meta)
        except OperationalError as exc:
            logger.warning("could not replay %s's workflow steps (%s); later", message.id, exc)
            self.settlements.settle(d, REQUEUE, delay=1.0, what=message.id)
            return
        self.settlements.settle(d, ACK, what=message.id)

    def _job(self, d: Delivery, message: Message) -> Job:
        task = self.app.tasks[message.task]
        conf = self.app.conf
        self._next_job_id += 1
        return Job(
            id=self._next_job_id,
            message=message,
            delivery=d,
            task=task,
            soft_limit=message.soft_time_limit or task.soft_time_limit or conf.task_soft_time_limit,
            hard_limit=message.time_limit or task.time_limit or conf.task_time_limit,
        )

    def job_for(self, d: Delivery) -> Job | None:
        """The job of a delivery a prefork child held (None if it cannot be read, or names
        a task this worker does not know)."""
        try:
            message = Message.decode(d.body, self.accept)
        except InvalidTaskError:
            return None
        return self._job(d, message) if message.task in self.app.tasks else None

    def take_back(self, finished: list[Delivery], unstarted: list[Delivery]) -> None:
        """Settle what a dead prefork child held: acknowledge the tasks it finished (with
        the next flush of acknowledgements) and give back the ones it had not started."""
        if finished:
            self.settlements.ack_later(finished)
            self._room.set()
        for d in unstarted:
            self.settlements.settle(d, REQUEUE, what="a message a dead child held")

    def _dispatch(self, d: Delivery, message: Message) -> None:
        assert self.pool is not None
        job = self._job(d, message)
        task, conf = job.task, self.app.conf
        acks_late = task.acks_late if task.acks_late is not None else conf.task_acks_late
        if not acks_late:
            self.settlements.settle(d, ACK, what=f"{message.task}[{message.id}]")
            job.acked = True
        with self._inflight_lock:
            self._inflight[job.id] = job
        if signals.task_received.has_receivers():
            request = self._request(message, job.delivery_info)
            signals.task_received.send(sender=self, request=request)
        logger.info("Task %s[%s] received", message.task, message.id)
        try:
            self._admit(job)
        except Exception:
            self._forget(job)  # dead-lettered by the caller
            raise

    # -- rate limits ----------------------------------------------------------------------

    def _admit(self, job: Job) -> None:
        """Start ``job`` now, or hold it until its rate limit lets it start."""
        assert self.pool is not None
        if job.message.id in self._revoked:  # revoked while it was held
            self._drop(job, expired=False)
            return
        wait = self.rate_limits.wait(job.task)
        if wait <= 0:
            self.pool.submit(job)
        else:
            heapq.heappush(self._held, (time.monotonic() + wait, job.id, job))

    def _admit_held(self) -> float:
        """Start held jobs whose turn has come; returns seconds until the next one's."""
        now = time.monotonic()
        while self._held and self._held[0][0] <= now:
            job = heapq.heappop(self._held)[2]
            try:
                self._admit(job)
            except Exception as exc:
                self._forget(job)
                self._internal_error(job.delivery, exc, "starting")
        return max(0.0, self._held[0][0] - now) if self._held else 1.0

    def set_rate_limit(self, task_name: str, rate: str | None) -> None:
        """Change a task's rate limit in this worker (the remote-control hook)."""
        self.rate_limits.set(task_name, rate)

    def _request(self, message: Message, delivery_info: dict[str, Any]) -> Context:
        """The request signals see for a message the worker holds."""
        return Context(
            id=message.id,
            task=self.app.tasks[message.task],
            args=message.args,
            kwargs=message.kwargs,
            hostname=self.hostname,
            delivery_info=delivery_info,
        )

    def _discard_revoked(self, d: Delivery, message: Message, expired: bool) -> None:
        task = self.app.tasks[message.task]
        request = self._request(message, {"queue": d.queue, "routing_key": d.queue})
        what = f"{message.task}[{message.id}]"
        if expired:
            logger.info("Task %s expired; not run", what)
            if self.app.results.enabled and not message.ignore_result:
                try:
                    self.app.results.store(message.id, states.REVOKED, None, None, message.task)
                except OperationalError as exc:
                    logger.warning("could not record %s as REVOKED: %s", what, exc)
            self._dead_letter(d, "expired before it could run", what)
        else:
            logger.info("Discarding revoked task: %s", what)
            self.settlements.settle(d, ACK, what=what)
        signals.task_revoked.send(
            sender=task, request=request, terminated=False, signum=None, expired=expired
        )

    def _dead_letter(self, d: Delivery, reason: str, what: str = "") -> None:
        self.settlements.settle(d, DEAD_LETTER, reason, what=what)

    # -- settling -------------------------------------------------------------------------

    def _on_done(self, done: list[tuple[Job, Outcome]]) -> None:
        """Settle finished jobs. Acknowledgements are queued and sent together before the
        next fetch (one round trip for many); their leases are renewed until then, and a
        copy redelivered meanwhile is recognised as finished. The rest settle at once."""
        acks: list[Job] = []
        rest: list[tuple[Job, Outcome]] = []
        for job, outcome in done:  # the usual case, a finished task to acknowledge
            if outcome.action == ACK and not job.acked:
                acks.append(job)
            else:
                rest.append((job, outcome))
        if acks:
            # queued before the jobs leave the in-flight set: the heartbeat, which renews
            # the leases of both, never misses one
            self.settlements.ack_later([job.delivery for job in acks])
            with self._inflight_lock:
                for job in acks:
                    job.acked = True
                    self._inflight.pop(job.id, None)
                room = self._room_left()
            self._wake_consumer(room)
        for job, outcome in rest:
            self._settle(job, outcome)

    def _settle(self, job: Job, outcome: Outcome) -> None:
        """Ack, requeue or dead-letter the job's message, and forget the job. A settlement
        the broker cannot take now is kept, and made as soon as it can (meanwhile its lease
        is renewed): a finished task is not redelivered because its ack was lost."""
        if not job.acked:
            job.acked = True
            self.settlements.settle(
                job.delivery,
                outcome.action,
                outcome.reason or outcome.state,
                outcome.requeue_delay,
                what=f"{job.task.name}[{job.message.id}]",
            )
        self._forget(job)

    def _room_left(self) -> int:
        """How many more messages the prefetch window takes (held jobs take none; call
        with the in-flight lock held)."""
        return self.max_inflight - (len(self._inflight) - len(self._held))

    def _forget(self, job: Job) -> None:
        with self._inflight_lock:
            self._inflight.pop(job.id, None)
            room = self._room_left()
        self._wake_consumer(room)

    def _wake_consumer(self, room: int) -> None:
        """Wake the consumer if, with ``room`` free, it would fetch (see _consume): not
        for every finished task."""
        if room >= self.fetch_batch or self.pool is None or not self.pool.has_pending():
            self._room.set()

    def _release(self, jobs: list[Job]) -> None:
        """Give back jobs that will not run here."""
        for job in jobs:
            self._settle(job, Outcome(REQUEUE, states.PENDING))

    def _beat_interval(self) -> float:
        """Seconds between lease renewals: a third of the lease, at most 10."""
        return max(0.2, min(self.broker.visibility_timeout / 3.0, 10.0))

    def _heartbeat(self) -> None:
        keep_running(self._heartbeat_loop, "the heartbeat thread", self._done.is_set)

    def _heartbeat_loop(self) -> None:
        """Every half second: new revocations (and the prefetched jobs they withdraw) and
        control requests; every third of the lease: the leases of every message held,
        settlements that failed, run-time rate limits, broadcast membership and the
        result cleanup. Each chore fails on its own (see :class:`_Chores`): one that raises
        does not keep the others, above all the lease renewal, from running."""
        backend = self.app.backend
        interval = self._beat_interval()
        cleanup_every = float(self.app.conf.worker_result_cleanup_interval or 0)
        next_cleanup = time.monotonic() + min(cleanup_every, 30.0)
        next_beat = time.monotonic() + interval
        chores = self._chores
        while not self._done.wait(min(interval, REVOCATION_CHECK_INTERVAL)):
            chores.run("reading revocations", self._refresh_revocations)
            chores.run("withdrawing revoked jobs", self._withdraw_unwanted)
            chores.run("answering control requests", self._answer_control)
            if time.monotonic() < next_beat:
                continue
            next_beat = time.monotonic() + interval
            chores.run("settling", self.settlements.retry)
            chores.run("renewing leases", self._renew_leases)
            chores.run("reading rate limits", self.rate_limits.refresh)
            chores.run("joining broadcast queues", self._join_broadcasts)
            if backend is not None and cleanup_every and time.monotonic() > next_cleanup:
                next_cleanup = time.monotonic() + cleanup_every
                chores.run("cleaning up results", backend.cleanup)
            signals.heartbeat_sent.send(sender=self)

    def _renew_leases(self) -> None:
        """Extend the lease of every message this worker (or its children) holds."""
        with self._inflight_lock:
            held = [j.delivery for j in self._inflight.values() if not j.acked]
        held += self.settlements.held()
        if self.pool is not None:
            held += self.pool.held()
        if self.keeper is not None:
            self.keeper.hold(held)
        if held:
            try:
                self.broker.extend(held)
            except OperationalError as exc:
                raise OperationalError(
                    f"{exc}: the leases of {len(held)} message(s) were not renewed; they are "
                    f"delivered again if the broker stays away past their "
                    f"{self.broker.visibility_timeout:g} s lease"
                ) from exc

    def _join_broadcasts(self) -> None:
        """Tell publishers this worker takes copies of its broadcast queues (again)."""
        if self.broadcasts:
            ttl = max(10.0, 3 * min(self.broker.visibility_timeout / 3.0, 10.0))
            join_broadcasts(self.app.results.backend, self.broadcasts, self.hostname, ttl)

    def _refresh_revocations(self) -> None:
        """Re-read the revoked ids when the revocation counter moved (one cheap read), and
        stop running tasks revoked with ``terminate=True``."""
        if not self.app.results.enabled:
            return
        backend = self.app.results.backend
        counter = backend.get_value(REVOCATIONS_KEY)
        if counter == self._revocations:
            return
        self._revoked = frozenset(backend.set_members(REVOKED_SET))
        self._revocations = counter
        if self.pool is None:
            return
        for job in self.pool.running():
            if job.message.id not in self._revoked:
                continue
            signum = self.app.control.termination_signal(job.message.id)
            if signum is not None and self.pool.terminate_job(job.message.id, signum):
                logger.warning("Terminating revoked task %s[%s]", job.task.name, job.message.id)

    def _answer_control(self) -> None:
        """Run the control requests (``inspect()``, ``ping()``, ...) sent to this worker."""
        if self.app.results.enabled:
            self.remote.answer(self.app.results.backend)

    def _withdraw_unwanted(self) -> None:
        """Take back the received jobs not started yet that were revoked or expired since
        they arrived, and settle them so (a prefetched task is not run once revoked)."""
        if self.pool is None:
            return
        revoked, now = self._revoked, time.time()

        def unwanted(job: Job) -> bool:
            expires = job.message.expires
            return job.message.id in revoked or (expires is not None and expires < now)

        for job in self.pool.withdraw(unwanted):
            self._drop(job, expired=job.message.id not in revoked)

    def _drop(self, job: Job, expired: bool) -> None:
        """Settle a received job that will not run, revoked or expired, and forget it."""
        if not job.acked:
            job.acked = True
            self._discard_revoked(job.delivery, job.message, expired)
        self._forget(job)

    def _shutdown(self) -> None:
        pool = self.pool
        assert pool is not None
        if self.broadcasts:
            try:
                leave_broadcasts(self.app.results.backend, self.broadcasts, self.hostname)
            except OperationalError as exc:
                logger.warning("could not leave the broadcast queues: %s", exc)
        held, self._held = [entry[2] for entry in self._held], []
        self._release(held + pool.cancel_pending())  # prefetched, never started: back at once
        while not self._cold and not pool.join(0.2):
            pass
        if self._cold:
            self._release(pool.terminate())
            self.exitcode = 1
        pool.stop()
        self.settlements.retry()
        self.settlements.flush_acks()
        acks, others = self.settlements.owed()
        if acks:
            logger.warning(
                "%d acknowledgement(s) could not be sent; those tasks finished and "
                "will not run again when redelivered",
                acks,
            )
        if others:
            logger.warning(
                "%d message(s) could not be settled (broker unavailable); they are delivered "
                "again when their lease runs out, within %g s",
                others,
                self.broker.visibility_timeout,
            )
        if self.keeper is not None:
            self.keeper.stop()
        signals.worker_shutdown.send(sender=self)
        logger.info("%s stopped", self.hostname)
        self.app.close()


def _queue_list(value: Sequence[str] | str | None) -> list[str]:
    if not value:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    return [q.strip() for q in items if q and q.strip()]

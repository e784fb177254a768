"""The worker's life: set up, start the pool, the consumer and the heartbeat, stop warm or
cold, and shut down without losing a message.

Its parts: the :class:`~celeriac.worker.consumer.Consumer` (broker -> pool -> settlement),
the :class:`~celeriac.worker.heartbeat.Heartbeat` (leases, revocations, control requests),
the pool (:mod:`celeriac.worker.pools`), the :class:`~celeriac.worker.settle.Settlements`
kept until the broker takes them, and :class:`~celeriac.worker.remote.Remote` (control).
"""

from __future__ import annotations

import collections
import gc
import logging
import os
import signal
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .. import signals, subscriptions
from ..brokers.base import Broker
from ..config import not_needed
from ..exceptions import (
    ImproperlyConfigured,
    OperationalError,
)
from ..execution import Outcome
from ..routing import Broadcast, leave_broadcasts, private_queue
from ..serialization import content_types
from ..utils.nodenames import NODENAME_DEFAULT, host_format, nodename
from ..utils.urls import safe_url
from . import state
from .consumer import Consumer
from .events import WorkerEvents
from .heartbeat import Heartbeat
from .keeper import LeaseKeeper
from .metrics import start_metrics
from .pools import AsyncioPool, ConsumingPool, FedPool, Job, Pool, SoloPool, ThreadPool
from .ratelimit import RateLimits, SharedClocks
from .remote import Remote
from .settle import Settlements
from .steps import Steps
from .timer import Timer

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

#: Celery's greenlet pools: their tasks run on the threads pool here.
GREEN_POOLS = ("gevent", "eventlet")


class ColdShutdown(BaseException):
    """Raised in the main thread to abandon a task running there (solo pool)."""


def expand_hostname(name: str | None) -> str:
    """``-n`` value with ``%h`` (host), ``%n`` (short host), ``%d`` (domain) expanded; a
    name without ``@`` is put on this host (``w1``: ``w1@host``)."""
    name = name or nodename(NODENAME_DEFAULT, "%h")
    return host_format(name if "@" in name else nodename(name, "%h"))


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
        beat_scheduler: str | None = None,
        beat_schedule: str | None = None,
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
        if self.pool_name in GREEN_POOLS:
            logger.warning(
                "pool %s: celeriac has no greenlet pool; the threads pool runs the tasks "
                "instead (give -c as before). async def tasks on -P asyncio wait more cheaply",
                self.pool_name,
            )
            self.pool_name = "threads"
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
        self.max_tasks_per_child = max_tasks_per_child or conf.worker_max_tasks_per_child
        self.burst = burst
        self.embed_beat = beat
        self.beat_store = (beat_scheduler, beat_schedule)  # -B: -S/--scheduler and -s
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
        self._stop_requested = False
        self._cold = False
        self.pool: Pool | None = None
        self.rate_limits = RateLimits(app, disabled=bool(conf.worker_disable_rate_limits))
        self._broker: Broker | None = None  # a prefork child's: it reports to its parent
        self.settlements = Settlements(lambda: self.broker)
        self.consumer = Consumer(self)
        self.heartbeat = Heartbeat(self)
        self.remote = Remote(self)
        self.events = WorkerEvents(self)
        #: how many of each task this worker has run (``inspect stats``' ``total``)
        self.total: collections.Counter[str] = collections.Counter()
        #: set once the worker consumes (after ``worker_ready``)
        self.ready = threading.Event()
        self.timer = Timer()
        self.steps = Steps(self, kwargs)  # the project's own (app.steps)

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
        app.conf.freeze()  # a running worker's settings do not change: read them once
        for name, why in not_needed(app.conf):
            logger.info("setting %s is accepted and not needed: %s", name, why)
        self.metrics = start_metrics(self)  # turns task events on: before events.start()
        signals.worker_init.send(sender=self)
        self._wait_for_broker()
        heartbeat = self.heartbeat
        heartbeat.join_broadcasts()
        subscriptions.announce(app)
        signals.celeryd_after_setup.send(sender=self.hostname, instance=self, conf=app.conf)
        heartbeat.chores.run("reading revocations", heartbeat.refresh_revocations)
        heartbeat.chores.run("forgetting control changes", self.remote.forget_changes)
        # what start-up made lives as long as the worker: keep it out of the collector's
        # scans (and out of the pages it would write to in forked children)
        gc.freeze()
        if self._wants_keeper and not self.broker.local_leases:
            self.keeper = LeaseKeeper(self.broker, heartbeat.interval())
            self.keeper.start()
        self.events.start()  # before the pool: forked children inherit the setting
        self.pool = self._make_pool()
        self.pool.start()
        if self.install_signal_handlers:
            self._install_signals()
        if app.conf.worker_enable_remote_control:
            self.remote.listen()  # from here on, control requests are this worker's too
        heartbeat.start()
        self.steps.start()
        logger.info(
            "%s ready: %s, queues %s, pool %s (concurrency %d)",
            self.hostname,
            safe_url(app.broker.url),
            ",".join(self.queues),
            self.pool_name,
            self.concurrency,
        )
        state.set_worker(self)
        signals.worker_ready.send(sender=self)
        self.ready.set()
        beat_thread = self._start_beat()
        try:
            if self.pool.consumes:
                self.consumer.supervise()
            else:
                self.consumer.run()
        except ColdShutdown:
            self._cold = True
        finally:
            if self.beat is not None:
                self.beat.stop()
                beat_thread.join(10)  # type: ignore[union-attr]
            self.steps.stop(cold=self._cold)
            self.timer.stop()
            self._shutdown()
            heartbeat.stop()
            self.remote.stop()
            state.set_worker(None)
        return self.exitcode

    def _make_pool(self) -> Pool:
        """The pool. Prefork children consume from the broker themselves unless its leases
        live in one process (then the parent consumes and hands them jobs)."""
        if POOLS[self.pool_name] is FedPool and not self.app.broker.local_leases:
            return ConsumingPool(self)
        return POOLS[self.pool_name](
            self.app, self.concurrency, self.on_done, self.hostname, self.max_tasks_per_child
        )

    def _start_beat(self) -> threading.Thread | None:
        """``-B``: run beat in this process, in a thread of its own."""
        if not self.embed_beat:
            return None
        from ..beat import Beat
        from ..beat.scheduler import open_store

        self.beat = Beat(self.app, open_store(self.app, *self.beat_store))
        signals.beat_embedded_init.send(sender=self.beat)
        thread = threading.Thread(target=self.beat.run, name="celeriac-beat", daemon=True)
        thread.start()
        return thread

    def stop(self, cold: bool = False) -> None:
        """Ask the worker to stop: warm (finish running tasks) or cold (abandon them)."""
        if cold or self._stop_requested:
            self._cold = True
        self._stop_requested = True
        self.consumer.wake()
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
                url, why = safe_url(self.broker.url), str(exc)
                why = why.removeprefix(f"{url}: ")  # the brokers' errors name their URL first
                logger.error(
                    "Cannot connect to %s: %s. Trying again in %.0f seconds...", url, why, delay
                )
                if self.sleep(delay):
                    raise
                delay = min(delay * 2, 32.0)

    def sleep(self, seconds: float) -> bool:
        """Sleep unless asked to stop; True if stopping."""
        end = time.monotonic() + seconds
        while not self._stop_requested and time.monotonic() < end:
            time.sleep(min(0.1, end - time.monotonic()))
        return self._stop_requested

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
        # the parent's state at the fork, and its threads' locks, are not this process's
        self.settlements = Settlements(lambda: self.broker)
        self.consumer = Consumer(self)
        self.heartbeat = heartbeat = Heartbeat(self)
        self.rate_limits = self.rate_limits.sharing(clocks)
        heartbeat.chores.run("reading revocations", heartbeat.refresh_revocations)
        pool.start()
        heartbeat.start_in_child()
        try:
            self.consumer.run_in_child()
        finally:
            self.consumer.give_back(pool)
            self.settlements.retry()
            self.settlements.flush_acks()
            heartbeat.stop()

    # -- what the pools and remote control ask ---------------------------------------------

    @property
    def revoked(self) -> frozenset[str]:
        """The ids revoked cluster-wide, as last read."""
        return self.heartbeat.revoked

    def running(self) -> list[Job]:
        """The jobs running now."""
        return self.pool.running() if self.pool is not None else []

    def reserved(self) -> list[Job]:
        """The jobs received and not started yet (a consuming pool's: its children's)."""
        running = {job.message.id for job in self.running()}
        pool = self.pool
        if pool is not None and pool.consumes:
            held = (self.consumer.job_for(d) for d in pool.held())
            jobs = [job for job in held if job is not None]
        else:
            jobs = self.consumer.jobs()
        return [job for job in jobs if job.message.id not in running and not job.acked]

    def on_done(self, done: list[tuple[Job, Outcome]]) -> None:
        """The pool's report of finished jobs (see :meth:`Consumer.on_done`)."""
        self.total.update(job.message.task for job, _ in done)
        self.consumer.on_done(done)

    def resize_pool(self, concurrency: int) -> None:
        """Run up to ``concurrency`` jobs at once from now on (``pool_grow``, ``pool_shrink``,
        ``autoscale``), the prefetch window with it; NotImplementedError saying why where the
        pool has a fixed size."""
        assert self.pool is not None
        self.pool.resize(concurrency)
        self.concurrency = concurrency
        self.consumer.resize(concurrency * self.prefetch_multiplier)

    def set_rate_limit(self, task_name: str, rate: str | None) -> None:
        """Change a task's rate limit in this worker (the remote-control hook)."""
        self.rate_limits.set(task_name, rate)

    # -- shutting down ----------------------------------------------------------------------

    def _shutdown(self) -> None:
        pool = self.pool
        assert pool is not None
        if self.broadcasts:
            try:
                leave_broadcasts(self.app.results.backend, self.broadcasts, self.hostname)
            except OperationalError as exc:
                logger.warning("could not leave the broadcast queues: %s", exc)
        self.consumer.give_back(pool)  # prefetched, never started: back at once
        while not self._cold and not pool.join(0.2):
            pass
        if self._cold:
            self.consumer.release(pool.terminate())
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
        self.events.stop()
        self.metrics.stop()
        logger.info("%s stopped", self.hostname)
        self.app.close()


def _queue_list(value: Sequence[str] | str | None) -> list[str]:
    if not value:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    return [q.strip() for q in items if q and q.strip()]


#: Celery's name for the worker (the sender of ``worker_ready``, ``worker_init`` ...)
WorkController = Worker

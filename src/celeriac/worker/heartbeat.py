"""The worker's heartbeat: a background thread that keeps what the worker holds alive.

Every half second it reads new revocations (withdrawing prefetched jobs they name) and the
control requests; every third of the lease it renews the leases of every message held,
retries the settlements that failed, reads the run-time rate limits, renews the broadcast
membership and cleans up expired results. Each chore fails on its own (:class:`Chores`): one
that raises does not keep the others, above all the lease renewal, from running. A
consuming prefork child runs the part that concerns it (:meth:`Heartbeat.start_in_child`).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .. import signals
from ..control import StampRevocations
from ..exceptions import OperationalError
from ..keys import REVOCATIONS_KEY, REVOKED_SET, REVOKED_STAMPS_SET
from ..routing import join_broadcasts
from ..utils import keep_running, safe_str
from .pools.base import Job

if TYPE_CHECKING:
    from .worker import Worker

logger = logging.getLogger("celeriac.worker")

#: How often a worker looks for new revocations and control requests (seconds).
REVOCATION_CHECK_INTERVAL = 0.5


class Chores:
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


class Heartbeat:
    """The heartbeat of one worker (or of one consuming prefork child)."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.chores = Chores()
        #: the ids revoked cluster-wide, as last read
        self.revoked: frozenset[str] = frozenset()
        #: the stamped-header revocations, as last read
        self.revoked_stamps = StampRevocations()
        #: the running tasks asked to stop (by id), each with the stamp it was revoked by
        #: (None: revoked by id): a task is stopped once
        self.terminating: dict[str, tuple[str, Any] | None] = {}
        self._revocations: bytes | None = None  # the counter value the set was read at
        self._terminated_at: bytes | None = None  # the value running tasks were checked at
        self._reading = threading.Lock()
        self._checking = threading.Lock()  # the heartbeat's and the control thread's checks
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def interval(self) -> float:
        """Seconds between lease renewals: a third of the lease, at most 10."""
        return max(0.2, min(self.worker.broker.visibility_timeout / 3.0, 10.0))

    def start(self) -> None:
        """Beat in a thread of its own until :meth:`stop`."""
        self._begin(self._loop, "celeriac-heartbeat", "the heartbeat thread")

    def start_in_child(self) -> None:
        """A consuming prefork child's beat (its parent renews the leases)."""
        self._begin(self._child_loop, "celeriac-watch", "the prefork child's watcher")

    def stop(self) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join(2)

    def _begin(self, loop: Callable[[], None], name: str, what: str) -> None:
        self._thread = threading.Thread(
            target=lambda: keep_running(loop, what, self._done.is_set), name=name, daemon=True
        )
        self._thread.start()

    def _loop(self) -> None:
        worker = self.worker
        backend = worker.app.backend
        interval = self.interval()
        cleanup_every = float(worker.app.conf.worker_result_cleanup_interval or 0)
        next_cleanup = time.monotonic() + min(cleanup_every, 30.0)
        next_beat = time.monotonic() + interval
        chores = self.chores
        while not self._done.wait(min(interval, REVOCATION_CHECK_INTERVAL)):
            chores.run("reading revocations", self.refresh_revocations)
            chores.run("withdrawing revoked jobs", self.withdraw_unwanted)
            if time.monotonic() < next_beat:
                continue
            next_beat = time.monotonic() + interval
            chores.run("settling", worker.settlements.retry)
            chores.run("renewing leases", self.renew_leases)
            chores.run("reading rate limits", worker.rate_limits.refresh)
            chores.run("joining broadcast queues", self.join_broadcasts)
            if backend is not None and cleanup_every and time.monotonic() > next_cleanup:
                next_cleanup = time.monotonic() + cleanup_every
                chores.run("cleaning up results", backend.cleanup)
            signals.heartbeat_sent.send(sender=worker)

    def _child_loop(self) -> None:
        """New revocations (prefetched revoked or expired jobs are dropped), rate limits,
        settlements that failed, and jobs held up behind a long task given back to the
        queue for other processes."""
        worker = self.worker
        pool = worker.pool
        assert pool is not None
        interval = self.interval()
        next_beat = time.monotonic() + interval
        chores = self.chores
        while not self._done.wait(REVOCATION_CHECK_INTERVAL):
            chores.run("reading revocations", self.refresh_revocations)
            chores.run("withdrawing revoked jobs", self.withdraw_unwanted)
            chores.run("giving back held-up jobs", lambda: worker.consumer.release(pool.held_up()))
            if time.monotonic() < next_beat:
                continue
            next_beat = time.monotonic() + interval
            chores.run("settling", worker.settlements.retry)
            chores.run("reading rate limits", worker.rate_limits.refresh)
            chores.run("reading control changes", worker.remote.follow_changes)

    # -- the chores -------------------------------------------------------------------------

    def renew_leases(self) -> None:
        """Extend the lease of every message this worker (or its children) holds."""
        worker = self.worker
        held = worker.consumer.held() + worker.settlements.held()
        if worker.pool is not None:
            held += worker.pool.held()
        if worker.keeper is not None:
            worker.keeper.hold(held)
        if held:
            broker = worker.broker
            try:
                broker.extend(held)
            except OperationalError as exc:
                raise OperationalError(
                    f"{exc}: the leases of {len(held)} message(s) were not renewed; they are "
                    f"delivered again if the broker stays away past their "
                    f"{broker.visibility_timeout:g} s lease"
                ) from exc

    def join_broadcasts(self) -> None:
        """Tell publishers this worker takes copies of its broadcast queues (again)."""
        worker = self.worker
        if worker.broadcasts:
            ttl = max(10.0, 3 * self.interval())
            join_broadcasts(worker.app.results.backend, worker.broadcasts, worker.hostname, ttl)

    def refresh_revocations(self) -> None:
        """Re-read the revoked ids and stamps when the revocation counter moved (one cheap
        read), and stop running tasks revoked with ``terminate=True``."""
        self.read_revocations()
        pool = self.worker.pool
        if pool is None:
            return
        with self._checking:
            if self._revocations == self._terminated_at:
                return
            self._terminated_at = self._revocations
            running = pool.running()
            ids = {job.message.id for job in running}
            self.terminating = {i: why for i, why in self.terminating.items() if i in ids}
            for job in running:
                if job.message.id in self.terminating:
                    continue
                signum, stamp = self._termination(job)
                if signum is not None and pool.terminate_job(job.message.id, signum):
                    self.terminating[job.message.id] = stamp
                    name, task_id = job.task.name, job.message.id
                    logger.warning("Terminating revoked task %s[%s]", name, task_id)

    def stopped_by_stamps(self) -> list[tuple[str, Any]]:
        """The stamps of the running tasks stopped for a stamped-header revocation."""
        with self._checking:
            return [stamp for stamp in self.terminating.values() if stamp is not None]

    def read_revocations(self) -> None:
        """Re-read the revoked ids and stamps if the revocation counter moved since the last
        read. The consumer calls it too, for a fetch that brought stamped messages: a stamp
        revoked, or revocations forgotten, just before the message was sent count."""
        app = self.worker.app
        if not app.results.enabled:
            return
        backend = app.results.backend
        with self._reading:
            counter = backend.get_value(REVOCATIONS_KEY)
            if counter == self._revocations:
                return
            self.revoked = frozenset(backend.set_members(REVOKED_SET))
            members = backend.set_members(REVOKED_STAMPS_SET)
            self.revoked_stamps = StampRevocations.decode(members)
            self._revocations = counter

    def _termination(self, job: Job) -> tuple[int | None, tuple[str, Any] | None]:
        """The signal a running ``job`` is to be stopped with, if it was revoked with
        ``terminate=True``, and the stamp it was revoked by (None: by id)."""
        if job.message.id in self.revoked:
            return self.worker.app.control.termination_signal(job.message.id), None
        found = self.revoked_stamps.match(job.message.headers)
        if found is None or not found[2]:
            return None, None
        signum = int(signal.Signals.__members__.get(found[2], signal.SIGTERM))
        return signum, (found[0], found[1])

    def is_revoked(self, job: Job) -> bool:
        """Was ``job`` revoked, by id or by one of its stamps?"""
        message = job.message
        return message.id in self.revoked or self.revoked_stamps.match(message.headers) is not None

    def withdraw_unwanted(self) -> None:
        """Take back the received jobs not started yet that were revoked or expired since
        they arrived, and settle them so (a prefetched task is not run once revoked)."""
        worker = self.worker
        if worker.pool is None:
            return
        now = time.time()

        def unwanted(job: Job) -> bool:
            expires = job.message.expires
            return self.is_revoked(job) or (expires is not None and expires < now)

        for job in worker.pool.withdraw(unwanted):
            worker.consumer.drop(job, expired=not self.is_revoked(job))

"""Time series for the dashboard's charts: a :class:`Sampler` records, each time it is
called, what the broker's queues hold and how loaded the live workers are, into the event
store (:meth:`~celeriac.monitor.store.EventStore.record_samples`), which keeps them within
its bounds. The dashboard calls :meth:`Sampler.sample` every ten seconds or so; the store's
``samples()`` reads them back for the charts and for alert rules over time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from ..routing import app_queues

if TYPE_CHECKING:
    from ..app import Celeriac
    from ..brokers.base import Broker
    from .store import EventStore

logger = logging.getLogger("celeriac.monitor")

#: the kinds of samples the sampler records
QUEUES = "queues"
WORKERS = "workers"
#: the fields of a queue sample (those of :class:`~celeriac.brokers.base.QueueStats`)
QUEUE_FIELDS = ("waiting", "in_flight", "delayed", "dead_lettered", "oldest_age")
#: the fields of a worker sample
WORKER_FIELDS = ("load", "active", "processed")
#: queues sampled at most (the app's first, then those added)
MAX_QUEUES = 200
#: the runtime and queue-wait histograms' bucket bounds, in seconds (5 ms to an hour): the
#: metrics export them, the Prometheus rules export reads them
RUNTIME_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    1800.0,
    3600.0,
)


class Sampler:
    """Records queue statistics and worker load into ``store``.

    The queues sampled are the app's (:func:`~celeriac.routing.app_queues`), those given,
    and those :meth:`add_queue` adds later (the dashboard adds the queues workers consume);
    ``broker`` replaces the app's broker."""

    def __init__(
        self,
        app: Celeriac,
        store: EventStore,
        broker: Broker | None = None,
        queues: Sequence[str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.app = app
        self.store = store
        self._broker = broker
        self.clock = clock
        self.queues: list[str] = []
        for queue in [*app_queues(app), *(queues or ())]:
            self.add_queue(queue)

    @property
    def broker(self) -> Broker:
        """The broker whose queues are sampled."""
        return self._broker if self._broker is not None else self.app.broker

    def add_queue(self, queue: str) -> None:
        """Sample ``queue`` too (up to :data:`MAX_QUEUES` queues)."""
        if queue and queue not in self.queues and len(self.queues) < MAX_QUEUES:
            self.queues.append(queue)

    def sample(self, now: float | None = None) -> None:
        """Record one sample of every queue and of every live worker, at ``now``. A queue
        the broker cannot tell about is left out of this sample (logged); a store that
        cannot be reached raises :class:`~celeriac.exceptions.OperationalError`."""
        now = self.clock() if now is None else now
        queues = self.queue_values()
        if queues:
            self.store.record_samples(QUEUES, now, queues)
        workers = worker_values(self.store.workers(now=now))
        if workers:
            self.store.record_samples(WORKERS, now, workers)

    def queue_values(self) -> dict[str, dict[str, float | None]]:
        """Each queue's statistics now, as a sample."""
        found: dict[str, dict[str, float | None]] = {}
        broker = self.broker
        for queue in list(self.queues):
            try:
                stats = asdict(broker.queue_stats(queue))
            except Exception as exc:  # one queue (or a broker down) does not stop the rest
                logger.warning("sampler: no statistics of queue %r: %s", queue, exc)
                continue
            found[queue] = {field: _number(stats[field]) for field in QUEUE_FIELDS}
        return found


def worker_values(workers: Iterable[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """A sample of each live worker (event-store rows): its one-minute load average, active
    tasks and tasks processed."""
    found: dict[str, dict[str, float | None]] = {}
    for row in workers:
        if not row.get("alive"):
            continue
        loadavg = row.get("loadavg") or []
        found[row["hostname"]] = {
            "load": _number(loadavg[0]) if loadavg else None,
            "active": _number(row.get("active")),
            "processed": _number(row.get("processed")),
        }
    return found


def _number(value: Any) -> float | None:
    return None if value is None else float(value)

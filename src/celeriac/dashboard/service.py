"""What the dashboard runs beside its HTTP server, each in a daemon thread of its own:

* the **ingester** (:class:`celeriac.monitor.ingest.Ingester`), following the event log into
  the event store, where every page reads history from (a restart loses nothing: it goes on
  from the store's cursor);
* the **metrics** (:class:`celeriac.monitor.metrics.Metrics`), fed with the events from now
  on by a :class:`~celeriac.monitor.metrics.MetricsFeeder`, served at ``/metrics``;
* the **sampler**: every ``sample_interval`` seconds, each known queue's statistics and each
  worker's load into the store (the queue and worker charts), and the workers' ``stats``
  and memory (the workers page);
* the **alert evaluator** (:class:`celeriac.monitor.alerts.Alerts`), every
  ``alert_interval`` seconds, when the app has alert rules.

:meth:`DashboardService.start` starts them, :meth:`~DashboardService.stop` stops them and
releases their connections; :meth:`~DashboardService.sample` and
:meth:`~DashboardService.evaluate` run one step (for tests).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..control import flatten_reply
from ..monitor.alerts import Alerts
from ..monitor.ingest import Ingester
from ..monitor.metrics import Metrics, MetricsFeeder
from ..monitor.series import Sampler
from ..monitor.store import EventStore, create_store
from .config import DashboardConfig

if TYPE_CHECKING:
    from ..app import Celeriac

logger = logging.getLogger("celeriac.dashboard")


class DashboardService:
    """The event store, metrics, sampler and alerts of one dashboard (see the module)."""

    def __init__(
        self, app: Celeriac, config: DashboardConfig, store: EventStore | None = None
    ) -> None:
        self.app = app
        self.config = config
        self.store = (
            store if store is not None else create_store(config.store, dict(config.store_options))
        )
        self.metrics = Metrics(app)
        #: the alert rules and their alerts (None when the app has no rules)
        self.alerts = self._alerts()
        #: hostname -> (when, ``stats`` reply, memory sample text): the last answers
        self.worker_info: dict[str, tuple[float, dict[str, Any] | None, str | None]] = {}
        #: the queue and worker charts' samples (the app's queues and those workers consume)
        self.sampler = Sampler(app, self.store)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._feeder: MetricsFeeder | None = None
        self._lock = threading.Lock()
        self.started = False

    def _alerts(self) -> Alerts | None:
        if not self.app.conf.get("dashboard_alerts"):
            return None
        return Alerts(self.app, self.store)

    # -- running --------------------------------------------------------------------------

    def start(self) -> None:
        """Start the threads (once)."""
        with self._lock:
            if self.started:
                return
            self.started = True
        self._stop.clear()
        ingester = Ingester(self.app, self.store, redactor=self.config.redactor())
        self._spawn("celeriac-dashboard-ingest", lambda: ingester.run(self._stop))
        self._feeder = MetricsFeeder(self.app, self.metrics)
        self._feeder.start(timeout=0.0)
        self._spawn(
            "celeriac-dashboard-sampler", self._every(self.config.sample_interval, self.sample)
        )
        if self.alerts is not None:
            self._spawn(
                "celeriac-dashboard-alerts", self._every(self.config.alert_interval, self.evaluate)
            )

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _every(self, interval: float, step: Callable[[], None]) -> Callable[[], None]:
        def loop() -> None:
            while not self._stop.is_set():
                try:
                    step()
                except Exception as exc:  # an observer never dies of an outage
                    logger.warning(
                        "dashboard: %s failed: %s: %s", step.__name__, type(exc).__name__, exc
                    )
                self._stop.wait(max(interval, 0.05))

        return loop

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the threads and release the store's and the broker's connections."""
        with self._lock:
            if not self.started:
                return
            self.started = False
        self._stop.set()
        if self._feeder is not None:
            self._feeder.stop(timeout)
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()
        self.store.close()

    # -- one step of each -----------------------------------------------------------------

    def known_queues(self) -> list[str]:
        """The app's queues and those the workers were seen consuming."""
        return list(self.sampler.queues)

    def sample(self, now: float | None = None) -> None:
        """Ask the workers for their stats, memory and queues, then record the queues'
        statistics and the workers' load in the store."""
        now = time.time() if now is None else now
        self._ask_workers(now)
        self.sampler.sample(now)

    def _ask_workers(self, now: float) -> None:
        alive = [w["hostname"] for w in self.store.workers(now) if w.get("alive")]
        if not alive:
            return
        control = self.app.control
        timeout = min(self.config.inspect_timeout, 1.0)

        def ask(command: str) -> dict[str, Any]:
            # each returns as soon as every live worker answered
            replies = control.broadcast(
                command, destination=alive, reply=True, timeout=timeout, limit=len(alive)
            )
            return flatten_reply(replies)

        stats, memory, queues = ask("stats"), ask("memsample"), ask("active_queues")
        for hostname in set(stats) | set(memory):
            sample = memory.get(hostname)
            self.worker_info[hostname] = (
                now,
                stats.get(hostname),
                sample if isinstance(sample, str) else None,
            )
        for consumed in queues.values():
            for queue in consumed if isinstance(consumed, list) else ():
                if isinstance(queue, dict) and isinstance(queue.get("name"), str):
                    self.sampler.add_queue(queue["name"])

    def evaluate(self, now: float | None = None) -> None:
        """Evaluate the alert rules once (nothing without rules)."""
        if self.alerts is not None:
            self.alerts.evaluate(now)

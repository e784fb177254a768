"""Prometheus metrics of a cluster, computed from its events and its broker's queue statistics.

:class:`Metrics` owns a ``prometheus_client.CollectorRegistry``: task counters and histograms
fed with events (:meth:`Metrics.event`), worker gauges from the workers' heartbeats, and queue
gauges read from the broker each time the registry is collected (scraped). :func:`serve`
exposes a registry over HTTP; :class:`MetricsFeeder` follows the app's event log and feeds a
:class:`Metrics` from a thread of its own.

Label values are bounded, whatever the events say, so that the number of series is too:

* ``name``: the first ``max_names`` task names seen (200); later ones are ``"other"``;
* ``queue``: the queues given (by default the app's queues) and the first ``max_queues``
  others seen (50); later ones are ``"other"``;
* ``hostname``: at most ``max_hostnames`` workers at a scrape (100, alphabetically first);
  the active tasks of the others are summed as ``"other"``.

A task event other than ``task-sent``/``task-received`` carries no task name and queue (as in
Celery): they are remembered per task id, for the last ``remember`` tasks, from the task's
received or sent event. Events of different processes can reach the log out of order (a
prefork child's ``task-started`` before its parent's ``task-received``), so an event of a task
not seen yet waits up to ``grace`` seconds for that event; then it counts as ``"unknown"``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..events.state import DEFAULT_FREQ, LRU, heartbeat_expires
from ..routing import app_queues
from .series import RUNTIME_BUCKETS

INSTALL_HINT = "Prometheus metrics need prometheus-client: pip install 'celeriac[metrics]'"

try:
    from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
    from prometheus_client.core import GaugeMetricFamily, Metric
    from prometheus_client.registry import Collector
except ImportError as exc:  # pragma: no cover - the ``metrics`` extra is not installed
    raise ImportError(INSTALL_HINT) from exc

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from ..app import Celeriac
    from ..brokers.base import Broker

logger = logging.getLogger("celeriac.monitor")

DEFAULT_MAX_NAMES = 200
DEFAULT_MAX_QUEUES = 50
DEFAULT_MAX_HOSTNAMES = 100
#: tasks whose name, queue and times are remembered
DEFAULT_REMEMBER = 10_000
#: seconds an event of a task not seen yet waits for its received or sent event
DEFAULT_GRACE = 5.0
#: events held at most while they wait
PENDING_LIMIT = 10_000
#: workers followed at most (alive or not; the expired ones are forgotten first)
WORKERS_LIMIT = 10_000

OTHER = "other"
UNKNOWN = "unknown"

#: the ``state`` label of each task event counted
TASK_STATES = {
    "task-received": "received",
    "task-started": "started",
    "task-succeeded": "succeeded",
    "task-failed": "failed",
    "task-retried": "retried",
    "task-rejected": "rejected",
    "task-revoked": "revoked",
}
_INTRODUCING = ("task-sent", "task-received")
_WORKER_EVENTS = ("worker-online", "worker-heartbeat", "worker-offline")

BUCKETS = RUNTIME_BUCKETS

#: the queue gauges: QueueStats field -> (metric name, help)
QUEUE_GAUGES = {
    "waiting": ("celeriac_queue_waiting", "Messages due now and not leased to a worker."),
    "in_flight": ("celeriac_queue_in_flight", "Messages leased to a worker, not yet settled."),
    "delayed": ("celeriac_queue_delayed", "Messages due later (eta, countdown, retry delay)."),
    "dead_lettered": ("celeriac_queue_dead_lettered", "Messages in the dead-letter queue."),
    "oldest_age": (
        "celeriac_queue_oldest_age_seconds",
        "Seconds the longest-waiting message has been due.",
    ),
}


class LabelLimit:
    """Label values for one label: those ``known``, and the first ``limit`` others seen;
    any value after them is :data:`OTHER`."""

    def __init__(self, limit: int, known: Iterable[str] = ()) -> None:
        self.limit = limit
        self.known = set(known)
        self._others: set[str] = set()

    def __call__(self, value: str) -> str:
        if value in self.known or value in self._others:
            return value
        if len(self._others) < self.limit:
            self._others.add(value)
            return value
        return OTHER


@dataclass
class _Task:
    name: str = UNKNOWN
    queue: str = UNKNOWN
    sent_at: float | None = None
    started_at: float | None = None


@dataclass
class _Worker:
    last: float
    freq: float
    active: int


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


class Metrics:
    """The metrics of a cluster in a registry of their own (:attr:`registry`).

    ``app`` gives the broker and the known queues (:func:`~celeriac.routing.app_queues`);
    ``queues`` and ``broker`` replace them. With neither broker nor app there are no queue
    gauges. ``clock`` is the wall clock heartbeats are compared with."""

    def __init__(
        self,
        app: Celeriac | None = None,
        *,
        queues: Sequence[str] | None = None,
        broker: Broker | None = None,
        max_names: int = DEFAULT_MAX_NAMES,
        max_queues: int = DEFAULT_MAX_QUEUES,
        max_hostnames: int = DEFAULT_MAX_HOSTNAMES,
        remember: int = DEFAULT_REMEMBER,
        grace: float = DEFAULT_GRACE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.app = app
        self._broker = broker
        self.queues = list(queues) if queues is not None else (app_queues(app) if app else [])
        self.max_hostnames = max_hostnames
        self.grace = grace
        self.clock = clock
        self._names = LabelLimit(max_names)
        self._queue_label = LabelLimit(max_queues, [*self.queues, UNKNOWN])
        self._tasks: LRU[str, _Task] = LRU(remember)
        # task id -> (when the first one arrived, monotonic; events waiting for the task)
        self._pending: OrderedDict[str, tuple[float, list[dict[str, Any]]]] = OrderedDict()
        self._pending_count = 0
        self._workers: dict[str, _Worker] = {}
        self._lock = threading.RLock()
        self._queues_failing = False

        self.registry = registry = CollectorRegistry()
        self.tasks_total = Counter(
            "celeriac_tasks",
            "Task events, by task name, state and queue.",
            ["name", "state", "queue"],
            registry=registry,
        )
        self.task_runtime = Histogram(
            "celeriac_task_runtime_seconds",
            "Seconds a task ran (succeeded, or failed after its start was seen).",
            ["name"],
            buckets=BUCKETS,
            registry=registry,
        )
        self.queue_wait = Histogram(
            "celeriac_task_queue_wait_seconds",
            "Seconds from a task's sending to its start.",
            ["name", "queue"],
            buckets=BUCKETS,
            registry=registry,
        )
        registry.register(_Collector(self._collect_workers, self._describe_workers))
        registry.register(_Collector(self._collect_queues, self._describe_queues))

    @property
    def broker(self) -> Broker | None:
        """The broker the queue gauges are read from."""
        if self._broker is None and self.app is not None:
            return self.app.broker
        return self._broker

    def serve(self, port: int, addr: str = "127.0.0.1") -> Server:
        """Serve these metrics over HTTP from a daemon thread (see :func:`serve`)."""
        return serve(self.registry, port, addr)

    # -- events ------------------------------------------------------------------------------

    def event(self, event: dict[str, Any]) -> None:
        """Count one event (a dict with Celery's fields, as a receiver gives it)."""
        type = event.get("type")
        with self._lock:
            self._flush(time.monotonic())
            if type in _WORKER_EVENTS:
                self._worker_event(str(type), event)
            elif type in _INTRODUCING or type in TASK_STATES:
                self._task_event(str(type), event)

    def flush(self) -> None:
        """Count the events that waited ``grace`` seconds for their task's received or sent
        event in vain (a feeder calls this between reads)."""
        with self._lock:
            self._flush(time.monotonic())

    def _flush(self, now: float) -> None:
        while self._pending:
            uuid, (since, _) = next(iter(self._pending.items()))
            if since + self.grace > now:
                break
            self._release(uuid)

    def _release(self, uuid: str) -> None:
        _, events = self._pending.pop(uuid)
        self._pending_count -= len(events)
        if uuid not in self._tasks:  # never introduced: its later events need not wait
            self._tasks[uuid] = _Task()
        for event in events:
            self._count(str(event["type"]), event, self._tasks.get(uuid))

    def _task_event(self, type: str, event: dict[str, Any]) -> None:
        uuid = _text(event.get("uuid"))
        task = self._tasks.get(uuid) if uuid else None
        if type in _INTRODUCING:
            task = task or _Task()
            task.name = _text(event.get("name")) or task.name
            task.queue = _text(event.get("queue")) or task.queue
            task.sent_at = _number(event.get("sent_at")) or task.sent_at
            if uuid:
                self._tasks[uuid] = task
        elif uuid and task is None and _text(event.get("name")) is None:
            if self._pending_count < PENDING_LIMIT:
                self._pending.setdefault(uuid, (time.monotonic(), []))[1].append(event)
                self._pending_count += 1
                return
        if type in TASK_STATES:
            self._count(type, event, task)
        if uuid and uuid in self._pending:
            self._release(uuid)

    def _count(self, type: str, event: dict[str, Any], task: _Task | None) -> None:
        name = self._names(_text(event.get("name")) or (task.name if task else UNKNOWN))
        queue = self._queue_label(_text(event.get("queue")) or (task.queue if task else UNKNOWN))
        self.tasks_total.labels(name, TASK_STATES[type], queue).inc()
        when = _number(event.get("timestamp"))
        if type == "task-started":
            if task is not None and when is not None:
                task.started_at = when
                if task.sent_at is not None:
                    self.queue_wait.labels(name, queue).observe(max(0.0, when - task.sent_at))
        elif type == "task-succeeded":
            runtime = _number(event.get("runtime"))
            if runtime is not None:
                self.task_runtime.labels(name).observe(max(0.0, runtime))
        elif type == "task-failed":
            started = task.started_at if task is not None else None
            if started is not None and when is not None:
                self.task_runtime.labels(name).observe(max(0.0, when - started))

    def _worker_event(self, type: str, event: dict[str, Any]) -> None:
        hostname = _text(event.get("hostname"))
        if hostname is None:
            return
        if type == "worker-offline":
            self._workers.pop(hostname, None)
            return
        freq = _number(event.get("freq")) or DEFAULT_FREQ
        active = _number(event.get("active"))
        worker = _Worker(
            last=_number(event.get("timestamp")) or self.clock(),
            freq=freq,
            active=int(active) if active is not None and active >= 0 else 0,
        )
        if hostname not in self._workers and len(self._workers) >= WORKERS_LIMIT:
            self._forget_expired(self.clock())
            if len(self._workers) >= WORKERS_LIMIT:
                del self._workers[next(iter(self._workers))]
        self._workers[hostname] = worker

    def _forget_expired(self, now: float) -> None:
        for hostname, worker in list(self._workers.items()):
            if heartbeat_expires(worker.last, worker.freq) < now:
                del self._workers[hostname]

    # -- collected at each scrape --------------------------------------------------------------

    def _describe_workers(self) -> Iterator[Metric]:
        yield from self._worker_families()

    def _worker_families(self) -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        online = GaugeMetricFamily(
            "celeriac_workers_online", "Workers whose last heartbeat has not expired."
        )
        active = GaugeMetricFamily(
            "celeriac_worker_active_tasks",
            "Tasks running on a worker, as of its last heartbeat.",
            labels=["hostname"],
        )
        return online, active

    def _collect_workers(self) -> Iterator[Metric]:
        online, active = self._worker_families()
        with self._lock:
            self._forget_expired(self.clock())
            workers = sorted(self._workers.items())
        online.add_metric([], len(workers))
        for hostname, worker in workers[: self.max_hostnames]:
            active.add_metric([hostname], worker.active)
        if len(workers) > self.max_hostnames:
            active.add_metric([OTHER], sum(w.active for _, w in workers[self.max_hostnames :]))
        yield online
        yield active

    def _queue_families(self) -> dict[str, GaugeMetricFamily]:
        return {
            field: GaugeMetricFamily(name, help, labels=["queue"])
            for field, (name, help) in QUEUE_GAUGES.items()
        }

    def _describe_queues(self) -> Iterator[Metric]:
        yield from self._queue_families().values()

    def _collect_queues(self) -> Iterator[Metric]:
        broker = self.broker
        if broker is None or not self.queues:
            return
        try:
            stats = [broker.queue_stats(queue) for queue in self.queues]
        except Exception as exc:  # a scrape never fails for the broker's sake
            with self._lock:  # scrapes may run at once
                first, self._queues_failing = not self._queues_failing, True
            if first:
                logger.warning("metrics: queue statistics unavailable, not exported: %s", exc)
            return
        with self._lock:
            recovered, self._queues_failing = self._queues_failing, False
        if recovered:
            logger.info("metrics: queue statistics available again")
        families = self._queue_families()
        for stat in stats:
            for field, family in families.items():
                value = getattr(stat, field)
                if value is not None:
                    family.add_metric([stat.queue], value)
        yield from families.values()


class _Collector(Collector):
    """A collector made of two functions (the registry calls ``describe`` when registering,
    so that registering does not read the broker)."""

    def __init__(
        self, collect: Callable[[], Iterator[Metric]], describe: Callable[[], Iterator[Metric]]
    ) -> None:
        self._collect = collect
        self._describe = describe

    def collect(self) -> Iterable[Metric]:
        return self._collect()

    def describe(self) -> Iterable[Metric]:
        return self._describe()


# -- serving -------------------------------------------------------------------------------------

_servers: weakref.WeakSet[Server] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # a forked process (a prefork child) must not keep the port open after its parent closed it
    for server in list(_servers):
        server.httpd.socket.close()


os.register_at_fork(after_in_child=_after_fork_in_child)


class Server:
    """prometheus-client's HTTP server of one registry, in a daemon thread."""

    def __init__(self, httpd: WSGIServer, thread: threading.Thread) -> None:
        self.httpd = httpd
        self.thread = thread
        _servers.add(self)

    @property
    def address(self) -> tuple[str, int]:
        """The host and port it listens on (the port chosen when 0 was asked)."""
        host, port = self.httpd.server_address[:2]
        return str(host), int(port)

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop serving and close the port."""
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout)


def serve(registry: CollectorRegistry, port: int, addr: str = "127.0.0.1") -> Server:
    """Serve ``registry`` at ``http://addr:port/metrics`` (any path answers) from a daemon
    thread. The default address is this host only; give ``"0.0.0.0"`` to be scraped from
    elsewhere, and port 0 for any free port (see :attr:`Server.address`). Raises OSError
    when the port cannot be bound."""
    httpd, thread = start_http_server(port, addr, registry=registry)
    thread.name = "celeriac-metrics-http"
    return Server(httpd, thread)


# -- feeding -------------------------------------------------------------------------------------


class MetricsFeeder:
    """Follows ``app``'s event log from now on (a receiver with ``start="latest"``) in a
    daemon thread and feeds ``metrics`` with its events; only those of ``hostname`` if given
    (a worker's own: its prefork children's events carry its hostname too)."""

    def __init__(
        self,
        app: Celeriac,
        metrics: Metrics,
        hostname: str | None = None,
        poll_timeout: float = 1.0,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.hostname = hostname
        self.poll_timeout = poll_timeout
        self._stop = threading.Event()
        self._positioned = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, timeout: float = 5.0) -> None:
        """Start following; returns once the log's end was read (so the events sent from
        then on are fed), or after ``timeout`` seconds when the log cannot be reached (the
        thread goes on trying)."""
        self._thread = threading.Thread(target=self._run, name="celeriac-metrics", daemon=True)
        self._thread.start()
        self._positioned.wait(timeout)

    def stop(self, timeout: float = 5.0, wait: bool = True) -> None:
        """Stop following (within ``poll_timeout`` seconds); ``wait=False``: only ask."""
        self._stop.set()
        if wait and self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        receiver = self.app.events.Receiver(start="latest")
        failing = False
        try:
            while not self._stop.is_set():
                try:
                    # the first read finds where "latest" is: it waits for nothing
                    timeout = self.poll_timeout if self._positioned.is_set() else 0.0
                    events = receiver.poll(1000, timeout)
                except Exception as exc:
                    if not failing:
                        failing = True
                        logger.warning("metrics: cannot read the event log: %s", exc)
                    self._stop.wait(1.0)
                    continue
                if failing:
                    failing = False
                    logger.info("metrics: reading the event log again")
                self._positioned.set()
                for event in events:
                    if self.hostname is None or event.get("hostname") == self.hostname:
                        self.metrics.event(event)
                self.metrics.flush()
        finally:
            receiver.close()

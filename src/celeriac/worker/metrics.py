"""A worker's Prometheus metrics (``--metrics-port``, ``worker_metrics_port``): the worker's
main process serves them over HTTP and feeds them with its own hostname's events, read
back from the event log, so that the tasks its prefork children run count too. Task events
are turned on: they are what the metrics are made of."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..exceptions import ImproperlyConfigured
from ..routing import app_queues

if TYPE_CHECKING:
    from ..monitor.metrics import MetricsFeeder, Server
    from .worker import Worker

logger = logging.getLogger("celeriac.worker")


class WorkerMetrics:
    """What :func:`start_metrics` started (nothing when no port is set)."""

    def __init__(self, server: Server | None = None, feeder: MetricsFeeder | None = None) -> None:
        self.server = server
        self.feeder = feeder

    def stop(self) -> None:
        """Stop serving and feeding."""
        if self.feeder is not None:
            self.feeder.stop(wait=False)  # it stops while the server does
        if self.server is not None:
            self.server.shutdown()
        if self.feeder is not None:
            self.feeder.stop()


def start_metrics(worker: Worker) -> WorkerMetrics:
    """Serve ``worker``'s metrics if ``worker_metrics_port`` is set (before the pool starts,
    so that its children are forked sending task events)."""
    conf = worker.app.conf
    port, addr = conf.worker_metrics_port, conf.worker_metrics_addr or "127.0.0.1"
    if port is None:
        return WorkerMetrics()
    try:
        port = int(port)
    except (TypeError, ValueError):
        port = -1
    if not 0 <= port <= 65535:
        raise ImproperlyConfigured(
            f"worker_metrics_port must be a port number, not {conf.worker_metrics_port!r}"
        )
    try:
        from ..monitor.metrics import Metrics, MetricsFeeder
    except ImportError as exc:
        raise ImproperlyConfigured(f"--metrics-port: {exc}") from exc
    worker.events.enable_task_events()
    queues = list(dict.fromkeys([*app_queues(worker.app), *worker.queues]))
    metrics = Metrics(worker.app, queues=queues)
    try:
        server = metrics.serve(port, addr)
    except OSError as exc:
        raise ImproperlyConfigured(f"cannot serve metrics on {addr}:{port}: {exc}") from exc
    feeder = MetricsFeeder(worker.app, metrics, hostname=worker.hostname, poll_timeout=0.5)
    feeder.start()
    host, bound = server.address
    host = f"[{host}]" if ":" in host else host
    logger.info("metrics of %s served at http://%s:%d/metrics", worker.hostname, host, bound)
    return WorkerMetrics(server, feeder)

"""Routers that ship as plugins (entry point group ``celeriac.routers``).

``task_routes = ["least-loaded"]`` (by entry point name) or
``task_routes = [LeastLoadedRouter(["fast", "slow"])]`` (an instance with its own queues).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from .._state import get_current_app
from ..exceptions import OperationalError
from ..routing import declared_queues


class LeastLoadedRouter:
    """Sends each task to the queue with the shortest backlog among ``queues`` (default: the
    setting ``router_least_loaded_queues``, else every queue in ``task_queues``).

    Backlogs are the broker's queue lengths, read at most once per ``ttl`` seconds; between
    reads each routed task counts towards its queue, so a burst spreads evenly instead of all
    going to the queue that was shortest at the last read. A task given an explicit queue, or
    when no queues are known, is left to the other routes."""

    def __init__(self, queues: Sequence[str] | None = None, ttl: float = 1.0) -> None:
        self.queues = list(queues) if queues else None
        self.ttl = ttl
        self._lengths: dict[str, int] = {}
        self._read_at = 0.0
        self._lock = threading.Lock()

    def __call__(
        self,
        name: str,
        args: Any,
        kwargs: Any,
        options: Mapping[str, Any],
        task: Any = None,
        **kw: Any,
    ) -> dict[str, Any] | None:
        if options.get("queue"):
            return None
        app = _app_of(task)
        queues = self._candidates(app)
        if not queues:
            return None
        with self._lock:
            now = time.monotonic()
            if now - self._read_at > self.ttl or set(self._lengths) != set(queues):
                self._read(app, queues)
                self._read_at = now
            queue = min(queues, key=lambda q: (self._lengths.get(q, 0), queues.index(q)))
            self._lengths[queue] = self._lengths.get(queue, 0) + 1
        return {"queue": queue}

    def _candidates(self, app: Any) -> list[str]:
        if self.queues:
            return self.queues
        configured = app.conf.router_least_loaded_queues
        if configured:
            return list(configured)
        return list(declared_queues(app.conf.task_queues))

    def _read(self, app: Any, queues: list[str]) -> None:
        lengths = {}
        for q in queues:
            try:
                lengths[q] = app.broker.queue_length(q)
            except OperationalError:
                lengths[q] = self._lengths.get(q, 0)
        self._lengths = lengths


def _app_of(task: Any) -> Any:
    if task is not None:
        return task.app
    return get_current_app()

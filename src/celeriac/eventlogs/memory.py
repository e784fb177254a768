"""An event log in this process's memory, shared by every client of one ``memory://`` URL."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from ..connections.memory import PerURL
from .base import LATEST, EventReader, PollingReader, log_name


class _Log:
    def __init__(self) -> None:
        self.lock = threading.Condition()
        self.events: deque[tuple[int, float, bytes]] = deque()  # (id, appended at, event)
        self.last = 0


_logs: PerURL[dict[str, _Log]] = PerURL(dict)  # by URL, then by the log's name


class MemoryEventLog:
    """Events kept in memory: for tests and one-process apps."""

    def __init__(self, url: str = "memory://", options: dict[str, Any] | None = None) -> None:
        self.url = url
        self._log = _logs.get(url).setdefault(log_name(dict(options or {})), _Log())

    @classmethod
    def reset(cls, url: str | None = None) -> None:
        """Forget the events of ``url`` (of every URL when None). For tests."""
        _logs.reset(url)

    def append(self, events: Sequence[bytes]) -> None:
        log, now = self._log, time.time()
        with log.lock:
            for event in events:
                log.last += 1
                log.events.append((log.last, now, event))
            log.lock.notify_all()

    def _fetch(self, after: int, limit: int) -> list[tuple[int, bytes]]:
        with self._log.lock:
            return [(i, e) for i, _, e in self._log.events if i > after][:limit]

    def _newest(self) -> int:
        with self._log.lock:
            return self._log.last

    def reader(self, start: str = LATEST) -> EventReader:
        return PollingReader(self._fetch, self._newest, start, interval=0.01)

    def trim(self, max_age: float | None, max_events: int | None) -> None:
        log = self._log
        with log.lock:
            if max_events is not None:
                while len(log.events) > max_events:
                    log.events.popleft()
            if max_age is not None:
                oldest = time.time() - max_age
                while log.events and log.events[0][1] < oldest:
                    log.events.popleft()

    def close(self) -> None:
        pass

"""The event-log protocol and the parts its implementations share.

A log keeps events in the order they were appended and numbers each with a *cursor*, a
string that only its own log understands. Appends come in batches (one round trip each);
readers ask for the events after a cursor. What is kept is bounded by :meth:`EventLog.trim`
(by age and by count), which appenders call now and then.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

from .. import plugins

#: entry-point group of event-log classes, by URL scheme
EVENT_LOGS = "celeriac.event_logs"

#: the defaults of ``event_log_max_age`` (seconds) and ``event_log_max_events``
DEFAULT_MAX_AGE = 24 * 3600.0
DEFAULT_MAX_EVENTS = 100_000

#: ``reader(start=LATEST)``: only events appended from now on
LATEST = "latest"
#: ``reader(start=OLDEST)``: every event the log still keeps
OLDEST = "oldest"

Entry = tuple[str, bytes]  # (cursor, encoded event)

#: the log a URL holds unless the ``name`` option names another (remote control has its own)
DEFAULT_NAME = "events"


def log_name(options: dict[str, Any]) -> str:
    """The ``name`` option (popped): lowercase letters and underscores, a table or key part."""
    name = str(options.pop("name", DEFAULT_NAME))
    if not re.fullmatch(r"[a-z][a-z_]{0,30}", name):
        raise ValueError(f"an event log's name is lowercase letters and underscores: {name!r}")
    return name


@runtime_checkable
class EventReader(Protocol):
    """One reader's position in a log."""

    #: the cursor of the last event read (None before the first)
    cursor: str | None

    def read(self, limit: int = 1000, timeout: float = 0.0) -> list[Entry]:
        """Up to ``limit`` events after the last one read, oldest first; waits up to
        ``timeout`` seconds for one when there is none yet."""

    def close(self) -> None:
        """Release what the reader holds."""


@runtime_checkable
class EventLog(Protocol):
    """An append-only, bounded log of encoded events that many readers follow."""

    url: str

    def append(self, events: Sequence[bytes]) -> None:
        """Add ``events`` at the end, in one round trip where the technology allows
        (raises OperationalError when the log cannot be reached)."""

    def reader(self, start: str = LATEST) -> EventReader:
        """A reader from ``start``: :data:`LATEST`, :data:`OLDEST`, or a cursor (the events
        after it)."""

    def trim(self, max_age: float | None, max_events: int | None) -> None:
        """Forget events older than ``max_age`` seconds and all but the newest
        ``max_events``."""

    def close(self) -> None:
        """Release connections (the log reconnects on its next use)."""


def create_event_log(url: str, options: dict[str, Any] | None = None) -> EventLog:
    """The event log for ``url``: the class the ``celeriac.event_logs`` entry point of its
    scheme names (``options`` are the ``event_log_options`` setting; ``name`` chooses one of
    several logs at one URL, ``"events"`` by default)."""
    cls = plugins.for_url(EVENT_LOGS, url, "event log")
    log: EventLog = cls(url, dict(options or {}))
    return log


class PollingReader:
    """A reader over a log whose cursors are increasing integers, read by polling: SQL
    tables and memory. ``fetch(after, limit)`` returns ``(id, event)`` rows after ``after``;
    ``newest()`` the id of the newest event (0 when none)."""

    def __init__(
        self,
        fetch: Callable[[int, int], list[tuple[int, bytes]]],
        newest: Callable[[], int],
        start: str,
        interval: float = 0.05,
    ) -> None:
        self._fetch = fetch
        self._newest = newest
        self._interval = interval
        self._after: int | None
        if start == LATEST:
            self._after = None  # resolved at the first read, so that a log down now is not fatal
        elif start == OLDEST:
            self._after = 0
        else:
            self._after = int(start)
        self.cursor: str | None = None if start in (LATEST, OLDEST) else start

    def read(self, limit: int = 1000, timeout: float = 0.0) -> list[Entry]:
        if self._after is None:
            self._after = self._newest()
        deadline = time.monotonic() + timeout
        while True:
            rows = self._fetch(self._after, limit)
            if rows:
                self._after = int(rows[-1][0])
                self.cursor = str(self._after)
                return [(str(i), bytes(body)) for i, body in rows]
            left = deadline - time.monotonic()
            if left <= 0:
                return []
            time.sleep(min(self._interval, left))

    def close(self) -> None:
        pass

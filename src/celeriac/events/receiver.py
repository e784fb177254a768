"""Reading events: a receiver follows an event log and calls a handler per event type."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from ..eventlogs.base import LATEST, EventReader
from .event import LamportClock, decode, with_celery_fields

if TYPE_CHECKING:
    from ..eventlogs.base import EventLog

logger = logging.getLogger("celeriac.events")

Handler = Callable[[dict[str, Any]], Any]


class EventReceiver:
    """Calls ``handlers[event["type"]]`` (or ``handlers["*"]``) for each event of a log
    (Celery's ``EventReceiver``; ``channel``, ``routing_key``, ``queue_prefix`` and the other
    Celery arguments are accepted and mean nothing: every event of the log is read).

    ``start`` is where reading begins: ``"latest"`` (events sent from now on, as Celery's
    receivers), ``"oldest"`` (every event the log keeps), or a cursor read before (its
    :attr:`cursor`), so a monitor that restarts misses nothing the log still keeps.
    """

    def __init__(
        self,
        log: EventLog,
        handlers: dict[str, Handler] | None = None,
        start: str = LATEST,
        clock: LamportClock | None = None,
        wakeup: Callable[[], None] | None = None,
        **_celery_options: Any,
    ) -> None:
        self.log = log
        self.handlers = dict(handlers or {})
        self.clock = clock or LamportClock()
        self.should_stop = False
        self._reader: EventReader = log.reader(start)
        self._wakeup = wakeup

    @property
    def cursor(self) -> str | None:
        """Where the next read continues from (save it to resume there)."""
        return self._reader.cursor

    def process(self, type: str, event: dict[str, Any]) -> None:
        handler = self.handlers.get(type) or self.handlers.get("*")
        if handler is not None:
            handler(event)

    def poll(self, limit: int = 1000, timeout: float = 0.0) -> list[dict[str, Any]]:
        """The events of the next ``limit`` log entries (each holds a batch of one process's
        events), waiting up to ``timeout`` seconds for one."""
        events = []
        for _, body in self._reader.read(limit, timeout):
            found = decode(body)
            if not found:
                logger.warning("an event-log entry without events was skipped")
            for event in found:
                self.clock.adjust(int(event.get("clock") or 0))
                events.append(with_celery_fields(event) if "payload" in event else event)
        return events

    def itercapture(
        self, limit: int | None = None, timeout: float | None = None, wakeup: bool = True
    ) -> Iterator[dict[str, Any]]:
        """Yield events as they come: ``limit`` of them at most; when ``timeout`` seconds
        pass without one, raise TimeoutError (as Celery's ``socket.timeout``)."""
        if wakeup and self._wakeup is not None:
            self._wakeup()
        count = 0
        while not self.should_stop:
            events = self.poll(1000 if limit is None else min(limit - count, 1000), timeout or 1.0)
            if not events and timeout is not None:
                raise TimeoutError(f"no event within {timeout:g}s")
            for event in events:
                self.process(str(event["type"]), event)
                yield event
                count += 1
                if limit is not None and count >= limit:
                    return

    def capture(
        self, limit: int | None = None, timeout: float | None = None, wakeup: bool = True
    ) -> None:
        """Handle events until :attr:`should_stop`, ``limit`` events, or ``timeout``."""
        for _ in self.itercapture(limit, timeout, wakeup):
            pass

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> EventReceiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""Sending events: a buffer that a thread of its own writes to the event log in batches.

:meth:`EventDispatcher.send` only appends to a bounded buffer, so an event never blocks or
fails the code that sends it. The writer thread encodes what is buffered and appends it to
the log in one round trip every ``flush_interval`` seconds (at once when a batch fills up).
While the log cannot be reached the events wait in the buffer; past its limit the oldest are
dropped, with one warning per outage.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ..exceptions import OperationalError
from ..utils import safe_repr
from .event import UTCOFFSET, Event, LamportClock, encode_batch, group_from
from .event import Event as _Event

if TYPE_CHECKING:
    from ..eventlogs.base import EventLog

logger = logging.getLogger("celeriac.events")

BATCH = 500  # events per append
BUFFER_LIMIT = 10_000  # events held while the log cannot be reached
TRIM_EVERY = 5.0  # seconds between two trims of the log by one dispatcher


_dispatchers: weakref.WeakSet[EventDispatcher] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for dispatcher in list(_dispatchers):
        dispatcher._setup()


os.register_at_fork(after_in_child=_after_fork_in_child)


class EventDispatcher:
    """Sends events of ``hostname`` to an event log (Celery's ``EventDispatcher``).

    ``groups`` limits what is sent to some groups (``{"worker"}``: no task events).
    ``connection``, ``channel``, ``exchange`` and ``serializer`` are accepted for Celery's
    signature and mean nothing: events go to the app's event log, as JSON.
    """

    def __init__(
        self,
        log: Callable[[], EventLog] | EventLog,
        hostname: str,
        enabled: bool = True,
        groups: Iterable[str] | None = None,
        clock: LamportClock | None = None,
        flush_interval: float = 0.1,
        buffer_limit: int = BUFFER_LIMIT,
        retention: tuple[float | None, int | None] = (None, None),
        **_celery_options: Any,
    ) -> None:
        self._log_factory = log if callable(log) else (lambda: log)
        self.hostname = hostname
        self.enabled = enabled
        self.groups = set(groups) if groups else None
        self.clock = clock or LamportClock()
        self.flush_interval = flush_interval
        self.buffer_limit = buffer_limit
        self.retention = retention
        self.sent = 0  # events handed to the log
        self.dropped = 0  # events given up while the log could not be reached
        self._setup()
        _dispatchers.add(self)

    def _setup(self) -> None:
        """A new buffer and writer (at start, and in a forked child: the parent's thread
        and buffer are not the child's)."""
        self._pid = os.getpid()
        self._lock = threading.Lock()  # starting and stopping the writer only
        self._wake = threading.Event()
        self._buffer: deque[dict[str, Any]] = deque()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._writing = False
        self._log: EventLog | None = None
        self._failing = False
        self._trimmed = 0.0
        self._batches = 0

    # -- sending ----------------------------------------------------------------------------

    def send(
        self,
        type: str,
        blind: bool = False,
        utcoffset: Any = None,
        retry: bool = False,
        retry_policy: Any = None,
        Event: Callable[..., dict[str, Any]] = Event,
        **fields: Any,
    ) -> None:
        """Send an event of ``type`` with ``fields`` (never raises, never waits)."""
        if not self.enabled or (self.groups and group_from(type) not in self.groups):
            return
        if Event is _Event:  # the usual case: the keyword dict is the event (no copy)
            self.put(type, fields)
        else:
            self.put(type, Event(type, fields))

    def put(self, type: str, event: dict[str, Any]) -> None:
        """Buffer ``event`` (a dict this dispatcher may keep and change) as an event of
        ``type``: :meth:`send` without its checks, for senders that made them."""
        # what every sent event carries (inline: this runs several times for every task)
        event["type"] = type
        if "timestamp" not in event:
            event["timestamp"] = time.time()
        if "hostname" not in event:
            event["hostname"] = self.hostname
        event["pid"] = self._pid
        event["clock"] = self.clock.forward()
        event["utcoffset"] = UTCOFFSET
        buffer = self._buffer
        buffer.append(event)
        size = len(buffer)
        if size > self.buffer_limit:
            buffer.popleft()
            self._dropped(1)
        if self._thread is None:
            self._start()
        elif size == BATCH:  # a batch is full: the writer goes at once, not at its interval
            self._wake.set()

    def publish(self, type: str, fields: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        """Celery's lower-level form of :meth:`send`."""
        self.send(type, **fields)

    def enable(self) -> None:
        self.enabled = True

    def disable(self) -> None:
        self.enabled = False

    # -- the writer -------------------------------------------------------------------------

    def _start(self) -> None:
        with self._lock:
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(
                    target=self._run, name="celeriac-events", daemon=True
                )
                self._thread.start()

    def _take(self) -> list[dict[str, Any]]:
        # popped one by one (each pop atomic): an event put meanwhile is never lost
        buffer, batch = self._buffer, list[dict[str, Any]]()
        append, pop = batch.append, buffer.popleft
        try:
            for _ in range(min(len(buffer), BATCH)):
                append(pop())
        except IndexError:  # the oldest dropped meanwhile (past the buffer's limit)
            pass
        return batch

    def _run(self) -> None:
        """The writer: it owns the log, and closes it when it stops."""
        try:
            self._write_until_closed()
        finally:
            self._writing = False
            log, self._log = self._log, None
            if log is not None:
                try:
                    log.close()
                except Exception:
                    pass

    def _write_until_closed(self) -> None:
        pause = self.flush_interval
        while True:
            self._wake.wait(pause)
            self._wake.clear()
            self._writing = True
            batch = self._take()
            if not batch:
                self._writing = False
                if self._closed:
                    return
                continue
            try:
                self._write(batch)
                # more than a batch came meanwhile: the next one goes at once
                pause = 0.0 if len(self._buffer) >= BATCH else self.flush_interval
            except Exception as exc:
                self._buffer.extendleft(reversed(batch))
                excess = len(self._buffer) - self.buffer_limit
                for _ in range(max(excess, 0)):
                    self._buffer.popleft()
                self._dropped(max(excess, 0))
                if not self._failing:
                    self._failing = True
                    logger.warning("events cannot be sent now (%s); they are kept", safe_repr(exc))
                if self._closed:
                    return
                pause = min(max(pause * 2, 0.5), 5.0)
                self._wake.wait(pause)  # closing wakes it
            finally:
                self._writing = False

    def _write(self, batch: list[dict[str, Any]]) -> None:
        """One log entry for the whole batch (a JSON array): one append, one round trip."""
        if self._log is None:
            self._log = self._log_factory()
        self._log.append([encode_batch(batch)])
        self.sent += len(batch)
        self._batches += 1
        if self._failing:
            self._failing = False
            logger.info("events are sent again")
        max_age, max_events = self.retention
        now = time.monotonic()
        if (max_age is not None or max_events is not None) and now - self._trimmed > TRIM_EVERY:
            self._trimmed = now
            # the log counts entries: this process's batches give how many events one holds
            entries = None
            if max_events is not None:
                entries = max(1, int(max_events * self._batches / max(self.sent, 1)))
            try:
                self._log.trim(max_age, entries)
            except OperationalError as exc:
                logger.debug("could not trim the event log: %s", exc)

    def _dropped(self, count: int) -> None:
        if count:
            if not self.dropped:
                logger.warning("the event buffer is full: the oldest events are dropped")
            self.dropped += count

    # -- flushing and closing -----------------------------------------------------------------

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until what was sent is written (or ``timeout`` passes); whether it was."""
        if self._pid != os.getpid():
            return True
        deadline = time.monotonic() + timeout
        while self._buffer or self._writing:
            thread = self._thread
            if time.monotonic() > deadline or thread is None or not thread.is_alive():
                return not self._buffer and not self._writing
            self._wake.set()
            time.sleep(0.005)
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Write what is buffered (for up to ``timeout`` seconds), then stop the writer,
        which closes the log."""
        deadline = time.monotonic() + timeout
        self.flush(timeout)
        with self._lock:
            self._closed = True
            thread = self._thread
        self._wake.set()
        if (
            thread is not None
            and self._pid == os.getpid()
            and thread is not threading.current_thread()
        ):
            thread.join(max(deadline - time.monotonic(), 0.1))

    def __enter__(self) -> EventDispatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""Feeding an event store from an app's event log.

:class:`Ingester` reads the log from the cursor the store saved (every event the log keeps,
the first time) and applies the events in batches, each batch with the cursor after it in
the same transaction (SQLite, PostgreSQL, memory) or the same ``MULTI``/``EXEC`` (Redis).
So a monitor that stops, however abruptly, goes on after the last batch it applied: an
event is never missed while the log keeps it, and one applied again (the batch the monitor
was writing when it was killed, when its transaction had committed on the server but the
reply was lost) changes nothing.

With a redaction hook (:data:`Redactor`, the ``dashboard_redact`` setting), the task
arguments of every event pass through it before the store sees them: what it hides is never
written.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..eventlogs.base import DEFAULT_NAME, OLDEST
from ..exceptions import ImproperlyConfigured, OperationalError
from ..plugins import import_path
from ..utils.urls import safe_url
from .store import EventStore

if TYPE_CHECKING:
    from ..app import Celeriac
    from ..events import EventReceiver

logger = logging.getLogger("celeriac.monitor")

DEFAULT_BATCH = 20  # log entries read at a time (an entry holds up to 500 events)
FIRST_PAUSE = 0.5  # seconds before the first retry after a failure (doubling up to the next)
LONGEST_PAUSE = 10.0


#: ``redact(task_name, args, kwargs) -> (args, kwargs)``: a task's arguments as a monitor
#: may keep and show them
Redactor = Callable[[str, list[Any], dict[str, Any]], tuple[Any, Any]]


def load_redactor(value: str | Redactor | None) -> Redactor | None:
    """The redaction hook ``value`` names (a dotted path, as in the ``dashboard_redact``
    setting), or ``value`` itself when it is a function."""
    if value is None or callable(value):
        return value
    hook = import_path(value, "dashboard_redact")
    if not callable(hook):
        raise ImproperlyConfigured(f"dashboard_redact {value!r} is not callable")
    redactor: Redactor = hook
    return redactor


def redact_arguments(
    redactor: Redactor, name: str, args: Any, kwargs: Any
) -> tuple[list[Any], dict[str, Any]]:
    """``redactor`` applied to one call's arguments; a hook that fails hides them all."""
    args = list(args) if isinstance(args, list | tuple) else []
    kwargs = dict(kwargs) if isinstance(kwargs, dict) else {}
    try:
        new_args, new_kwargs = redactor(name, list(args), dict(kwargs))
    except Exception:
        logger.exception("the redaction hook failed on %s: its arguments are hidden", name)
        return ["[redacted]"] * len(args), dict.fromkeys(kwargs, "[redacted]")
    return list(new_args or ()), dict(new_kwargs or {})


def redact_event(event: dict[str, Any], redactor: Redactor) -> dict[str, Any]:
    """``event`` with its task arguments as ``redactor`` gives them back. When the hook
    changed them, the payload says ``"redacted": True``: such a task is not sent again from
    the store, whose arguments are no longer those it was sent with."""
    payload = event.get("payload")
    if not isinstance(payload, dict):
        return event
    args = list(payload.get("args") or ())
    kwargs = dict(payload.get("kwargs") or {})
    new_args, new_kwargs = redact_arguments(redactor, str(event.get("name") or ""), args, kwargs)
    if new_args == args and new_kwargs == kwargs:
        return event
    # the texts of the arguments are made again from the payload (see rows.change_from)
    out = {key: value for key, value in event.items() if key not in ("args", "kwargs")}
    out["payload"] = {"args": new_args, "kwargs": new_kwargs, "redacted": True}
    return out


def default_source(app: Celeriac) -> str:
    """The name an ingester keeps ``app``'s cursor under: its event log's URL (password
    masked) and the log's name (``event_log_options["name"]``) when it is not the default."""
    name = (app.conf.event_log_options or {}).get("name", DEFAULT_NAME)
    url = safe_url(app.events.url)
    return url if name == DEFAULT_NAME else f"{url}#{name}"


class Ingester:
    """Follows ``app``'s event log into ``store``, ``batch`` events at a time (their task
    arguments through ``redactor`` first, when given).

    The cursor is kept in the store under ``source`` (by default :func:`default_source`,
    so a store fed from another log starts that log from its oldest event).
    :meth:`run` goes on until stopped, through outages of the log or the store (logged once
    each, retried with a growing pause); an event the store cannot take is skipped with a
    log line. :meth:`step` applies one batch (for tests and callers with their own loop).
    """

    def __init__(
        self,
        app: Celeriac,
        store: EventStore,
        batch: int = DEFAULT_BATCH,
        source: str | None = None,
        redactor: Redactor | None = None,
    ) -> None:
        self.app = app
        self.store = store
        self.redactor = redactor
        self.batch = max(int(batch), 1)
        self.source = source or default_source(app)
        #: events handed to the store, and events skipped because it could not take them
        self.applied = 0
        self.skipped = 0
        self._receiver: EventReceiver | None = None
        self._pending: tuple[list[dict[str, Any]], str | None] | None = None
        self._failing = False

    def _open(self) -> EventReceiver:
        cursor = self.store.cursor(self.source)
        try:
            return self.app.events.Receiver(start=cursor or OLDEST)
        except ValueError:
            logger.warning(
                "the saved cursor %r is not one of %s: reading from its oldest event",
                cursor,
                self.source,
            )
            return self.app.events.Receiver(start=OLDEST)

    def step(self, timeout: float = 1.0) -> int:
        """Read the next batch (waiting up to ``timeout`` seconds for an event) and apply
        it; how many events were applied. A batch read but not applied (the store was down)
        is applied first the next time. Raises what the log or the store raised."""
        if self._pending is None:
            if self._receiver is None:
                self._receiver = self._open()
            events = self._receiver.poll(self.batch, timeout)
            if not events:
                return 0
            if self.redactor is not None:
                events = [redact_event(event, self.redactor) for event in events]
            self._pending = (events, self._receiver.cursor)
        events, cursor = self._pending
        applied = self._apply(events, cursor)
        self._pending = None
        self.applied += applied
        return applied

    def _apply(self, events: list[dict[str, Any]], cursor: str | None) -> int:
        try:
            self.store.apply(events, cursor, self.source)
            return len(events)
        except OperationalError:
            raise
        except Exception:
            logger.debug("a batch failed: its events are applied one by one", exc_info=True)
        applied = 0
        for event in events:
            try:
                self.store.apply([event], None, self.source)
                applied += 1
            except OperationalError:
                raise
            except Exception as exc:
                self.skipped += 1
                logger.warning(
                    "an event was skipped (%s of %s): %s: %s",
                    event.get("type"),
                    event.get("uuid") or event.get("hostname"),
                    type(exc).__name__,
                    exc,
                )
        self.store.apply([], cursor, self.source)
        return applied

    def run(self, stop: threading.Event, timeout: float = 1.0) -> None:
        """Apply batches until ``stop`` is set (checked at least every ``timeout`` seconds);
        then release the log's connection."""
        pause = FIRST_PAUSE
        try:
            while not stop.is_set():
                try:
                    self.step(timeout)
                except Exception as exc:
                    if not self._failing:
                        self._failing = True
                        logger.warning(
                            "the event store cannot be fed now (%s: %s); trying again",
                            type(exc).__name__,
                            exc,
                        )
                    stop.wait(pause)
                    pause = min(pause * 2, LONGEST_PAUSE)
                    continue
                if self._failing:
                    self._failing = False
                    logger.info("the event store is fed again")
                pause = FIRST_PAUSE
        finally:
            self.close()

    def close(self) -> None:
        """Release the log's connection (the next :meth:`step` opens another, from the
        store's cursor)."""
        receiver, self._receiver = self._receiver, None
        self._pending = None
        if receiver is not None:
            receiver.close()
            receiver.log.close()

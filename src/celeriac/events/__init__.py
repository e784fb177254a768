"""Worker and task events, with Celery's types and field names.

Workers send ``worker-online``, ``worker-heartbeat`` (every ``event_heartbeat_interval``
seconds) and ``worker-offline`` always, and the task events when task events are on
(``worker -E``, ``worker_send_task_events``, or the ``enable_events`` control command).
Producers send ``task-sent`` when ``task_send_sent_event`` is on. Events go to the app's
event log (:mod:`celeriac.eventlogs`): by default beside the broker, so they travel on every
broker; ``app.events.Receiver`` reads them and ``app.events.State`` keeps the cluster's state.
"""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..eventlogs.base import LATEST, EventLog, create_event_log
from ..utils.nodenames import default_nodename
from .dispatcher import EventDispatcher
from .event import TASK_EVENTS, WORKER_EVENTS, Event, LamportClock, decode, encode, group_from
from .receiver import EventReceiver
from .state import State

if TYPE_CHECKING:
    from ..app import Celeriac

__all__ = [
    "TASK_EVENTS",
    "WORKER_EVENTS",
    "Event",
    "EventDispatcher",
    "EventReceiver",
    "Events",
    "LamportClock",
    "State",
    "decode",
    "encode",
    "group_from",
]


_all: weakref.WeakSet[Events] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for events in list(_all):  # a lock held by a parent's thread at the fork stays held
        events._lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


#: seconds a control request or reply is kept in the control log
CONTROL_MAX_AGE = 300.0


def default_hostname() -> str:
    """``celeriac@<this host>``."""
    return default_nodename()


class Events:
    """``app.events``: the app's event log and the ways to send and read events."""

    def __init__(self, app: Celeriac) -> None:
        self.app = app
        self.clock = LamportClock()
        self._log: EventLog | None = None
        self._lock = threading.Lock()
        #: this process's dispatcher for task events (None: task events are off)
        self.tasks: EventDispatcher | None = None
        self._default: EventDispatcher | None = None
        self._control: EventLog | None = None
        _all.add(self)

    # -- the log --------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``event_log_url``, by default the broker's URL."""
        conf = self.app.conf
        return str(conf.event_log_url or self.app.broker.url)

    def retention(self) -> tuple[float | None, int | None]:
        conf = self.app.conf
        return conf.event_log_max_age, conf.event_log_max_events

    def create_log(self) -> EventLog:
        """A new connection to the event log."""
        max_age, max_events = self.retention()
        options = dict(self.app.conf.event_log_options or {})
        if max_age is not None:
            options.setdefault("max_age", max_age)
        if max_events is not None:
            options.setdefault("max_events", max_events)
        return create_event_log(self.url, options)

    def control_log(self) -> EventLog:
        """This process's connection to the control log (remote control's requests and
        replies: an event log named ``control`` beside the events)."""
        if self._control is None:
            with self._lock:
                if self._control is None:
                    options = dict(self.app.conf.event_log_options or {})
                    options.update(name="control", max_age=CONTROL_MAX_AGE, max_events=10_000)
                    self._control = create_event_log(self.url, options)
        return self._control

    @property
    def log(self) -> EventLog:
        """This app's event log (created on first use)."""
        if self._log is None:
            with self._lock:
                if self._log is None:
                    self._log = self.create_log()
        return self._log

    # -- Celery's API -------------------------------------------------------------------------

    def Dispatcher(
        self,
        connection: Any = None,
        hostname: str | None = None,
        enabled: bool = True,
        channel: Any = None,
        buffer_while_offline: bool = True,
        app: Any = None,
        serializer: Any = None,
        groups: Any = None,
        **kwargs: Any,
    ) -> EventDispatcher:
        """A dispatcher sending to this app's event log."""
        return EventDispatcher(
            self.create_log,
            hostname or default_hostname(),
            enabled=enabled,
            groups=groups,
            clock=self.clock,
            retention=self.retention(),
            **kwargs,
        )

    def Receiver(
        self,
        channel: Any = None,
        handlers: dict[str, Any] | None = None,
        routing_key: str = "#",
        node_id: str | None = None,
        start: str = LATEST,
        **kwargs: Any,
    ) -> EventReceiver:
        """A receiver of this app's event log (Celery's arguments accepted)."""
        return EventReceiver(
            self.create_log(), handlers, start=start, clock=self.clock, wakeup=self._wakeup
        )

    def State(self, **kwargs: Any) -> State:
        return State(**kwargs)

    def shared_dispatcher(self, hostname: str | None = None) -> EventDispatcher:
        """This process's shared dispatcher (created once, kept open)."""
        if self._default is None:
            with self._lock:
                if self._default is None:
                    self._default = self.Dispatcher(hostname=hostname)
        return self._default

    @contextlib.contextmanager
    def default_dispatcher(
        self, hostname: str | None = None, enabled: bool = True, buffer_while_offline: bool = False
    ) -> Iterator[EventDispatcher]:
        """Celery's form of :meth:`shared_dispatcher`."""
        yield self.shared_dispatcher(hostname)

    # -- the worker's side --------------------------------------------------------------------

    def enable_task_events(self, hostname: str) -> EventDispatcher:
        """Send task events from this process as ``hostname`` (a worker does this)."""
        dispatcher = self.tasks
        if dispatcher is None:
            dispatcher = self.Dispatcher(hostname=hostname, groups=["task"])
            self.tasks = dispatcher
        dispatcher.hostname = hostname
        dispatcher.enable()
        return dispatcher

    def disable_task_events(self) -> None:
        if self.tasks is not None:
            self.tasks.disable()

    def send_task_event(self, type: str, **fields: Any) -> None:
        """Send a task event if task events are on in this process."""
        dispatcher = self.tasks
        if dispatcher is not None and dispatcher.enabled:
            dispatcher.put(type, fields)

    def flush(self, timeout: float = 5.0) -> None:
        """Write what this process's dispatchers hold (before it exits)."""
        for dispatcher in (self.tasks, self._default):
            if dispatcher is not None:
                dispatcher.flush(timeout)

    def _wakeup(self) -> None:
        """Ask the workers for a heartbeat now (a receiver's ``wakeup``), if control works."""
        try:
            if self.app.backend is not None:
                self.app.control.broadcast("heartbeat")
        except Exception:  # a monitor starts even when control does not work
            pass

    def close(self) -> None:
        for dispatcher in (self.tasks, self._default):
            if dispatcher is not None:
                dispatcher.close(1.0)
        for log in (self._log, self._control):
            if log is not None:
                log.close()

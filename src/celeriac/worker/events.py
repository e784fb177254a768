"""The worker's events: ``worker-online``, ``worker-heartbeat`` every
``event_heartbeat_interval`` seconds and ``worker-offline`` (unless that interval is 0), and
turning task events on and off (``-E``, ``worker_send_task_events``, the ``enable_events``
and ``disable_events`` control commands)."""

from __future__ import annotations

import os
import platform
from typing import TYPE_CHECKING, Any

from .. import __version__

if TYPE_CHECKING:
    from ..events import EventDispatcher
    from .timer import Entry
    from .worker import Worker

SOFTWARE: dict[str, Any] = {
    "sw_ident": "celeriac",
    "sw_ver": __version__,
    "sw_sys": platform.system(),
}


def loadavg() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover - systems without one
        return []


class WorkerEvents:
    """Sends one worker's events."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        conf = worker.app.conf
        self.freq = float(conf.event_heartbeat_interval or 0)
        self.task_events = bool(conf.worker_send_task_events)
        self._dispatcher: EventDispatcher | None = None
        self._beat: Entry | None = None

    def start(self) -> None:
        """Turn task events on if asked, and announce the worker (a worker with a pool)."""
        worker = self.worker
        # the event log's module is imported here, before the pool forks: a child forked
        # while a writer thread imports it would find it half imported for ever
        worker.app.events.create_log().close()
        if self.task_events:
            self.enable_task_events()
        if self.freq > 0:
            self._dispatcher = worker.app.events.Dispatcher(
                hostname=worker.hostname, groups=["worker"]
            )
            self.send("worker-online")
            self._dispatcher.flush()  # the log exists (a stream is declared) before the pool
            self._beat = worker.timer.call_repeatedly(self.freq, self.heartbeat)

    def start_in_child(self) -> None:
        """A prefork child sends task events as its worker does (it was forked with the
        setting); worker events are its parent's."""
        if self.task_events:
            self.enable_task_events()

    def enable_task_events(self) -> None:
        self.task_events = True
        self.worker.app.events.enable_task_events(self.worker.hostname)

    def disable_task_events(self) -> None:
        self.task_events = False
        self.worker.app.events.disable_task_events()

    def send(self, type: str, **fields: Any) -> None:
        if self._dispatcher is not None:
            running = self.worker.running()
            self._dispatcher.send(
                type,
                freq=self.freq,
                active=len(running),
                processed=sum(self.worker.total.values()),
                loadavg=loadavg(),
                **SOFTWARE,
                **fields,
            )

    def heartbeat(self) -> None:
        self.send("worker-heartbeat")

    def stop(self) -> None:
        """Say the worker went offline and write what every dispatcher holds."""
        if self._beat is not None:
            self._beat.cancel()
        self.worker.app.events.flush()  # the task events first: offline is the last word
        if self._dispatcher is not None:
            self.send("worker-offline")
            self._dispatcher.close()

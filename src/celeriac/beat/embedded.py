"""Celery's ``beat.Service`` and ``beat.EmbeddedService``: beat run by a program of its own,
in a thread it chooses, instead of by ``celeriac beat``."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from .scheduler import open_store
from .service import Beat, Store

if TYPE_CHECKING:
    from ..app import Celeriac


class Service:
    """Beat for ``app``: :meth:`start` runs it in the calling thread until :meth:`stop`
    (from another thread). ``scheduler_cls`` and ``schedule_filename`` are ``-S`` and
    ``-s``; by default the app's ``beat_scheduler`` and ``beat_schedule_filename``."""

    def __init__(
        self,
        app: Celeriac,
        max_interval: float | None = None,
        schedule_filename: str | None = None,
        scheduler_cls: Any = None,
    ) -> None:
        self.app = app
        self.max_interval = max_interval
        self.schedule_filename = schedule_filename
        self.scheduler_cls = scheduler_cls
        self._store: Store | None = None
        self._beat: Beat | None = None
        self._stopped = threading.Event()
        self._done = threading.Event()

    def get_scheduler(self, lazy: bool = False, **_celery_options: Any) -> Store:
        """The store beat keeps its entries in (what ``-S`` names); a bad one raises here."""
        return open_store(self.app, self.scheduler_cls, self.schedule_filename)

    @property
    def scheduler(self) -> Store:
        """The store this service's beat uses, opened on first use."""
        if self._store is None:
            self._store = self.get_scheduler()
        return self._store

    def start(self, embedded_process: bool = False) -> None:
        """Run beat here until :meth:`stop` is called."""
        try:
            if self._stopped.is_set():
                return
            self._beat = Beat(self.app, self.scheduler, max_interval=self.max_interval)
            if self._stopped.is_set():  # stopped while it was being made
                self._beat.close()
                return
            self._beat.run()
        finally:
            self._done.set()

    def sync(self) -> None:
        """Nothing to do: beat saves each entry's run state as it sends it."""

    def stop(self, wait: bool = False) -> None:
        """Stop beat (``wait``: until :meth:`start` has returned, up to 30 s)."""
        self._stopped.set()
        if self._beat is not None:
            self._beat.stop()
        if wait and self._beat is not None:
            self._done.wait(30)


class _BeatThread(threading.Thread):
    """A daemon thread running a :class:`Service`; ``stop()`` stops it."""

    def __init__(self, app: Celeriac, max_interval: float | None, **kwargs: Any) -> None:
        super().__init__(name="celeriac-beat", daemon=True)
        self.service = Service(app, max_interval=max_interval, **kwargs)

    def run(self) -> None:
        self.service.start(embedded_process=False)

    def stop(self) -> None:
        self.service.stop(wait=True)


def EmbeddedService(
    app: Celeriac, max_interval: float | None = None, **kwargs: Any
) -> threading.Thread:
    """Beat in a thread of this process (not started: call ``start()``; ``stop()`` stops
    it). Celery's ``thread=False`` (a child process) is not offered: run ``celeriac beat``."""
    if not kwargs.pop("thread", True):
        raise NotImplementedError(
            "EmbeddedService(thread=False) (beat in a child process) is not offered: run "
            "beat in a thread (the default) or as its own process (celeriac beat)"
        )
    return _BeatThread(app, max_interval, **kwargs)

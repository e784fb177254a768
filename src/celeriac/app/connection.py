"""``app.connection()``: Celery's broker connection object, for the code that asks for one.

celeriac's broker connects and reconnects by itself, so this object is a handle on the
app's broker: a context manager that code written for Celery can open, check and close
(``with app.connection() as conn: app.events.Receiver(conn, ...)``, or a health check's
``app.connection().ensure_connection(max_retries=3)``).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ..exceptions import OperationalError
from ..utils.urls import safe_url

if TYPE_CHECKING:
    from .base import Celeriac


class Connection:
    """A handle on the app's broker."""

    def __init__(self, app: Celeriac, url: str | None = None) -> None:
        self.app = app
        self.url = url or app.broker.url

    def as_uri(self, include_password: bool = False) -> str:
        return self.url if include_password else safe_url(self.url)

    def ensure_connection(
        self, errback: Any = None, max_retries: int | None = None, interval_start: float = 1.0,
        interval_step: float = 1.0, interval_max: float = 5.0, timeout: float | None = None,
        **_: Any,
    ) -> Connection:  # fmt: skip
        """Reach the broker (a queue's length is read), trying again as Celery's does;
        OperationalError when it cannot be reached."""
        tries, pause = 0, interval_start
        queue = self.app.conf.task_default_queue
        while True:
            try:
                self.app.broker.queue_length(queue)
                return self
            except OperationalError as exc:
                tries += 1
                if max_retries is not None and tries > max_retries:
                    raise
                if errback is not None:
                    errback(exc, pause)
                time.sleep(pause)
                pause = min(pause + interval_step, interval_max)

    connect = ensure_connection

    @property
    def connected(self) -> bool:
        try:
            self.app.broker.queue_length(self.app.conf.task_default_queue)
            return True
        except OperationalError:
            return False

    def release(self) -> None:
        """Nothing to give back: the broker's connections are the app's."""

    close = release

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

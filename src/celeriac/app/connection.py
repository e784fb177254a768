"""``app.connection()``: Celery's broker connection object, for the code that asks for one.

celeriac's broker connects and reconnects by itself, so this object is a handle on the
app's broker: a context manager that code written for Celery can open, check and close
(``with app.connection() as conn: app.events.Receiver(conn, ...)``, or a health check's
``app.connection().ensure_connection(max_retries=3)``). Celery's pools (``app.pool``,
``app.producer_pool``, ``app.producer_or_acquire()``) give such handles too, for code that
publishes many tasks through one connection (``apply_async(connection=conn)`` or
``producer=producer``; celeriac's producer publishes either way).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar

from ..exceptions import OperationalError
from ..utils.urls import safe_url

if TYPE_CHECKING:
    from .base import Celeriac


class _Handle:
    """What Celery's pooled resources do that a handle needs: a block, and a release that
    gives nothing back (the broker's connections are the app's)."""

    def release(self) -> None:
        """Nothing to give back."""

    close = release

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class Connection(_Handle):
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


class PooledProducer(_Handle):
    """Celery's producer, as ``app.producer_pool`` and ``app.producer_or_acquire()`` give it:
    a handle to pass as ``apply_async(producer=...)``."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def publish(self, *args: Any, **kwargs: Any) -> None:
        """Not offered: celeriac writes its own task messages."""
        raise NotImplementedError(
            "celeriac writes its task messages itself: send them with task.apply_async(...) "
            "or app.send_task(name, args, kwargs); to publish raw messages, use your broker's "
            "own client"
        )


R = TypeVar("R", Connection, PooledProducer)


class ResourcePool(Generic[R]):
    """``app.pool`` (connections) and ``app.producer_pool`` (producers): ``acquire`` gives a
    handle, as from a pool that never runs dry."""

    limit: int | None = None

    def __init__(self, make: Callable[[], R]) -> None:
        self._make: Callable[[], R] = make

    def acquire(self, block: bool = False, timeout: float | None = None) -> R:
        return self._make()

    def release(self, resource: R) -> None:
        resource.release()

    def force_close_all(self) -> None:
        """Nothing to close: the broker's connections are the app's."""


@contextmanager
def producer_or_acquire(
    app: Celeriac, producer: PooledProducer | None = None
) -> Iterator[PooledProducer]:
    """``producer``, or one from the app's producer pool for the block."""
    yield producer if producer is not None else PooledProducer(Connection(app))


@contextmanager
def connection_or_acquire(
    app: Celeriac, connection: Connection | None = None, **_: Any
) -> Iterator[Connection]:
    """``connection``, or one from the app's pool for the block."""
    yield connection if connection is not None else Connection(app)

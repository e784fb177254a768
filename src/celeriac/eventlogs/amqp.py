"""An event log in a RabbitMQ stream queue (``celeriac.events``, on the broker's vhost).

A stream keeps its messages after they are read, and each reader starts at an offset of its
own: an append-only log that many readers follow. RabbitMQ applies the retention itself, by
age (``x-max-age``) and by size (``x-max-length-bytes``, ``max_events`` times
``event_size`` bytes, 1 KiB by default), as it writes; :meth:`AMQPEventLog.trim` has
nothing to do. The retention is fixed when the stream is first declared.

pika's blocking connections are used: one per appending thread, one per reader. Closing the
log closes every appending thread's connection.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from ..connections.amqp import connection_parameters, describe, pika
from ..exceptions import OperationalError
from ..utils.urls import safe_url
from .base import (
    DEFAULT_MAX_AGE,
    DEFAULT_MAX_EVENTS,
    LATEST,
    OLDEST,
    Entry,
    EventReader,
    log_name,
)

DEFAULT_EVENT_SIZE = 1024


class _HandledStreamErrors(logging.Filter):
    """Two refusals of a stream that this module handles, which pika logs as errors:
    closing a reader cancels its consumer and pika rejects what reached it meanwhile,
    which a stream does not take (RabbitMQ closes the connection, which was closing
    anyway); and a stream just created refuses readers until its replica has started
    (the reader tries again)."""

    HANDLED = ("not supported by stream queues", "does not have a replica")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(text in message for text in self.HANDLED)


for _name in ("pika.adapters.blocking_connection", "pika.channel"):
    logging.getLogger(_name).addFilter(_HandledStreamErrors())


class AMQPEventLog:
    """Events in a RabbitMQ stream queue."""

    def __init__(self, url: str, options: dict[str, Any] | None = None) -> None:
        options = dict(options or {})
        self.url = url
        self.safe_url = safe_url(url)
        name = log_name(options)
        self.queue = str(options.pop("queue", f"celeriac.{name}"))
        max_age = float(options.pop("max_age", DEFAULT_MAX_AGE))
        max_events = int(options.pop("max_events", DEFAULT_MAX_EVENTS))
        size = int(options.pop("event_size", DEFAULT_EVENT_SIZE))
        self.arguments = {
            "x-queue-type": "stream",
            "x-max-age": f"{max(int(max_age), 1)}s",
            "x-max-length-bytes": max_events * size,
        }
        self._params = connection_parameters(url, options)
        self._local = threading.local()
        self._lock = threading.Lock()
        # (pid, thread, connection) of every thread that appends
        self._publishers: list[tuple[int, threading.Thread, Any]] = []

    # -- connections ----------------------------------------------------------------------

    def connect(self, then: Callable[[Any], None] | None = None) -> tuple[Any, Any]:
        """A new (connection, channel) with the stream declared, and ``then(channel)``
        done (a reader's consume). While another connection creates the stream, RabbitMQ
        may close a declaration's connection (541 INTERNAL_ERROR) and refuses readers until
        the stream's replica has started (406 ... does not have a replica): both are tried
        again."""
        for attempt in range(5):
            try:
                return self._connect(then=then)
            except _Racing:
                time.sleep(0.1 * (attempt + 1))
        return self._connect(racing_is_fatal=True, then=then)

    def _connect(
        self, racing_is_fatal: bool = False, then: Callable[[Any], None] | None = None
    ) -> tuple[Any, Any]:
        try:
            conn = pika.BlockingConnection(self._params)
        except Exception as exc:
            raise OperationalError(f"{self.safe_url}: cannot connect: {describe(exc)}") from exc
        try:
            channel = conn.channel()
            try:
                channel.queue_declare(self.queue, durable=True, arguments=self.arguments)
            except pika.exceptions.ChannelClosedByBroker as exc:
                if exc.reply_code != 406:  # 406: declared before with other retention
                    raise
                channel = conn.channel()
                channel.queue_declare(self.queue, passive=True)
            if then is not None:
                then(channel)
        except Exception as exc:
            _close(conn)
            if not racing_is_fatal:
                raise _Racing from exc
            raise OperationalError(f"{self.safe_url}: {describe(exc)}") from exc
        return conn, channel

    def _publisher(self) -> Any:
        held = getattr(self._local, "held", None)
        if held is not None and held[0] == os.getpid() and held[1].is_open:
            return held[2]
        conn, channel = self.connect()
        channel.confirm_delivery()
        self._local.held = (os.getpid(), conn, channel)
        pid = os.getpid()
        with self._lock:  # a thread that ended left its connection: closed here
            gone = [p for p in self._publishers if p[0] == pid and not p[1].is_alive()]
            self._publishers = [p for p in self._publishers if p not in gone]
            self._publishers.append((pid, threading.current_thread(), conn))
        for _, _, old in gone:
            _close(old)
        return channel

    # -- the protocol -------------------------------------------------------------------------

    def append(self, events: Sequence[bytes]) -> None:
        """Publish ``events`` with confirms. A stream just created may close the connection
        of the first publishes (541) while its replicas start: they are sent again on a new
        connection (an event may so be kept twice; readers take events at least once)."""
        props = pika.BasicProperties(delivery_mode=2)
        for attempt in range(4):
            try:
                channel = self._publisher()
                for event in events:
                    channel.basic_publish("", self.queue, event, props)
                return
            except OperationalError:
                raise
            except Exception as exc:
                self._drop_publisher()
                if attempt == 3:
                    raise OperationalError(f"{self.safe_url}: {describe(exc)}") from exc
                time.sleep(0.1 * (attempt + 1))

    def reader(self, start: str = LATEST) -> EventReader:
        return _StreamReader(self, start)

    def trim(self, max_age: float | None, max_events: int | None) -> None:
        """Nothing to do: RabbitMQ applies the stream's retention as it writes."""

    def close(self) -> None:
        """Close the connections of every thread that appended (in this process)."""
        with self._lock:
            held, self._publishers = self._publishers, []
        for pid, _, conn in held:
            if pid == os.getpid():
                _close(conn)

    def _drop_publisher(self) -> None:
        held = getattr(self._local, "held", None)
        self._local.held = None
        if held is not None and held[0] == os.getpid():
            with self._lock:
                self._publishers = [p for p in self._publishers if p[2] is not held[1]]
            _close(held[1])


class _Racing(Exception):
    """The stream was being created by another connection."""


class _StreamReader:
    """A consumer of the stream from an offset, kept open between reads."""

    def __init__(self, log: AMQPEventLog, start: str) -> None:
        self._log = log
        self._start = start
        self.cursor: str | None = None if start in (LATEST, OLDEST) else start
        self._conn: Any = None
        self._channel: Any = None
        self._got: list[tuple[int, int, bytes]] = []  # (offset, delivery tag, body)

    def _offset(self) -> Any:
        if self.cursor is not None:
            return int(self.cursor) + 1
        return "first" if self._start == OLDEST else "next"

    def _open(self, limit: int) -> None:
        def consume(channel: Any) -> None:
            channel.basic_qos(prefetch_count=max(limit, 1))
            channel.basic_consume(
                self._log.queue,
                self._on_message,
                auto_ack=False,
                arguments={"x-stream-offset": self._offset()},
            )

        self._conn, self._channel = self._log.connect(then=consume)

    def _on_message(self, _ch: Any, method: Any, props: Any, body: bytes) -> None:
        offset = int((props.headers or {}).get("x-stream-offset", -1))
        self._got.append((offset, method.delivery_tag, body))

    def read(self, limit: int = 1000, timeout: float = 0.0) -> list[Entry]:
        if self._conn is None or not self._conn.is_open:
            self._got.clear()
            self._open(limit)
        deadline = time.monotonic() + timeout
        try:
            while True:
                self._conn.process_data_events(time_limit=0)
                if self._got or time.monotonic() >= deadline:
                    break
                self._conn.process_data_events(time_limit=min(deadline - time.monotonic(), 0.2))
        except Exception as exc:
            self.close()
            raise OperationalError(f"{self._log.safe_url}: {describe(exc)}") from exc
        taken, self._got = self._got[:limit], self._got[limit:]
        if taken:
            self._channel.basic_ack(taken[-1][1], multiple=True)
        after = int(self.cursor) if self.cursor is not None else -1
        entries = [(str(o), body) for o, _, body in taken if o > after]
        if entries:
            self.cursor = entries[-1][0]
        return entries

    def close(self) -> None:
        conn, self._conn, self._channel = self._conn, None, None
        if conn is not None:
            try:  # what reached pika is taken first: less for it to reject when cancelling
                conn.process_data_events(time_limit=0)
            except Exception:
                pass
            _close(conn)


def _close(conn: Any) -> None:
    try:
        conn.close()
    except Exception:
        pass

"""The lease keeper: a small process that renews the leases of the messages a worker holds,
for the pools that run tasks in the worker's own process (threads, asyncio, solo).

A task that holds the GIL (a long call into C code that never lets go of it: a large regular
expression, a C extension's loop) stops every other thread of its process, the heartbeat
included. Held past the lease, its message would be delivered again and the task run twice.
The keeper is a forked child with its own interpreter and broker connection. The worker tells
it over a pipe which deliveries it holds (each fetch's as they arrive, and the whole set with
every heartbeat), and the keeper renews them every heartbeat interval whether or not the
worker's threads get to run. It dies with the worker.

Renewing a delivery that was settled meanwhile does nothing (every broker checks the lease),
so the keeper's view may lag behind the worker's. Brokers whose leases live in the process
that fetched them (RabbitMQ) need no keeper: a starved process there starves its lease clock
too (see :mod:`celeriac.brokers.amqp`).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import multiprocessing
import os
import select
import signal
import threading
import time
from collections.abc import Sequence
from typing import Any

from ..brokers.base import Broker, Delivery
from ..exceptions import OperationalError
from .pools.processes import PIPE_SIZE, die_with_parent, read_frames, send_frame

logger = logging.getLogger("celeriac.worker")

ADD, HOLD = "add", "hold"


def _key(d: Delivery) -> tuple[str, Any]:
    return d.queue, d.tag


def _bare(deliveries: Sequence[Delivery]) -> list[Delivery]:
    """What renewing needs of each delivery (not its body)."""
    return [Delivery(b"", d.queue, d.priority, d.tag) for d in deliveries]


class LeaseKeeper:
    """The worker's side of its lease keeper."""

    def __init__(self, broker: Broker, interval: float) -> None:
        self.broker = broker
        self.interval = interval
        self._fd: int | None = None
        self._process: Any = None
        self._lock = threading.Lock()  # the consumer and the heartbeat both write

    def start(self) -> None:
        """Fork the keeper (before the worker starts its other threads)."""
        reader, writer = os.pipe()
        with contextlib.suppress(OSError, AttributeError):  # room for a long slow renewal
            fcntl.fcntl(writer, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        context = multiprocessing.get_context("fork")
        self._process = context.Process(
            target=_keep,
            args=(self.broker, reader, writer, self.interval, os.getpid()),
            name="celeriac-lease-keeper",
            daemon=True,
        )
        self._process.start()
        os.close(reader)
        self._fd = writer

    def add(self, deliveries: Sequence[Delivery]) -> None:
        """Deliveries just fetched: renew them too."""
        if deliveries:
            self._send((ADD, _bare(deliveries)))

    def hold(self, deliveries: Sequence[Delivery]) -> None:
        """Every delivery the worker holds now (the others are no longer to be renewed)."""
        self._send((HOLD, _bare(deliveries)))

    def _send(self, item: Any) -> None:
        with self._lock:
            fd = self._fd
            if fd is None:
                return
            try:
                send_frame(fd, item)
            except OSError as exc:  # it died: the worker's own heartbeat still renews
                logger.error("the lease keeper is gone (%s); the heartbeat renews alone", exc)
                self._fd = None

    def stop(self) -> None:
        with self._lock:
            fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # the keeper reads end of file and exits
        if self._process is not None:
            self._process.join(5)
            if self._process.is_alive():
                self._process.kill()
                self._process.join(1)


def _keep(broker: Broker, reader: int, writer: int, interval: float, parent: int) -> None:
    """The keeper's life: take in what the worker holds, renew it every ``interval``, until
    the pipe closes (the worker stopped, or died)."""
    die_with_parent()
    os.close(writer)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the worker decides when it ends
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if os.getppid() != parent:
        os._exit(0)
    os.set_blocking(reader, False)
    poller = select.poll()
    poller.register(reader, select.POLLIN)
    held: dict[tuple[str, Any], Delivery] = {}
    unread = bytearray()
    renew_at = time.monotonic() + interval
    while True:
        timeout_ms = max(0.0, renew_at - time.monotonic()) * 1000
        events = poller.poll(timeout_ms)
        if events:
            items = read_frames(reader, unread)
            if not items and any(flag & (select.POLLHUP | select.POLLERR) for _, flag in events):
                break  # the worker closed its end
            for kind, deliveries in items:
                if kind == HOLD:
                    held = {_key(d): d for d in deliveries}
                else:
                    held.update((_key(d), d) for d in deliveries)
        if time.monotonic() >= renew_at:
            renew_at = time.monotonic() + interval
            if held:
                with contextlib.suppress(OperationalError):  # the heartbeat reports outages
                    broker.extend(list(held.values()))
    with contextlib.suppress(Exception):
        broker.close()
    os._exit(0)

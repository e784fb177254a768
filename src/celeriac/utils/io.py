"""Waiting on sockets and pipes, shared by the brokers and backends."""

from __future__ import annotations

import os
import select
import socket
from collections.abc import Sequence
from typing import Any


def wait_readable(socks: Sequence[Any], timeout: float) -> set[int]:
    """The file descriptors among ``socks`` (sockets, or ints) with something to read (or
    closed) within ``timeout`` seconds. TLS sockets with bytes already decrypted count at
    once. ``poll`` where there is one: ``select`` fails on descriptors above 1023."""
    fds = [s if isinstance(s, int) else s.fileno() for s in socks]
    tls = [s for s in socks if not isinstance(s, int) and hasattr(s, "pending")]
    pending = {s.fileno() for s in tls if s.pending()}
    if pending:
        return pending
    if hasattr(select, "poll"):
        poller = select.poll()
        for fd in fds:
            poller.register(fd, select.POLLIN)
        return {fd for fd, _ in poller.poll(max(timeout, 0.0) * 1000.0)}
    readable, _, _ = select.select(fds, [], [], max(timeout, 0.0))  # pragma: no cover
    return set(readable)


def fd_readable(fd: int) -> bool:
    """Whether ``fd`` has something to read right now (or is closed)."""
    try:
        return bool(wait_readable([fd], 0))
    except (OSError, ValueError):
        return True


class ReadableCheck:
    """Whether one descriptor has something to read (or is closed), asked again and again:
    one poll object for its life instead of a new one per question."""

    def __init__(self, fd: int) -> None:
        self._poll = select.poll()
        self._poll.register(fd, select.POLLIN)

    def __call__(self, timeout: float = 0.0) -> bool:
        try:
            return bool(self._poll.poll(max(timeout, 0.0) * 1000.0))
        except (OSError, ValueError):
            return True


class Waker:
    """A flag and a socket pair of this process, for a broker's ``wakeup``: :meth:`wake` is
    safe in a signal handler (a lock is not: the handler may run in the thread holding it)
    and interrupts a wait on :meth:`reader` in another thread."""

    def __init__(self) -> None:
        self.woken = False
        self._pid = 0
        self._reader: socket.socket | None = None
        self._writer: socket.socket | None = None

    def reader(self) -> socket.socket:
        """This process's reading end (a forked child makes its own pair)."""
        pid = os.getpid()
        if self._pid != pid or self._reader is None:
            self.close()
            self._reader, self._writer = socket.socketpair()
            self._reader.setblocking(False)
            self._writer.setblocking(False)
            self._pid = pid
        return self._reader

    def wake(self) -> None:
        """Set the flag and write one byte (nothing else: signal handlers call this)."""
        self.woken = True
        writer = self._writer
        if self._pid == os.getpid() and writer is not None:
            try:
                writer.send(b"\0")
            except OSError:
                pass  # full (already woken) or closed

    def consume(self) -> bool:
        """Whether a wakeup came (clearing the flag)."""
        woken, self.woken = self.woken, False
        return woken

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a wakeup; whether one came (the flag stays
        set until :meth:`consume`)."""
        reader = self.reader()
        if not self.woken and wait_readable([reader], timeout):
            self.drain()
        return self.woken

    def drain(self) -> None:
        """Read the bytes written so far. A byte read means a wakeup came, whatever the flag
        says: a signal handler that ran inside :meth:`consume` (between its read of the flag
        and its write) leaves only the byte."""
        reader = self._reader
        try:
            while reader is not None and reader.recv(4096):
                self.woken = True
        except (BlockingIOError, InterruptedError):
            pass

    def close(self) -> None:
        """Close the pair (a child closes only its own copies of its parent's)."""
        for sock in (self._reader, self._writer):
            if sock is not None:
                sock.close()
        self._reader = self._writer = None

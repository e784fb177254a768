"""Waiting on sockets and pipes, shared by the brokers and backends."""

from __future__ import annotations

import contextlib
import os
import secrets
import select
import socket
import time
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

    def wait(self, timeout: float, bell: Doorbell | None = None) -> bool:
        """Wait up to ``timeout`` seconds for a wakeup (the flag stays set until
        :meth:`consume`), or for ``bell`` to ring; whether either came."""
        reader = self.reader()
        if self.woken:
            return True
        own = bell.socket() if bell is not None else None
        ready = wait_readable([reader] if own is None else [reader, own], timeout)
        if reader.fileno() in ready:
            self.drain()
        if own is not None and own.fileno() in ready:
            assert bell is not None
            bell.drain()
            return True
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


class Doorbell:
    """Wakes the waiting processes of one machine at once, for a store they otherwise poll
    (an SQLite file). Each waiting process binds a unix datagram socket in ``directory``
    (:meth:`socket`, which :meth:`Waker.wait` also waits on); :meth:`ring` sends a byte to
    every one, never blocking, and removes those whose process is gone. Without unix
    sockets it does nothing, and the waiters poll as before."""

    #: seconds a listing of the directory is used before it is read again
    REFRESH = 0.5

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self._pid = 0
        self._sock: socket.socket | None = None
        self._path = ""
        self._sender: socket.socket | None = None
        self._sender_pid = 0
        self._names: list[str] = []
        self._listed = float("-inf")

    def socket(self) -> socket.socket | None:
        """This process's bell, bound on first use (a forked child binds its own)."""
        pid = os.getpid()
        if self._pid != pid:
            self._pid, self._sock = pid, None
            if hasattr(socket, "AF_UNIX"):
                path = os.path.join(self.directory, f"{pid}-{secrets.token_hex(4)}")
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                try:
                    os.makedirs(self.directory, mode=0o700, exist_ok=True)
                    if hasattr(os, "getuid") and os.stat(self.directory).st_uid != os.getuid():
                        raise PermissionError(f"{self.directory} belongs to another user")
                    sock.bind(path)
                except OSError:  # a path too long, a directory not ours: poll instead
                    sock.close()
                else:
                    sock.setblocking(False)
                    self._sock, self._path = sock, path
                    self._listed = float("-inf")
        return self._sock

    def ring(self) -> None:
        """Wake every process waiting on this bell (but this one)."""
        now = time.monotonic()
        if now - self._listed > self.REFRESH:
            try:
                self._names = os.listdir(self.directory)
            except OSError:
                self._names = []
            self._listed = now
        if not self._names:
            return
        pid = os.getpid()
        if self._sender is None or self._sender_pid != pid:
            self._sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._sender.setblocking(False)
            self._sender_pid = pid
        for name in list(self._names):
            path = os.path.join(self.directory, name)
            if path == self._path:
                continue
            try:
                self._sender.sendto(b"\0", path)
            except (ConnectionRefusedError, FileNotFoundError) as exc:  # its process is gone
                if isinstance(exc, ConnectionRefusedError):
                    with contextlib.suppress(OSError):
                        os.unlink(path)
                with contextlib.suppress(ValueError):
                    self._names.remove(name)
            except OSError:
                pass  # full: it is rung already

    def drain(self) -> None:
        """Read the rings that came."""
        sock = self._sock
        try:
            while sock is not None and sock.recv(64):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    def close(self) -> None:
        """Stop listening: this process's socket is closed and removed, and its sender
        closed."""
        if self._sender is not None and self._sender_pid == os.getpid():
            self._sender.close()
        self._sender = None
        if self._sock is not None and self._pid == os.getpid():
            self._sock.close()
            with contextlib.suppress(OSError):
                os.unlink(self._path)
            with contextlib.suppress(OSError):  # the last one out removes the directory
                os.rmdir(self.directory)
        self._sock = None
        self._pid = 0

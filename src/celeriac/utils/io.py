"""Waiting on sockets and pipes, shared by the brokers and backends."""

from __future__ import annotations

import select
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

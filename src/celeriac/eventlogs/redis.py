"""An event log in a Redis stream (``<prefix>events``, the broker's own database by default).

Appends are one pipelined round trip of ``XADD``; readers wait in ``XREAD BLOCK`` on a
connection of their own.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from ..connections.redis import RedisClient, ResponseError
from ..exceptions import OperationalError
from .base import LATEST, OLDEST, Entry, EventReader, log_name

_MAX_BLOCK_MS = 5000  # one XREAD waits at most this long (the caller's loop asks again)


class RedisEventLog:
    """Events in a Redis stream, bounded by count at each append and by age at :meth:`trim`."""

    def __init__(self, url: str, options: dict[str, Any] | None = None) -> None:
        options = dict(options or {})
        self.url = url
        name = log_name(options)
        options.pop("max_events", None)  # bounds are applied by trim()
        options.pop("max_age", None)
        self._client = RedisClient(url, options)
        self.key = f"{self._client.prefix}{name}"

    def append(self, events: Sequence[bytes]) -> None:
        """One pipelined ``XADD`` per entry. The bound is applied by :meth:`trim` (writers
        call it every few seconds), which knows how many events an entry holds."""
        self._client.execute(*[("XADD", self.key, "*", "e", e) for e in events])

    def reader(self, start: str = LATEST) -> EventReader:
        return _StreamReader(self, start)

    def newest(self) -> str:
        """The id of the newest event ("0-0" when there is none)."""
        found = self._client.command("XREVRANGE", self.key, "+", "-", "COUNT", 1)
        return _text(found[0][0]) if found else "0-0"

    def xread(self, after: str, limit: int, timeout: float) -> list[Entry]:
        """The events after ``after``, waiting up to ``timeout`` for one."""
        args: list[Any] = ["XREAD", "COUNT", limit]
        if timeout > 0:
            args += ["BLOCK", max(1, min(int(timeout * 1000), _MAX_BLOCK_MS))]
        args += ["STREAMS", self.key, after]

        def attempt() -> Any:
            with self._client.wait_connection() as conn:
                conn.send_command(*args)
                return conn.read_response()

        try:
            reply = self._client.call(attempt)
        except ResponseError as exc:  # pragma: no cover - a server without streams
            raise OperationalError(f"{self._client.safe_url}: {exc}") from exc
        if not reply:
            return []
        return [(_text(i), _field(fields)) for i, fields in reply[0][1]]

    def trim(self, max_age: float | None, max_events: int | None) -> None:
        commands: list[tuple[Any, ...]] = []
        if max_events is not None:
            commands.append(("XTRIM", self.key, "MAXLEN", "~", max_events))
        if max_age is not None:
            oldest_ms = int((time.time() - max_age) * 1000)
            commands.append(("XTRIM", self.key, "MINID", "~", f"{oldest_ms}-0"))
        if commands:
            self._client.execute(*commands)

    def close(self) -> None:
        self._client.close()


class _StreamReader:
    def __init__(self, log: RedisEventLog, start: str) -> None:
        self._log = log
        self._after: str | None = "0-0" if start == OLDEST else None if start == LATEST else start
        self.cursor: str | None = None if start in (LATEST, OLDEST) else start

    def read(self, limit: int = 1000, timeout: float = 0.0) -> list[Entry]:
        if self._after is None:
            self._after = self._log.newest()
        deadline = time.monotonic() + timeout
        while True:
            entries = self._log.xread(self._after, limit, max(deadline - time.monotonic(), 0))
            if entries:
                self._after = self.cursor = entries[-1][0]
                return entries
            if time.monotonic() >= deadline:
                return []

    def close(self) -> None:
        pass


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _field(fields: Sequence[Any]) -> bytes:
    value = fields[1] if len(fields) > 1 else b""
    return value if isinstance(value, bytes) else str(value).encode()

"""An in-process result backend: ``memory://`` or ``memory://name``.

Backends created with the same URL in one process share their data. ``wait_for`` sleeps on a
condition variable that every ``store`` notifies, so it never polls.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from ..connections.memory import PerURL
from ..exceptions import OperationalError
from ..states import READY_STATES
from .base import CeleryMethods


def _expiry(expires_in: float | None) -> float | None:
    return None if expires_in is None else time.time() + expires_in


def _alive(expires_at: float | None, now: float) -> bool:
    return expires_at is None or expires_at > now


class _Store:
    def __init__(self) -> None:
        self.cond = threading.Condition(threading.Lock())
        self.results: dict[str, tuple[str, bytes, float | None]] = {}
        self.values: dict[str, tuple[bytes | int, float | None]] = {}
        self.sets: dict[str, tuple[set[str], float | None]] = {}

    def result(self, task_id: str, now: float) -> tuple[str, bytes, float | None] | None:
        record = self.results.get(task_id)
        return record if record is not None and _alive(record[2], now) else None

    def value(self, key: str, now: float) -> bytes | int | None:
        record = self.values.get(key)
        return record[0] if record is not None and _alive(record[1], now) else None


_stores: PerURL[_Store] = PerURL(_Store)
_store_for = _stores.get
reset_stores = _stores.reset


class MemoryBackend(CeleryMethods):
    """A thread-safe in-process result backend; backends with the same URL share data."""

    def __init__(self, url: str = "memory://", options: dict[str, Any] | None = None) -> None:
        self.url = url
        self._store = _store_for(url)

    @classmethod
    def reset(cls, url: str | None = None) -> None:
        """Forget the data of ``url`` (every URL when None). For tests."""
        reset_stores(url)

    def store(self, task_id: str, state: str, payload: bytes, expires_in: float | None) -> None:
        """Record ``state`` and ``payload`` for ``task_id`` and wake its waiters."""
        store = self._store
        with store.cond:
            store.results[task_id] = (state, payload, _expiry(expires_in))
            store.cond.notify_all()

    def load(self, task_id: str) -> bytes | None:
        """The payload stored for ``task_id`` unless missing or expired."""
        store = self._store
        with store.cond:
            record = store.result(task_id, time.time())
            return None if record is None else record[1]

    def load_many(self, task_ids: Sequence[str]) -> dict[str, bytes]:
        """Payloads of those ``task_ids`` that have one."""
        store = self._store
        with store.cond:
            now = time.time()
            found = {tid: store.result(tid, now) for tid in task_ids}
            return {tid: rec[1] for tid, rec in found.items() if rec is not None}

    def wait_for(self, task_id: str, timeout: float | None) -> bytes | None:
        """Block until ``task_id`` is ready; its payload, or None after ``timeout`` seconds."""
        store = self._store
        found: list[bytes] = []

        def ready() -> bool:
            record = store.result(task_id, time.time())
            if record is not None and record[0] in READY_STATES:
                found.append(record[1])
                return True
            return False

        with store.cond:
            store.cond.wait_for(ready, timeout)
        return found[0] if found else None

    def forget(self, task_id: str) -> None:
        """Delete the result of ``task_id``."""
        with self._store.cond:
            self._store.results.pop(task_id, None)

    def cleanup(self) -> int:
        """Delete expired results and keys; returns how many."""
        store = self._store
        with store.cond:
            now = time.time()
            results = [k for k, r in store.results.items() if not _alive(r[2], now)]
            values = [k for k, v in store.values.items() if not _alive(v[1], now)]
            sets = [k for k, v in store.sets.items() if not _alive(v[1], now)]
            for k in results:
                del store.results[k]
            for k in values:
                del store.values[k]
            for k in sets:
                del store.sets[k]
            return len(results) + len(values) + len(sets)

    def incr(self, key: str, amount: int = 1, expires_in: float | None = None) -> int:
        """Add ``amount`` to counter ``key`` (missing or expired: 0) and return the sum.

        ``expires_in`` (re)sets the key's expiry; None keeps the one it has."""
        store = self._store
        with store.cond:
            now = time.time()
            record = store.values.get(key)
            current: bytes | int = 0
            expires_at = None
            if record is not None and _alive(record[1], now):
                current, expires_at = record
            try:
                total = int(current) + amount
            except ValueError:
                raise OperationalError(f"{self.url}: value of {key!r} is not an integer") from None
            if expires_in is not None:
                expires_at = now + expires_in
            store.values[key] = (total, expires_at)
            return total

    def add_to_set(self, key: str, member: str, expires_in: float | None = None) -> int:
        """Add ``member`` to the set ``key``; returns its number of distinct members."""
        store = self._store
        with store.cond:
            now = time.time()
            members, expires_at = store.sets.get(key, (set(), None))
            if not _alive(expires_at, now):
                members, expires_at = set(), None
            members.add(member)
            if expires_in is not None:
                expires_at = now + expires_in
            store.sets[key] = (members, expires_at)
            return len(members)

    def set_members(self, key: str) -> list[str]:
        """The members of the set ``key``."""
        with self._store.cond:
            members, expires_at = self._store.sets.get(key, (set(), None))
            return sorted(members) if _alive(expires_at, time.time()) else []

    def set_value(
        self, key: str, value: bytes, expires_in: float | None = None, only_if_absent: bool = False
    ) -> bool:
        """Set ``key``; with ``only_if_absent`` only when missing or expired."""
        store = self._store
        with store.cond:
            if only_if_absent and store.value(key, time.time()) is not None:
                return False
            store.values[key] = (value, _expiry(expires_in))
            return True

    def get_value(self, key: str) -> bytes | None:
        """The value of ``key`` (counters as ASCII digits) unless missing or expired."""
        with self._store.cond:
            value = self._store.value(key, time.time())
        return str(value).encode() if isinstance(value, int) else value

    def delete_value(self, key: str) -> None:
        """Delete ``key``."""
        with self._store.cond:
            self._store.values.pop(key, None)
            self._store.sets.pop(key, None)

    def close(self) -> None:
        """Nothing to release: the data lives as long as the process."""

"""The result backend contract. Every backend module implements :class:`ResultBackend`; the
shared suite in ``tests/contract`` checks each one.

A backend stores, per task id, the state and an opaque payload (the encoded result meta, see
:mod:`celeriac.result`), and a small key-value store with TTLs and atomic counters used for
chords, revocations, rate limits and locks. It never decodes payloads.

* ``wait_for`` blocks until the task reaches a ready state (SUCCESS, FAILURE, REVOKED) without
  busy polling where the technology allows it (SQLite polls a cheap change counter).
* All methods may be called from any thread; driver errors are raised as
  :class:`celeriac.exceptions.OperationalError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from ..brokers.base import load_class


@runtime_checkable
class ResultBackend(Protocol):
    url: str

    def store(self, task_id: str, state: str, payload: bytes, expires_in: float | None) -> None:
        """Record ``state`` and ``payload`` for ``task_id``, replacing what was there.

        ``expires_in`` seconds after this write the record may be deleted (None: never)."""

    def load(self, task_id: str) -> bytes | None:
        """The last payload stored for ``task_id``, or None."""

    def load_many(self, task_ids: Sequence[str]) -> dict[str, bytes]:
        """Payloads for those ids that have one, in one round trip where possible."""

    def wait_for(self, task_id: str, timeout: float | None) -> bytes | None:
        """Block until ``task_id`` is in a ready state and return its payload (None on timeout)."""

    def forget(self, task_id: str) -> None:
        """Delete what is stored for ``task_id``."""

    def cleanup(self) -> int:
        """Delete expired records and keys; returns how many. Workers call it now and then."""

    def incr(self, key: str, amount: int = 1, expires_in: float | None = None) -> int:
        """Atomically add ``amount`` to the counter ``key`` (created at 0) and return it."""

    def add_to_set(self, key: str, member: str, expires_in: float | None = None) -> int:
        """Atomically add ``member`` to the set ``key`` and return how many distinct members
        it holds. Adding a member again changes nothing, so a repeated step counts once
        (chord joins rely on this). ``expires_in`` (re)sets the set's expiry."""

    def set_members(self, key: str) -> list[str]:
        """The members of the set ``key`` (empty when missing or expired), in no order."""

    def set_value(
        self, key: str, value: bytes, expires_in: float | None = None, only_if_absent: bool = False
    ) -> bool:
        """Set ``key``; with ``only_if_absent``, only when it is missing or expired.
        Returns whether it was set."""

    def get_value(self, key: str) -> bytes | None:
        """The value of ``key`` unless missing or expired."""

    def delete_value(self, key: str) -> None:
        """Delete ``key`` (a value, counter or set)."""

    def close(self) -> None:
        """Release connections (the backend reconnects if used again)."""


#: URL scheme -> "module:Class".
BACKENDS: dict[str, str] = {
    "memory": "celeriac.backends.memory:MemoryBackend",
    "sqlite": "celeriac.backends.sqlite:SQLiteBackend",
    "redis": "celeriac.backends.redis:RedisBackend",
    "rediss": "celeriac.backends.redis:RedisBackend",
    "postgresql": "celeriac.backends.postgres:PostgresBackend",
    "postgres": "celeriac.backends.postgres:PostgresBackend",
}


def create_backend(url: str, options: dict[str, Any] | None = None) -> ResultBackend:
    """Create the result backend for ``url`` (Celery's ``db+``/``cache+`` prefixes work)."""
    for prefix in ("db+", "cache+"):
        url = url.removeprefix(prefix)
    cls = load_class(BACKENDS, url, "result backend")
    return cls(url, dict(options or {}))

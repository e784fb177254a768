"""A result backend in one SQLite file (same URLs as the SQLite broker; they may share a file).

``wait_for`` polls ``PRAGMA data_version``, a counter in shared memory that moves when another
connection commits, and re-reads the result row only when it has moved.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from ..connections.sqlite import SQLiteDatabase, poll_intervals
from ..states import READY_STATES
from .base import CeleryMethods

SCHEMA = """
CREATE TABLE IF NOT EXISTS celeriac_results (
    task_id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    payload BLOB NOT NULL,
    updated_at REAL NOT NULL,
    expires_at REAL
);
CREATE INDEX IF NOT EXISTS celeriac_results_expiry
    ON celeriac_results (expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS celeriac_kv (
    key TEXT PRIMARY KEY,
    value BLOB,
    expires_at REAL
);
CREATE INDEX IF NOT EXISTS celeriac_kv_expiry
    ON celeriac_kv (expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS celeriac_sets (
    key TEXT NOT NULL,
    member TEXT NOT NULL,
    expires_at REAL,
    PRIMARY KEY (key, member)
);
CREATE INDEX IF NOT EXISTS celeriac_sets_expiry
    ON celeriac_sets (expires_at) WHERE expires_at IS NOT NULL;
"""

_ALIVE = "(expires_at IS NULL OR expires_at > ?)"
_CHUNK = 500  # ids per query in load_many, well under SQLite's variable limit

_INCR = """
INSERT INTO celeriac_kv (key, value, expires_at) VALUES (?1, ?2, ?3)
ON CONFLICT (key) DO UPDATE SET
    value = CASE WHEN expires_at <= ?4 THEN ?2 ELSE CAST(value AS INTEGER) + ?2 END,
    expires_at = CASE
        WHEN ?3 IS NOT NULL THEN ?3
        WHEN expires_at <= ?4 THEN NULL
        ELSE expires_at
    END
RETURNING value
"""

_SET = """
INSERT INTO celeriac_kv (key, value, expires_at) VALUES (?1, ?2, ?3)
ON CONFLICT (key) DO UPDATE SET value = ?2, expires_at = ?3
"""


def _expiry(expires_in: float | None, now: float) -> float | None:
    return None if expires_in is None else now + expires_in


class SQLiteBackend(CeleryMethods):
    """Results and keys stored in a SQLite file shared by the processes of one machine."""

    def __init__(self, url: str = "sqlite://", options: dict[str, Any] | None = None) -> None:
        self.url = url
        self._db = SQLiteDatabase(url, SCHEMA, options)

    def store(self, task_id: str, state: str, payload: bytes, expires_in: float | None) -> None:
        """Record ``state`` and ``payload`` for ``task_id``, replacing what was there."""
        now = time.time()
        with self._db.errors():
            self._db.connection().execute(
                "INSERT INTO celeriac_results (task_id, state, payload, updated_at, expires_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (task_id) DO UPDATE SET state = "
                "excluded.state, payload = excluded.payload, updated_at = excluded.updated_at, "
                "expires_at = excluded.expires_at",
                (task_id, state, payload, now, _expiry(expires_in, now)),
            )

    def _read(self, task_id: str) -> tuple[str, bytes] | None:
        row = (
            self._db.connection()
            .execute(
                f"SELECT state, payload FROM celeriac_results WHERE task_id = ? AND {_ALIVE}",
                (task_id, time.time()),
            )
            .fetchone()
        )
        return None if row is None else (row[0], bytes(row[1]))

    def load(self, task_id: str) -> bytes | None:
        """The payload stored for ``task_id`` unless missing or expired."""
        with self._db.errors():
            record = self._read(task_id)
        return None if record is None else record[1]

    def load_many(self, task_ids: Sequence[str]) -> dict[str, bytes]:
        """Payloads of those ``task_ids`` that have one."""
        ids = list(dict.fromkeys(task_ids))
        found: dict[str, bytes] = {}
        now = time.time()
        with self._db.errors():
            conn = self._db.connection()
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(
                    f"SELECT task_id, payload FROM celeriac_results "
                    f"WHERE task_id IN ({marks}) AND {_ALIVE}",
                    (*chunk, now),
                )
                found.update((tid, bytes(payload)) for tid, payload in rows)
        return found

    def wait_for(self, task_id: str, timeout: float | None) -> bytes | None:
        """Block until ``task_id`` is ready; its payload, or None after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        db = self._db
        with db.errors():
            while True:
                version = db.data_version()
                record = self._read(task_id)
                if record is not None and record[0] in READY_STATES:
                    return record[1]
                for interval in poll_intervals():
                    if deadline is not None:
                        left = deadline - time.monotonic()
                        if left <= 0:
                            return None
                        interval = min(interval, left)
                    time.sleep(interval)
                    if db.data_version() != version:
                        break

    def forget(self, task_id: str) -> None:
        """Delete the result of ``task_id``."""
        with self._db.errors():
            self._db.connection().execute(
                "DELETE FROM celeriac_results WHERE task_id = ?", (task_id,)
            )

    def cleanup(self) -> int:
        """Delete expired results and keys; returns how many."""
        now = time.time()
        with self._db.errors(), self._db.transaction() as conn:
            results = conn.execute(
                "DELETE FROM celeriac_results WHERE expires_at <= ?", (now,)
            ).rowcount
            keys = conn.execute("DELETE FROM celeriac_kv WHERE expires_at <= ?", (now,)).rowcount
            sets = conn.execute("DELETE FROM celeriac_sets WHERE expires_at <= ?", (now,)).rowcount
        return results + keys + sets

    def incr(self, key: str, amount: int = 1, expires_in: float | None = None) -> int:
        """Add ``amount`` to counter ``key`` (missing or expired: 0) and return the sum.

        ``expires_in`` (re)sets the key's expiry; None keeps the one it has."""
        now = time.time()
        with self._db.errors():
            row = (
                self._db.connection()
                .execute(_INCR, (key, int(amount), _expiry(expires_in, now), now))
                .fetchone()
            )
        return int(row[0])

    def add_to_set(self, key: str, member: str, expires_in: float | None = None) -> int:
        """Add ``member`` to the set ``key``; returns its number of distinct members."""
        now = time.time()
        with self._db.errors(), self._db.transaction() as conn:
            conn.execute("DELETE FROM celeriac_sets WHERE key = ? AND expires_at <= ?", (key, now))
            conn.execute(
                "INSERT INTO celeriac_sets (key, member, expires_at) SELECT ?1, ?2, "
                "(SELECT expires_at FROM celeriac_sets WHERE key = ?1 LIMIT 1) "
                "WHERE true ON CONFLICT DO NOTHING",
                (key, member),
            )
            if expires_in is not None:
                conn.execute(
                    "UPDATE celeriac_sets SET expires_at = ? WHERE key = ?", (now + expires_in, key)
                )
            row = conn.execute(
                "SELECT count(*) FROM celeriac_sets WHERE key = ?", (key,)
            ).fetchone()
        return int(row[0])

    def set_members(self, key: str) -> list[str]:
        """The members of the set ``key``."""
        with self._db.errors():
            rows = self._db.connection().execute(
                f"SELECT member FROM celeriac_sets WHERE key = ? AND {_ALIVE}", (key, time.time())
            )
        return [str(r[0]) for r in rows]

    def set_value(
        self, key: str, value: bytes, expires_in: float | None = None, only_if_absent: bool = False
    ) -> bool:
        """Set ``key``; with ``only_if_absent`` only when missing or expired."""
        now = time.time()
        sql, params = _SET, [key, value, _expiry(expires_in, now)]
        if only_if_absent:
            sql += " WHERE celeriac_kv.expires_at <= ?4"
            params.append(now)
        with self._db.errors():
            cur = self._db.connection().execute(sql, params)
        return cur.rowcount > 0

    def get_value(self, key: str) -> bytes | None:
        """The value of ``key`` (counters as ASCII digits) unless missing or expired."""
        with self._db.errors():
            row = (
                self._db.connection()
                .execute(
                    f"SELECT value FROM celeriac_kv WHERE key = ? AND {_ALIVE}", (key, time.time())
                )
                .fetchone()
            )
        if row is None or row[0] is None:
            return None
        value = row[0]
        return str(value).encode() if isinstance(value, int | float) else bytes(value)

    def delete_value(self, key: str) -> None:
        """Delete ``key``."""
        with self._db.errors(), self._db.transaction() as conn:
            conn.execute("DELETE FROM celeriac_kv WHERE key = ?", (key,))
            conn.execute("DELETE FROM celeriac_sets WHERE key = ?", (key,))

    def close(self) -> None:
        """Close this process's connections (they reopen when the backend is used again)."""
        self._db.close()

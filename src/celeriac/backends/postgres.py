"""A result backend in PostgreSQL tables (same URLs as the PostgreSQL broker; they may share a
database and schema).

Storing a ready state NOTIFYs a channel named after the schema and the task id. ``wait_for``
LISTENs on that channel first, then reads the row, then waits for a notification, so it never
polls and never misses the write it is waiting for.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from ..connections.postgres import Connection, PostgresDatabase, channel_name, psycopg, sql
from ..states import READY_STATES
from .base import CeleryMethods

DDL = [
    """CREATE TABLE IF NOT EXISTS celeriac_results (
        task_id text PRIMARY KEY,
        state text NOT NULL,
        payload bytea NOT NULL,
        updated_at double precision NOT NULL,
        expires_at double precision
    )""",
    "CREATE INDEX IF NOT EXISTS celeriac_results_expiry "
    "ON celeriac_results (expires_at) WHERE expires_at IS NOT NULL",
    """CREATE TABLE IF NOT EXISTS celeriac_kv (
        key text PRIMARY KEY,
        value bytea NOT NULL,
        expires_at double precision
    )""",
    "CREATE INDEX IF NOT EXISTS celeriac_kv_expiry "
    "ON celeriac_kv (expires_at) WHERE expires_at IS NOT NULL",
    """CREATE TABLE IF NOT EXISTS celeriac_sets (
        key text NOT NULL,
        member text NOT NULL,
        expires_at double precision,
        PRIMARY KEY (key, member)
    )""",
    "CREATE INDEX IF NOT EXISTS celeriac_sets_expiry "
    "ON celeriac_sets (expires_at) WHERE expires_at IS NOT NULL",
]
RELATIONS = [
    "celeriac_results",
    "celeriac_results_expiry",
    "celeriac_kv",
    "celeriac_kv_expiry",
    "celeriac_sets",
    "celeriac_sets_expiry",
]

_ALIVE = "(expires_at IS NULL OR expires_at > %(now)s)"

_STORE = """
INSERT INTO celeriac_results (task_id, state, payload, updated_at, expires_at)
VALUES (%(task_id)s, %(state)s, %(payload)b, %(now)s, %(expires_at)s::float8)
ON CONFLICT (task_id) DO UPDATE SET
    state = excluded.state,
    payload = excluded.payload,
    updated_at = excluded.updated_at,
    expires_at = excluded.expires_at
"""

_STORE_AND_NOTIFY = f"""
WITH stored AS ({_STORE} RETURNING 1)
SELECT pg_notify(%(channel)s, '') FROM stored
"""

_READ = f"""
SELECT state, payload FROM celeriac_results WHERE task_id = %(task_id)s AND {_ALIVE}
"""

_CLEANUP = """
WITH results AS (DELETE FROM celeriac_results WHERE expires_at <= %(now)s RETURNING 1),
     keys AS (DELETE FROM celeriac_kv WHERE expires_at <= %(now)s RETURNING 1),
     sets AS (DELETE FROM celeriac_sets WHERE expires_at <= %(now)s RETURNING 1)
SELECT (SELECT count(*) FROM results) + (SELECT count(*) FROM keys)
    + (SELECT count(*) FROM sets)
"""

# Adds to one set are serialised by a transaction-scoped advisory lock on the key, so the
# count that follows (a new snapshot under READ COMMITTED) sees every earlier member.
_SET_ADD = [
    "SELECT pg_advisory_xact_lock(hashtextextended(%(key)s, 0))",
    "DELETE FROM celeriac_sets WHERE key = %(key)s AND expires_at <= %(now)s",
    # a new member takes the set's expiry
    "INSERT INTO celeriac_sets (key, member, expires_at) SELECT %(key)s, %(member)s, "
    "(SELECT expires_at FROM celeriac_sets WHERE key = %(key)s LIMIT 1) ON CONFLICT DO NOTHING",
    "UPDATE celeriac_sets SET expires_at = %(expires_at)s::float8 "
    "WHERE key = %(key)s AND %(expires_at)s::float8 IS NOT NULL",
    "SELECT count(*) FROM celeriac_sets WHERE key = %(key)s",
]

# Counters are stored as ASCII digits, so get_value reads them like any value. An expired
# counter starts again from 0, without an expiry unless this call gives one.
_INCR = """
INSERT INTO celeriac_kv AS kv (key, value, expires_at)
VALUES (%(key)s, convert_to(%(amount)s::bigint::text, 'SQL_ASCII'), %(expires_at)s::float8)
ON CONFLICT (key) DO UPDATE SET
    value = CASE
        WHEN kv.expires_at <= %(now)s THEN excluded.value
        ELSE convert_to(
            (encode(kv.value, 'escape')::bigint + %(amount)s::bigint)::text, 'SQL_ASCII')
    END,
    expires_at = CASE
        WHEN %(expires_at)s::float8 IS NOT NULL THEN %(expires_at)s::float8
        WHEN kv.expires_at <= %(now)s THEN NULL
        ELSE kv.expires_at
    END
RETURNING encode(value, 'escape')::bigint
"""

_SET = """
INSERT INTO celeriac_kv AS kv (key, value, expires_at)
VALUES (%(key)s, %(value)b, %(expires_at)s::float8)
ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at
"""


def _expiry(expires_in: float | None, now: float) -> float | None:
    return None if expires_in is None else now + expires_in


class PostgresBackend(CeleryMethods):
    """Results and keys stored in PostgreSQL tables, shared by every process and host."""

    def __init__(self, url: str, options: dict[str, Any] | None = None) -> None:
        self.url = url
        self._db = PostgresDatabase(url, DDL, RELATIONS, options)

    def _channel(self, task_id: str) -> str:
        return channel_name("r", self._db.schema(), task_id)

    def store(self, task_id: str, state: str, payload: bytes, expires_in: float | None) -> None:
        """Record ``state`` and ``payload`` for ``task_id``, replacing what was there; a ready
        state wakes whoever waits for it."""
        now = time.time()
        params: dict[str, Any] = {
            "task_id": task_id,
            "state": state,
            "payload": bytes(payload),
            "now": now,
            "expires_at": _expiry(expires_in, now),
        }
        statement = _STORE
        if state in READY_STATES:
            statement = _STORE_AND_NOTIFY
            params["channel"] = self._channel(task_id)
        self._db.call(lambda conn: conn.execute(statement, params))

    @staticmethod
    def _read(conn: Connection, task_id: str) -> tuple[str, bytes] | None:
        row = conn.execute(_READ, {"task_id": task_id, "now": time.time()}, binary=True).fetchone()
        return None if row is None else (row[0], bytes(row[1]))

    def load(self, task_id: str) -> bytes | None:
        """The payload stored for ``task_id`` unless missing or expired."""
        record = self._db.call(lambda conn: self._read(conn, task_id))
        return None if record is None else record[1]

    def load_many(self, task_ids: Sequence[str]) -> dict[str, bytes]:
        """Payloads of those ``task_ids`` that have one, in one query."""
        ids = list(dict.fromkeys(task_ids))
        if not ids:
            return {}
        params = {"ids": ids, "now": time.time()}
        rows = self._db.call(
            lambda conn: conn.execute(
                "SELECT task_id, payload FROM celeriac_results "
                f"WHERE task_id = ANY(%(ids)s::text[]) AND {_ALIVE}",
                params,
                binary=True,
            ).fetchall()
        )
        return {task_id: bytes(payload) for task_id, payload in rows}

    def wait_for(self, task_id: str, timeout: float | None) -> bytes | None:
        """Block until ``task_id`` is ready; its payload, or None after ``timeout`` seconds."""
        if timeout is not None and timeout <= 0:
            record = self._db.call(lambda conn: self._read(conn, task_id))
            return record[1] if record is not None and record[0] in READY_STATES else None
        deadline = None if timeout is None else time.monotonic() + timeout
        channel = sql.Identifier(self._channel(task_id))

        def wait(conn: Connection) -> bytes | None:
            conn.execute(sql.SQL("LISTEN {}").format(channel))
            try:
                while True:
                    record = self._read(conn, task_id)
                    if record is not None and record[0] in READY_STATES:
                        return record[1]
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        return None
                    for _ in conn.notifies(timeout=left, stop_after=1):
                        break
            finally:
                self._unlisten(conn)

        return self._db.call(wait, limited=False)

    @staticmethod
    def _unlisten(conn: Connection) -> None:
        """Give the pooled connection back as it was: listening to nothing, nothing queued."""
        if conn.broken or conn.closed:
            return
        try:
            conn.execute("UNLISTEN *")
            for _ in conn.notifies(timeout=0):
                pass
        except psycopg.Error:
            conn.close()  # not reusable; the pool drops closed connections

    def forget(self, task_id: str) -> None:
        """Delete the result of ``task_id``."""
        self._db.call(
            lambda conn: conn.execute("DELETE FROM celeriac_results WHERE task_id = %s", (task_id,))
        )

    def cleanup(self) -> int:
        """Delete expired results and keys; returns how many."""
        params = {"now": time.time()}
        row = self._db.call(lambda conn: conn.execute(_CLEANUP, params).fetchone())
        return int(row[0]) if row is not None else 0

    def incr(self, key: str, amount: int = 1, expires_in: float | None = None) -> int:
        """Add ``amount`` to counter ``key`` (missing or expired: 0) and return the sum.

        ``expires_in`` (re)sets the key's expiry; None keeps the one it has. Raises
        ValueError when the key holds something that is not an integer (or the sum overflows
        a 64-bit integer)."""
        now = time.time()
        params = {
            "key": key,
            "amount": int(amount),
            "expires_at": _expiry(expires_in, now),
            "now": now,
        }

        def incr(conn: Connection) -> int:
            try:
                row = conn.execute(_INCR, params).fetchone()
            except psycopg.DataError as exc:
                raise ValueError(f"cannot increment {key!r}: {exc}") from None
            assert row is not None
            return int(row[0])

        return self._db.call(incr)

    def add_to_set(self, key: str, member: str, expires_in: float | None = None) -> int:
        """Add ``member`` to the set ``key``; returns its number of distinct members."""
        now = time.time()
        params = {"key": key, "member": member, "expires_at": _expiry(expires_in, now), "now": now}

        def add(conn: Connection) -> int:
            with conn.transaction():
                for statement in _SET_ADD[:-1]:
                    conn.execute(statement, params)
                row = conn.execute(_SET_ADD[-1], params).fetchone()
            assert row is not None
            return int(row[0])

        return self._db.call(add)

    def set_members(self, key: str) -> list[str]:
        """The members of the set ``key``."""
        params = {"key": key, "now": time.time()}
        rows = self._db.call(
            lambda conn: conn.execute(
                f"SELECT member FROM celeriac_sets WHERE key = %(key)s AND {_ALIVE}", params
            ).fetchall()
        )
        return [str(r[0]) for r in rows]

    def set_value(
        self, key: str, value: bytes, expires_in: float | None = None, only_if_absent: bool = False
    ) -> bool:
        """Set ``key``; with ``only_if_absent`` only when missing or expired."""
        now = time.time()
        params = {
            "key": key,
            "value": bytes(value),
            "expires_at": _expiry(expires_in, now),
            "now": now,
        }
        statement = _SET
        if only_if_absent:
            # the conflicting row is locked first, so of racing callers exactly one wins
            statement += " WHERE kv.expires_at <= %(now)s"
        rowcount = self._db.call(lambda conn: conn.execute(statement, params).rowcount)
        return rowcount > 0

    def get_value(self, key: str) -> bytes | None:
        """The value of ``key`` (counters as ASCII digits) unless missing or expired."""
        params = {"key": key, "now": time.time()}
        row = self._db.call(
            lambda conn: conn.execute(
                f"SELECT value FROM celeriac_kv WHERE key = %(key)s AND {_ALIVE}",
                params,
                binary=True,
            ).fetchone()
        )
        return None if row is None else bytes(row[0])

    def delete_value(self, key: str) -> None:
        """Delete ``key``."""

        def delete(conn: Connection) -> None:
            conn.execute("DELETE FROM celeriac_kv WHERE key = %s", (key,))
            conn.execute("DELETE FROM celeriac_sets WHERE key = %s", (key,))

        self._db.call(delete)

    def close(self) -> None:
        """Close this process's connections (they reopen when the backend is used again)."""
        self._db.close()

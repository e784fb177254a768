"""An event log in a PostgreSQL table: the broker's own database by default.

Appenders take a transaction-scoped advisory lock, so ids are committed in increasing order
and a reader that asks for the rows after the last id it saw misses none (an id taken by a
transaction that commits later could otherwise be skipped).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from ..connections.postgres import PostgresDatabase
from .base import LATEST, EventReader, PollingReader, log_name

DDL = """CREATE TABLE IF NOT EXISTS {table} (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at double precision NOT NULL,
    body bytea NOT NULL
)"""

_LOCK = "SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.{table}'))"
_APPEND = """
INSERT INTO {table} (at, body)
SELECT %(now)s, b FROM unnest(%(bodies)b::bytea[]) WITH ORDINALITY AS e(b, n) ORDER BY n
"""


class PostgresEventLog:
    """Events in the table ``celeriac_<name>`` (``celeriac_events``) of a PostgreSQL schema."""

    def __init__(self, url: str, options: dict[str, Any] | None = None) -> None:
        options = dict(options or {})
        self.url = url
        self.table = t = f"celeriac_{log_name(options)}"
        self._db = PostgresDatabase(url, [DDL.format(table=t)], [t], options)
        self._lock, self._append = _LOCK.format(table=t), _APPEND.format(table=t)
        self._select = f"SELECT id, body FROM {t} WHERE id > %s ORDER BY id LIMIT %s"
        self._newest_sql = f"SELECT max(id) FROM {t}"
        self._trim_age = f"DELETE FROM {t} WHERE at < %s"
        self._trim_count = f"DELETE FROM {t} WHERE id <= (SELECT max(id) FROM {t}) - %s"

    def append(self, events: Sequence[bytes]) -> None:
        params = {"now": time.time(), "bodies": list(events)}

        def go(conn: Any) -> None:
            with conn.transaction():
                conn.execute(self._lock)
                conn.execute(self._append, params)

        self._db.call(go)

    def _fetch(self, after: int, limit: int) -> list[tuple[int, bytes]]:
        rows = self._db.call(lambda conn: conn.execute(self._select, (after, limit)).fetchall())
        return [(int(i), bytes(b)) for i, b in rows]

    def _newest(self) -> int:
        row = self._db.call(lambda conn: conn.execute(self._newest_sql).fetchone())
        return int(row[0] or 0) if row else 0

    def reader(self, start: str = LATEST) -> EventReader:
        return PollingReader(self._fetch, self._newest, start)

    def trim(self, max_age: float | None, max_events: int | None) -> None:
        def go(conn: Any) -> None:
            if max_age is not None:
                conn.execute(self._trim_age, (time.time() - max_age,))
            if max_events is not None:
                conn.execute(self._trim_count, (max_events,))

        self._db.call(go)

    def close(self) -> None:
        self._db.close()

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
from .base import LATEST, EventReader, PollingReader

DDL = [
    """CREATE TABLE IF NOT EXISTS celeriac_events (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        at double precision NOT NULL,
        body bytea NOT NULL
    )""",
]
RELATIONS = ["celeriac_events"]

_LOCK = "SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.celeriac_events'))"
_APPEND = """
INSERT INTO celeriac_events (at, body)
SELECT %(now)s, b FROM unnest(%(bodies)b::bytea[]) WITH ORDINALITY AS e(b, n) ORDER BY n
"""


class PostgresEventLog:
    """Events in the table ``celeriac_events`` of a PostgreSQL schema."""

    def __init__(self, url: str, options: dict[str, Any] | None = None) -> None:
        self.url = url
        self._db = PostgresDatabase(url, DDL, RELATIONS, options)

    def append(self, events: Sequence[bytes]) -> None:
        params = {"now": time.time(), "bodies": list(events)}

        def go(conn: Any) -> None:
            with conn.transaction():
                conn.execute(_LOCK)
                conn.execute(_APPEND, params)

        self._db.call(go)

    def _fetch(self, after: int, limit: int) -> list[tuple[int, bytes]]:
        rows = self._db.call(
            lambda conn: conn.execute(
                "SELECT id, body FROM celeriac_events WHERE id > %s ORDER BY id LIMIT %s",
                (after, limit),
            ).fetchall()
        )
        return [(int(i), bytes(b)) for i, b in rows]

    def _newest(self) -> int:
        row = self._db.call(
            lambda conn: conn.execute("SELECT max(id) FROM celeriac_events").fetchone()
        )
        return int(row[0] or 0) if row else 0

    def reader(self, start: str = LATEST) -> EventReader:
        return PollingReader(self._fetch, self._newest, start)

    def trim(self, max_age: float | None, max_events: int | None) -> None:
        def go(conn: Any) -> None:
            if max_age is not None:
                conn.execute("DELETE FROM celeriac_events WHERE at < %s", (time.time() - max_age,))
            if max_events is not None:
                conn.execute(
                    "DELETE FROM celeriac_events WHERE id <= "
                    "(SELECT max(id) FROM celeriac_events) - %s",
                    (max_events,),
                )

        self._db.call(go)

    def close(self) -> None:
        self._db.close()

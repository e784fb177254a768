"""An event log in a SQLite file: the broker's own file by default.

Writers are serialised by SQLite's write lock, so ids are committed in increasing order and a
reader that asks for the rows after the last id it saw misses none.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from ..connections.sqlite import SQLiteDatabase
from .base import LATEST, EventReader, PollingReader

SCHEMA = """
CREATE TABLE IF NOT EXISTS celeriac_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    body BLOB NOT NULL
);
"""


class SQLiteEventLog:
    """Events in the table ``celeriac_events`` of a SQLite file."""

    def __init__(self, url: str, options: dict[str, Any] | None = None) -> None:
        self.url = url
        self._db = SQLiteDatabase(url, SCHEMA, options)

    def append(self, events: Sequence[bytes]) -> None:
        now = time.time()
        with self._db.errors(), self._db.transaction() as conn:
            conn.executemany(
                "INSERT INTO celeriac_events (at, body) VALUES (?, ?)", [(now, e) for e in events]
            )

    def _fetch(self, after: int, limit: int) -> list[tuple[int, bytes]]:
        with self._db.errors():
            rows = self._db.connection().execute(
                "SELECT id, body FROM celeriac_events WHERE id > ? ORDER BY id LIMIT ?",
                (after, limit),
            )
            return [(int(i), bytes(b)) for i, b in rows.fetchall()]

    def _newest(self) -> int:
        with self._db.errors():
            row = self._db.connection().execute("SELECT max(id) FROM celeriac_events").fetchone()
        return int(row[0] or 0)

    def reader(self, start: str = LATEST) -> EventReader:
        return PollingReader(self._fetch, self._newest, start)

    def trim(self, max_age: float | None, max_events: int | None) -> None:
        with self._db.errors(), self._db.transaction() as conn:
            if max_age is not None:
                conn.execute("DELETE FROM celeriac_events WHERE at < ?", (time.time() - max_age,))
            if max_events is not None:
                conn.execute(
                    "DELETE FROM celeriac_events WHERE id <= "
                    "(SELECT max(id) FROM celeriac_events) - ?",
                    (max_events,),
                )

    def close(self) -> None:
        self._db.close()

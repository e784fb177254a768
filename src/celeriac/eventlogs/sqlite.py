"""An event log in a SQLite file: the broker's own file by default.

Writers are serialised by SQLite's write lock, so ids are committed in increasing order and a
reader that asks for the rows after the last id it saw misses none.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from ..connections.sqlite import SQLiteDatabase
from .base import LATEST, EventReader, PollingReader, log_name

SCHEMA = """
CREATE TABLE IF NOT EXISTS {table} (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    body BLOB NOT NULL
);
"""


class SQLiteEventLog:
    """Events in the table ``celeriac_<name>`` (``celeriac_events``) of a SQLite file."""

    def __init__(self, url: str, options: dict[str, Any] | None = None) -> None:
        options = dict(options or {})
        self.url = url
        self.table = t = f"celeriac_{log_name(options)}"
        self._db = SQLiteDatabase(url, SCHEMA.format(table=t), options)
        self._insert = f"INSERT INTO {t} (at, body) VALUES (?, ?)"
        self._select = f"SELECT id, body FROM {t} WHERE id > ? ORDER BY id LIMIT ?"
        self._newest_sql = f"SELECT max(id) FROM {t}"
        self._trim_age = f"DELETE FROM {t} WHERE at < ?"
        self._trim_count = f"DELETE FROM {t} WHERE id <= (SELECT max(id) FROM {t}) - ?"

    def append(self, events: Sequence[bytes]) -> None:
        now = time.time()
        with self._db.errors(), self._db.transaction() as conn:
            conn.executemany(self._insert, [(now, e) for e in events])

    def _fetch(self, after: int, limit: int) -> list[tuple[int, bytes]]:
        with self._db.errors():
            rows = self._db.connection().execute(self._select, (after, limit))
            return [(int(i), bytes(b)) for i, b in rows.fetchall()]

    def _newest(self) -> int:
        with self._db.errors():
            row = self._db.connection().execute(self._newest_sql).fetchone()
        return int(row[0] or 0)

    def reader(self, start: str = LATEST) -> EventReader:
        return PollingReader(self._fetch, self._newest, start)

    def trim(self, max_age: float | None, max_events: int | None) -> None:
        with self._db.errors(), self._db.transaction() as conn:
            if max_age is not None:
                conn.execute(self._trim_age, (time.time() - max_age,))
            if max_events is not None:
                conn.execute(self._trim_count, (max_events,))

    def close(self) -> None:
        self._db.close()

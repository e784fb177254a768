"""An event store in a SQLite file: ``sqlite:///path.db``, or ``celeriac-events.db`` in the
working directory for ``sqlite://`` alone. A batch is one ``BEGIN IMMEDIATE`` transaction,
the cursor included."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..connections.sqlite import SQLiteDatabase
from .sql import Run, SQLEventStore, T, ddl
from .store import DEFAULT_SQLITE_FILE

SCHEMA = ";\n".join(ddl("REAL", "INTEGER")) + ";"
_CHUNK = 512  # keys per IN (...)


class _Run:
    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return list(self._conn.execute(sql, params).fetchall())

    def executemany(self, sql: str, params: Sequence[Sequence[Any]]) -> None:
        self._conn.executemany(sql, params)


class SQLiteEventStore(SQLEventStore):
    """Tasks, workers, cursors, samples and alerts in five tables of a SQLite file."""

    # times are positive: truncating is rounding down (floor() needs SQLite's math functions)
    _floor = "CAST({0} / ? AS INTEGER)"

    def __init__(self, url: str = "sqlite://", options: dict[str, Any] | None = None) -> None:
        options = dict(options or {})
        self._setup(url, options)
        path = url.partition("://")[2].split("?", 1)[0]
        file_url = url if path else f"sqlite:///{DEFAULT_SQLITE_FILE}"
        self._db = SQLiteDatabase(file_url, SCHEMA, options)
        self.path = self._db.path

    def _write(self, work: Callable[[Run], T]) -> T:
        with self._db.errors(), self._db.transaction() as conn:
            return work(_Run(conn))

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._db.errors():
            return list(self._db.connection().execute(sql, params).fetchall())

    def _in(self, column: str, keys: Sequence[str]) -> list[tuple[str, list[Any]]]:
        found = []
        for start in range(0, len(keys), _CHUNK):
            chunk = list(keys[start : start + _CHUNK])
            # padded to a power of two, so that a few statements serve every batch (each
            # one prepared is cached, with its memory)
            size = 1 << (len(chunk) - 1).bit_length()
            chunk += chunk[-1:] * (size - len(chunk))
            found.append((f"{column} IN ({', '.join('?' * size)})", chunk))
        return found

    def close(self) -> None:
        self._db.close()

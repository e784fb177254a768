"""An event store in a PostgreSQL schema (the first of the URL's ``search_path``).

A batch is one transaction, the cursor included, under a transaction-scoped advisory lock:
several monitors may feed one store, one batch at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..connections.postgres import PostgresDatabase
from .sql import RELATIONS, Run, SQLEventStore, T, ddl

DDL = ddl("double precision", "bigint")
_LOCK = "SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.celeriac_monitor'))"


def _pg(sql: str) -> str:
    return sql.replace("?", "%s")


class _Run:
    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        cur = self._conn.execute(_pg(sql), params)
        return list(cur.fetchall()) if cur.description else []

    def executemany(self, sql: str, params: Sequence[Sequence[Any]]) -> None:
        with self._conn.cursor() as cur:
            cur.executemany(_pg(sql), params)


class PostgresEventStore(SQLEventStore):
    """Tasks, workers, cursors, samples and alerts in five tables of a PostgreSQL schema."""

    _by_code_point = '{0} COLLATE "C"'
    _lower = "translate({0}, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')"

    def __init__(self, url: str, options: dict[str, Any] | None = None) -> None:
        options = dict(options or {})
        self._setup(url, options)
        self._db = PostgresDatabase(url, DDL, RELATIONS, options)

    def _write(self, work: Callable[[Run], T]) -> T:
        def go(conn: Any) -> T:
            with conn.transaction():
                conn.execute(_LOCK)
                return work(_Run(conn))

        return self._db.call(go)

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return self._db.call(lambda conn: list(conn.execute(_pg(sql), params).fetchall()))

    def _in(self, column: str, keys: Sequence[str]) -> list[tuple[str, list[Any]]]:
        return [(f"{column} = ANY(?)", [list(keys)])]

    def close(self) -> None:
        self._db.close()

"""What the SQLite and PostgreSQL event stores share: the tables, the statements (written
with ``?`` placeholders) and the queries.

Three tables: ``celeriac_monitor_tasks`` (one row per task, indexed for the queries: by
``updated``, and by state, name and worker then ``updated``), ``celeriac_monitor_workers``
and ``celeriac_monitor_cursors``. A batch is one transaction: the rows it touches are read,
merged in Python (:mod:`celeriac.monitor.rows`) and written back with the cursor.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

from .. import states
from .rows import TASK_COLUMNS, WORKER_COLUMNS, is_lost, task_out, worker_out
from .store import DEFAULT_SOURCE, Batch, Retention

T = TypeVar("T")

TASKS = "celeriac_monitor_tasks"
WORKERS = "celeriac_monitor_workers"
CURSORS = "celeriac_monitor_cursors"
RELATIONS = [TASKS, WORKERS, CURSORS]

_REAL = {
    "sent",
    "received",
    "started",
    "succeeded",
    "failed",
    "retried",
    "rejected",
    "revoked",
    "runtime",
    "eta",
    "expires",
    "timestamp",
    "updated",
    "freq",
    "last_heartbeat",
    "online_at",
    "offline_at",
}
_INTEGER = {"retries", "priority", "pid", "active", "processed"}
_NOT_NULL = {"state", "timestamp", "updated"}


def ddl(real: str, integer: str) -> list[str]:
    """The statements creating the tables, with the dialect's type names."""

    def columns(names: Sequence[str], key: str) -> str:
        parts = []
        for name in names:
            kind = real if name in _REAL else integer if name in _INTEGER else "TEXT"
            extra = " PRIMARY KEY" if name == key else " NOT NULL" if name in _NOT_NULL else ""
            parts.append(f"{name} {kind}{extra}")
        return ", ".join(parts)

    statements = [
        f"CREATE TABLE IF NOT EXISTS {TASKS} ({columns(TASK_COLUMNS, 'uuid')})",
        f"CREATE TABLE IF NOT EXISTS {WORKERS} ({columns(WORKER_COLUMNS, 'hostname')})",
        f"CREATE TABLE IF NOT EXISTS {CURSORS} (source TEXT PRIMARY KEY, cursor TEXT NOT NULL)",
        f"CREATE INDEX IF NOT EXISTS {TASKS}_updated ON {TASKS} (updated, uuid)",
    ]
    for column in ("state", "name", "worker"):
        statements.append(
            f"CREATE INDEX IF NOT EXISTS {TASKS}_{column} ON {TASKS} ({column}, updated, uuid)"
        )
    return statements


def _upsert(table: str, columns: Sequence[str]) -> str:
    key, rest = columns[0], columns[1:]
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
        f"ON CONFLICT ({key}) DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in rest)}"
    )


_UPSERT_TASK = _upsert(TASKS, TASK_COLUMNS)
_UPSERT_WORKER = _upsert(WORKERS, WORKER_COLUMNS)
_UPSERT_CURSOR = _upsert(CURSORS, ("source", "cursor"))
_TASK_SELECT = f"SELECT {', '.join(TASK_COLUMNS)} FROM {TASKS}"
_WORKER_SELECT = f"SELECT {', '.join(WORKER_COLUMNS)} FROM {WORKERS}"
_NEWEST_FIRST = "ORDER BY updated DESC, uuid DESC"


class Run(Protocol):
    """Statements inside one transaction."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[Any]: ...

    def executemany(self, sql: str, params: Sequence[Sequence[Any]]) -> None: ...


class SQLEventStore:
    """An event store in SQL tables; subclasses give the transaction, the reads and how a
    list of keys is matched."""

    url: str
    retention: Retention

    def _setup(self, url: str, options: dict[str, Any]) -> None:
        self.url = url
        self.retention = Retention(options)
        self.max_age = self.retention.max_age
        self.max_tasks = self.retention.max_tasks

    # -- the dialect ------------------------------------------------------------------------

    def _write(self, work: Callable[[Run], T]) -> T:
        """``work`` in one write transaction (writers one at a time)."""
        raise NotImplementedError

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        raise NotImplementedError

    def _in(self, column: str, keys: Sequence[str]) -> list[tuple[str, list[Any]]]:
        """``(condition, params)`` pairs matching ``column`` to ``keys`` (one per chunk)."""
        raise NotImplementedError

    # -- writing ----------------------------------------------------------------------------

    def apply(
        self,
        events: Sequence[dict[str, Any]],
        cursor: str | None = None,
        source: str = DEFAULT_SOURCE,
    ) -> None:
        batch = Batch.of(events)
        if not batch.tasks and not batch.workers and cursor is None:
            return

        def work(run: Run) -> None:
            tasks = self._load(run, _TASK_SELECT, "uuid", TASK_COLUMNS, list(batch.tasks))
            workers = self._load(
                run, _WORKER_SELECT, "hostname", WORKER_COLUMNS, list(batch.workers)
            )
            task_rows, worker_rows, created = batch.merge(tasks, workers)
            if task_rows:
                run.executemany(
                    _UPSERT_TASK, [[r[c] for c in TASK_COLUMNS] for r in task_rows.values()]
                )
            if worker_rows:
                run.executemany(
                    _UPSERT_WORKER, [[r[c] for c in WORKER_COLUMNS] for r in worker_rows.values()]
                )
            if cursor is not None:
                run.execute(_UPSERT_CURSOR, (source, cursor))
            if self.retention.due(created):
                self._prune(run, None)

        self._write(work)

    def _load(
        self, run: Run, select: str, key: str, columns: Sequence[str], keys: list[str]
    ) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        if keys:
            for condition, params in self._in(key, keys):
                for values in run.execute(f"{select} WHERE {condition}", params):
                    row = dict(zip(columns, values, strict=True))
                    found[row[key]] = row
        return found

    def cursor(self, source: str = DEFAULT_SOURCE) -> str | None:
        rows = self._read(f"SELECT cursor FROM {CURSORS} WHERE source = ?", (source,))
        return str(rows[0][0]) if rows else None

    def prune(self, now: float | None = None) -> None:
        self._write(lambda run: self._prune(run, now))

    def _prune(self, run: Run, now: float | None) -> None:
        retention = self.retention
        cutoff = retention.cutoff(now)
        if cutoff is not None:
            run.execute(f"DELETE FROM {TASKS} WHERE updated < ?", (cutoff,))
            run.execute(f"DELETE FROM {WORKERS} WHERE updated < ?", (cutoff,))
        if retention.max_tasks is not None:
            first_gone = run.execute(
                f"SELECT updated, uuid FROM {TASKS} {_NEWEST_FIRST} LIMIT 1 OFFSET ?",
                (retention.max_tasks,),
            )
            if first_gone:
                updated, uuid = first_gone[0]
                run.execute(
                    f"DELETE FROM {TASKS} WHERE updated < ? OR (updated = ? AND uuid <= ?)",
                    (updated, updated, uuid),
                )
        retention.done()

    # -- queries ----------------------------------------------------------------------------

    def task(self, uuid: str) -> dict[str, Any] | None:
        rows = self._read(f"{_TASK_SELECT} WHERE uuid = ?", (uuid,))
        return task_out(dict(zip(TASK_COLUMNS, rows[0], strict=True))) if rows else None

    def tasks(
        self,
        state: str | None = None,
        name: str | None = None,
        worker: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        conditions: list[str] = []
        params: list[Any] = []
        for column, value in (("state", state), ("name", name), ("worker", worker)):
            if value is not None:
                conditions.append(f"{column} = ?")
                params.append(value)
        if since is not None:
            conditions.append("updated >= ?")
            params.append(float(since))
        if until is not None:
            conditions.append("updated <= ?")
            params.append(float(until))
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        rows = self._read(
            f"{_TASK_SELECT} {where} {_NEWEST_FIRST} LIMIT ? OFFSET ?",
            (*params, max(int(limit), 0), max(int(offset), 0)),
        )
        return [task_out(dict(zip(TASK_COLUMNS, r, strict=True))) for r in rows]

    def _workers(self) -> list[dict[str, Any]]:
        rows = self._read(f"{_WORKER_SELECT} ORDER BY hostname")
        return [dict(zip(WORKER_COLUMNS, r, strict=True)) for r in rows]

    def workers(self, now: float | None = None) -> list[dict[str, Any]]:
        now = time.time() if now is None else now
        return [worker_out(row, now) for row in self._workers()]

    def counts(self) -> dict[str, Any]:
        by_state: dict[str, int] = {}
        by_name: dict[str, dict[str, int]] = {}
        for name, state, count in self._read(
            f"SELECT name, state, count(*) FROM {TASKS} GROUP BY name, state"
        ):
            by_state[state] = by_state.get(state, 0) + int(count)
            named = by_name.setdefault(name or "", {})
            named[state] = named.get(state, 0) + int(count)
        return {"states": by_state, "names": by_name}

    def lost_tasks(self, now: float | None = None) -> list[dict[str, Any]]:
        now = time.time() if now is None else now
        workers = {row["hostname"]: row for row in self._workers()}
        rows = self._read(f"{_TASK_SELECT} WHERE state = ? {_NEWEST_FIRST}", (states.STARTED,))
        found = [dict(zip(TASK_COLUMNS, r, strict=True)) for r in rows]
        return [task_out(t) for t in found if is_lost(t, workers.get(t["worker"] or ""), now)]

    def task_names(self) -> list[str]:
        rows = self._read(f"SELECT DISTINCT name FROM {TASKS} WHERE name IS NOT NULL ORDER BY name")
        return [str(r[0]) for r in rows]

    def stats(self) -> dict[str, Any]:
        count, oldest, newest = self._read(
            f"SELECT count(*), min(updated), max(updated) FROM {TASKS}"
        )[0]
        workers = self._read(f"SELECT count(*) FROM {WORKERS}")[0][0]
        return {"tasks": int(count), "workers": int(workers), "oldest": oldest, "newest": newest}

"""What the SQLite and PostgreSQL event stores share: the tables, the statements (written
with ``?`` placeholders) and the queries.

Five tables: ``celeriac_monitor_tasks`` (one row per task, indexed for the queries: by
``updated``, by state, name and worker then ``updated``, and by the times tasks succeeded and
failed), ``celeriac_monitor_workers``, ``celeriac_monitor_cursors``,
``celeriac_monitor_samples`` (time series: a JSON object of numbers by kind, key and time)
and ``celeriac_monitor_alerts`` (alert states as JSON, by id). A batch is one transaction:
the rows it touches are read, merged in Python (:mod:`celeriac.monitor.rows`) and written
back with the cursor.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from .. import states
from .queries import (
    SEARCHED,
    check_buckets,
    check_sort,
    clean_samples,
    lower,
    runtime_of,
    runtime_rows,
    sample_out,
    throughput_rows,
)
from .rows import TASK_COLUMNS, WORKER_COLUMNS, is_lost, task_out, worker_out
from .store import DEFAULT_SOURCE, Batch, Retention

T = TypeVar("T")

TASKS = "celeriac_monitor_tasks"
WORKERS = "celeriac_monitor_workers"
CURSORS = "celeriac_monitor_cursors"
SAMPLES = "celeriac_monitor_samples"
ALERTS = "celeriac_monitor_alerts"
RELATIONS = [TASKS, WORKERS, CURSORS, SAMPLES, ALERTS]

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
_TEXT_SORT = {"name", "state", "worker", "queue", "uuid"}


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
    for column in ("succeeded", "failed"):  # throughput and runtimes
        statements.append(f"CREATE INDEX IF NOT EXISTS {TASKS}_{column} ON {TASKS} ({column})")
    statements += [
        f"CREATE TABLE IF NOT EXISTS {SAMPLES} (kind TEXT NOT NULL, key TEXT NOT NULL, "
        f"t {real} NOT NULL, data TEXT NOT NULL, PRIMARY KEY (kind, key, t))",
        f"CREATE INDEX IF NOT EXISTS {SAMPLES}_t ON {SAMPLES} (t)",
        f"CREATE TABLE IF NOT EXISTS {ALERTS} (id TEXT PRIMARY KEY, state TEXT NOT NULL)",
    ]
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
_UPSERT_SAMPLE = (
    f"INSERT INTO {SAMPLES} (kind, key, t, data) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (kind, key, t) DO UPDATE SET data = excluded.data"
)
_UPSERT_ALERT = _upsert(ALERTS, ("id", "state"))


def _like(search: str) -> str:
    """A ``LIKE`` pattern (escaped with a backslash) of the lowered ``search`` anywhere."""
    escaped = lower(search).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class Run(Protocol):
    """Statements inside one transaction."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[Any]: ...

    def executemany(self, sql: str, params: Sequence[Sequence[Any]]) -> None: ...


class SQLEventStore:
    """An event store in SQL tables; subclasses give the transaction, the reads, how a
    list of keys is matched and the few expressions the dialects spell differently."""

    url: str
    retention: Retention
    #: the bucket index of a time column, ``{0}`` divided by a parameter, rounded down
    _floor = "floor({0} / ?)"
    #: a text column compared by code point (as Python does)
    _by_code_point = "{0}"
    #: a text column with its ASCII letters lowered (as :func:`queries.lower`)
    _lower = "lower({0})"

    def _setup(self, url: str, options: dict[str, Any]) -> None:
        self.url = url
        self.retention = Retention(options)
        self.max_age = self.retention.max_age
        self.max_tasks = self.retention.max_tasks
        self.max_samples = self.retention.max_samples

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
            run.execute(f"DELETE FROM {SAMPLES} WHERE t < ?", (cutoff,))
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
        *,
        search: str | None = None,
        sort: str = "updated",
        order: str = "desc",
    ) -> list[dict[str, Any]]:
        descending = check_sort(sort, order)
        where, params = self._where(state, name, worker, since, until, search)
        if sort == "updated":
            order_by = _NEWEST_FIRST if descending else "ORDER BY updated, uuid"
        else:
            way = " DESC" if descending else ""
            column = self._by_code_point.format(sort) if sort in _TEXT_SORT else sort
            uuid = self._by_code_point.format("uuid")
            order_by = f"ORDER BY ({sort} IS NULL), {column}{way}, updated{way}, {uuid}{way}"
        rows = self._read(
            f"{_TASK_SELECT} {where} {order_by} LIMIT ? OFFSET ?",
            (*params, max(int(limit), 0), max(int(offset), 0)),
        )
        return [task_out(dict(zip(TASK_COLUMNS, r, strict=True))) for r in rows]

    def count_tasks(
        self,
        state: str | None = None,
        name: str | None = None,
        worker: str | None = None,
        since: float | None = None,
        until: float | None = None,
        *,
        search: str | None = None,
    ) -> int:
        where, params = self._where(state, name, worker, since, until, search)
        return int(self._read(f"SELECT count(*) FROM {TASKS} {where}", params)[0][0])

    def _where(
        self,
        state: str | None,
        name: str | None,
        worker: str | None,
        since: float | None,
        until: float | None,
        search: str | None,
    ) -> tuple[str, list[Any]]:
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
        if search:
            likes = [f"{self._lower.format(c)} LIKE ? ESCAPE '\\'" for c in SEARCHED]
            conditions.append(f"({' OR '.join(likes)})")
            params += [_like(search)] * len(SEARCHED)
        return (f"WHERE {' AND '.join(conditions)}" if conditions else ""), params

    def throughput(self, since: float, until: float, bucket: float = 60.0) -> list[dict[str, Any]]:
        check_buckets(since, until, bucket)
        counts: dict[tuple[int, str], int] = {}
        for column in ("succeeded", "failed"):
            index = self._floor.format(column)
            for k, n in self._read(
                f"SELECT {index}, count(*) FROM {TASKS} WHERE {column} >= ? AND {column} <= ? "
                "GROUP BY 1",
                (float(bucket), float(since), float(until)),
            ):
                counts[(int(k), column)] = int(n)
        return throughput_rows(since, until, bucket, counts)

    def runtimes(
        self, since: float, until: float, names: Sequence[str] | None = None
    ) -> list[dict[str, Any]]:
        columns = ("name", "runtime", "started", "succeeded", "failed")
        window = "((succeeded >= ? AND succeeded <= ?) OR (failed >= ? AND failed <= ?))"
        params: list[Any] = [float(since), float(until)] * 2
        select = f"SELECT {', '.join(columns)} FROM {TASKS} WHERE {window}"
        found: list[Any] = []
        if names is None:
            found = self._read(select, params)
        elif names:
            for condition, keys in self._in("name", list(names)):
                found += self._read(f"{select} AND {condition}", [*params, *keys])
        rows = [dict(zip(columns, r, strict=True)) for r in found]
        return runtime_rows((row["name"], runtime_of(row)) for row in rows)

    # -- samples and alerts -----------------------------------------------------------------

    def record_samples(
        self, kind: str, t: float, values: Mapping[str, Mapping[str, float | None]]
    ) -> None:
        kind, cleaned = clean_samples(kind, values)
        if not cleaned:
            return
        t = float(t)
        cutoff = self.retention.cutoff(t)
        keep = self.max_samples

        def work(run: Run) -> None:
            run.executemany(
                _UPSERT_SAMPLE,
                [(kind, key, t, json.dumps(fields)) for key, fields in cleaned.items()],
            )
            for key in cleaned:
                if cutoff is not None:
                    run.execute(
                        f"DELETE FROM {SAMPLES} WHERE kind = ? AND key = ? AND t < ?",
                        (kind, key, cutoff),
                    )
                # all but the newest ``keep`` (none gone when the series is shorter)
                run.execute(
                    f"DELETE FROM {SAMPLES} WHERE kind = ? AND key = ? AND t <= (SELECT t FROM "
                    f"{SAMPLES} WHERE kind = ? AND key = ? ORDER BY t DESC LIMIT 1 OFFSET ?)",
                    (kind, key, kind, key, keep),
                )

        self._write(work)

    def samples(
        self,
        kind: str,
        since: float | None = None,
        until: float | None = None,
        keys: Sequence[str] | None = None,
    ) -> dict[str, list[dict[str, Any]]]:
        conditions: list[str] = ["kind = ?"]
        params: list[Any] = [kind]
        if since is not None:
            conditions.append("t >= ?")
            params.append(float(since))
        if until is not None:
            conditions.append("t <= ?")
            params.append(float(until))
        select = f"SELECT key, t, data FROM {SAMPLES} WHERE {' AND '.join(conditions)}"
        found: list[Any] = []
        if keys is None:
            found = self._read(select, params)
        elif keys:
            for condition, chunk in self._in("key", list(keys)):
                found += self._read(f"{select} AND {condition}", [*params, *chunk])
        out: dict[str, list[dict[str, Any]]] = {}
        for key, t, data in sorted(found, key=lambda r: (r[0], r[1])):
            out.setdefault(key, []).append(sample_out(float(t), json.loads(data)))
        return out

    def alert_states(self) -> dict[str, dict[str, Any]]:
        found = self._read(f"SELECT id, state FROM {ALERTS}")
        return {id: json.loads(state) for id, state in found}

    def save_alert_states(self, changes: Mapping[str, dict[str, Any] | None]) -> None:
        if not changes:
            return
        saved = [(id, json.dumps(s)) for id, s in changes.items() if s is not None]
        gone = [id for id, s in changes.items() if s is None]

        def work(run: Run) -> None:
            if saved:
                run.executemany(_UPSERT_ALERT, saved)
            for id in gone:
                run.execute(f"DELETE FROM {ALERTS} WHERE id = ?", (id,))

        self._write(work)

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

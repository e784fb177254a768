"""Periodic tasks kept in SQL tables (SQLite or PostgreSQL), editable while beat runs.

``celeriac -A proj beat -S db`` reads its entries from here; :class:`PeriodicTasks` (and
``celeriac schedule ...``) adds, changes, enables, disables and removes them, and beat picks
a change up within ``beat_db_sync_interval`` seconds. Tables: ``celeriac_periodic_task`` (one
row per entry: task, arguments, options, enabled, one-off, start time, expiry, max-active,
last run, run count), one table per kind of schedule (``celeriac_interval``,
``celeriac_crontab`` with its time zone, ``celeriac_solar``, ``celeriac_clocked``), and
``celeriac_schedule_changes``, a counter bumped by every change, which is all beat polls.

The database is ``beat_db_url``; unset, it is the broker's when that is SQLite or
PostgreSQL, else ``sqlite:///celeriac-schedule.db``. Entries in ``beat_schedule`` are copied
in when beat starts (definitions updated, run state kept).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from .. import plugins
from ..config import DEFAULT_BROKER_URL
from ..exceptions import ImproperlyConfigured
from ..schedules import maybe_schedule, schedule_from_dict
from .entry import Entry, configured_entries, parse_time

if TYPE_CHECKING:
    from ..app import Celeriac

#: schedule table -> its columns (besides ``id``)
KINDS: dict[str, tuple[str, ...]] = {
    "celeriac_interval": ("every", "relative"),
    "celeriac_crontab": (
        "minute",
        "hour",
        "day_of_week",
        "day_of_month",
        "month_of_year",
        "timezone",
    ),
    "celeriac_solar": ("event", "latitude", "longitude", "timezone"),
    "celeriac_clocked": ("clocked_time", "timezone"),
}

_TASK_COLUMNS = (
    "name",
    "task",
    "kind",
    "schedule_id",
    "args",
    "kwargs",
    "options",
    "enabled",
    "one_off",
    "start_time",
    "expires",
    "max_active",
    "last_run_at",
    "total_run_count",
    "recent",
    "description",
    "date_changed",
)


def _ddl(serial: str) -> list[str]:
    tables = [
        f"CREATE TABLE IF NOT EXISTS {table} (id {serial}, "
        + ", ".join(f"{c} TEXT" for c in columns)
        + ")"
        for table, columns in KINDS.items()
    ]
    return [
        *tables,
        """CREATE TABLE IF NOT EXISTS celeriac_periodic_task (
            name TEXT PRIMARY KEY,
            task TEXT NOT NULL,
            kind TEXT NOT NULL,
            schedule_id BIGINT NOT NULL,
            args TEXT NOT NULL DEFAULT '[]',
            kwargs TEXT NOT NULL DEFAULT '{}',
            options TEXT NOT NULL DEFAULT '{}',
            enabled INTEGER NOT NULL DEFAULT 1,
            one_off INTEGER NOT NULL DEFAULT 0,
            start_time TEXT,
            expires TEXT,
            max_active INTEGER,
            last_run_at TEXT,
            total_run_count INTEGER NOT NULL DEFAULT 0,
            recent TEXT NOT NULL DEFAULT '[]',
            description TEXT NOT NULL DEFAULT '',
            date_changed DOUBLE PRECISION NOT NULL
        )""",
        "CREATE TABLE IF NOT EXISTS celeriac_schedule_changes (id INTEGER PRIMARY KEY, n BIGINT)",
    ]


RELATIONS = [*KINDS, "celeriac_periodic_task", "celeriac_schedule_changes"]


def default_url(app: Celeriac) -> str:
    """``beat_db_url``; else the broker's URL when it is a database; else a SQLite file."""
    url = app.conf.beat_db_url
    if url:
        return str(url)
    broker = str(app.conf.broker_url or DEFAULT_BROKER_URL)
    if plugins.serves(plugins.DATABASES, broker):
        return broker
    return "sqlite:///celeriac-schedule.db"


class Statements(Protocol):
    """A ``celeriac.databases`` plug-in: runs statements written with ``?`` placeholders."""

    identity_column: str  # the column type of an auto-numbered primary key

    def run(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]: ...

    def close(self) -> None: ...


def open_database(url: str) -> Statements:
    """The schedule tables at ``url``, created when missing."""
    cls = plugins.for_url(plugins.DATABASES, url, "schedule database")
    sql: Statements = cls(url, _ddl(cls.identity_column), RELATIONS)
    return sql


_BUMP = [
    ("INSERT INTO celeriac_schedule_changes (id, n) VALUES (1, 0) ON CONFLICT (id) DO NOTHING", ()),
    ("UPDATE celeriac_schedule_changes SET n = n + 1 WHERE id = 1", ()),
]


def _json(value: Any) -> str:
    return json.dumps(value, default=str)


def _time(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


class PeriodicTasks:
    """The periodic tasks in the database: add, change, enable, disable, remove, list."""

    def __init__(self, app: Celeriac, url: str | None = None) -> None:
        self.app = app
        self.where = url or default_url(app)
        self.sql = open_database(self.where)

    # -- reading --------------------------------------------------------------------------

    def all(self) -> list[Entry]:
        """Every entry, with its state, by name."""
        rows = self.sql.run(
            [(f"SELECT {', '.join(_TASK_COLUMNS)} FROM celeriac_periodic_task ORDER BY name", ())]
        )
        tasks = [dict(zip(_TASK_COLUMNS, r, strict=True)) for r in rows]
        schedules = self._schedules(tasks)
        return [self._entry(t, schedules[(t["kind"], int(t["schedule_id"]))]) for t in tasks]

    def get(self, name: str) -> Entry:
        for entry in self.all():
            if entry.name == name:
                return entry
        raise KeyError(f"no periodic task named {name!r}")

    def version(self) -> int:
        rows = self.sql.run([("SELECT n FROM celeriac_schedule_changes WHERE id = 1", ())])
        return int(rows[0][0]) if rows else 0

    def _schedules(self, tasks: Iterable[dict[str, Any]]) -> dict[tuple[str, int], Any]:
        found: dict[tuple[str, int], Any] = {}
        for kind, columns in KINDS.items():
            ids = sorted({int(t["schedule_id"]) for t in tasks if t["kind"] == kind})
            if not ids:
                continue
            marks = ",".join("?" * len(ids))
            rows = self.sql.run(
                [(f"SELECT id, {', '.join(columns)} FROM {kind} WHERE id IN ({marks})", ids)]
            )
            for row in rows:
                values = dict(zip(columns, row[1:], strict=True))
                found[(kind, int(row[0]))] = schedule_from_dict(
                    {"type": _TYPE_OF[kind], **_decode(kind, values)}, app=self.app
                )
        return found

    def _entry(self, row: dict[str, Any], schedule: Any) -> Entry:
        return Entry(
            name=row["name"],
            task=row["task"],
            schedule=schedule,
            args=json.loads(row["args"]),
            kwargs=json.loads(row["kwargs"]),
            options=json.loads(row["options"]),
            enabled=bool(row["enabled"]),
            one_off=bool(row["one_off"]),
            start_time=parse_time(row["start_time"]) if row["start_time"] else None,
            expires=parse_time(row["expires"]) if row["expires"] else None,
            max_active=int(row["max_active"]) if row["max_active"] is not None else None,
            last_run_at=parse_time(row["last_run_at"]) if row["last_run_at"] else None,
            total_run_count=int(row["total_run_count"]),
            recent=json.loads(row["recent"]),
        )

    # -- changing -------------------------------------------------------------------------

    def add(
        self,
        name: str,
        task: str,
        schedule: Any,
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        options: dict[str, Any] | None = None,
        *,
        enabled: bool = True,
        one_off: bool = False,
        start_time: dt.datetime | None = None,
        expires: dt.datetime | None = None,
        max_active: int | None = None,
        description: str = "",
        keep_state: bool = True,
    ) -> Entry:
        """Add the entry ``name``, or change it (its run state is kept). ``schedule`` is a
        number of seconds, a timedelta, or a crontab/schedule/solar/clocked."""
        sched = maybe_schedule(schedule, app=self.app)
        kind, values = _encode(sched)
        columns = KINDS[kind]
        marks = ", ".join("?" * len(columns))
        existing = self.sql.run(
            [("SELECT kind, schedule_id FROM celeriac_periodic_task WHERE name = ?", (name,))]
        )
        statements: list[tuple[str, Sequence[Any]]] = []
        if existing:
            statements.append((f"DELETE FROM {existing[0][0]} WHERE id = ?", (existing[0][1],)))
        statements.append(
            (
                f"INSERT INTO {kind} ({', '.join(columns)}) VALUES ({marks}) RETURNING id",
                [values[c] for c in columns],
            )
        )
        schedule_id = int(self.sql.run(statements)[0][0])
        row = {
            "name": name,
            "task": task,
            "kind": kind,
            "schedule_id": schedule_id,
            "args": _json(list(args)),
            "kwargs": _json(dict(kwargs or {})),
            "options": _json(dict(options or {})),
            "enabled": int(enabled),
            "one_off": int(one_off),
            "start_time": _time(start_time),
            "expires": _time(expires),
            "max_active": max_active,
            "description": description,
            "date_changed": time.time(),
        }
        keep = ("last_run_at", "total_run_count", "recent") if keep_state else ()
        insert_cols = list(row)
        update = ", ".join(f"{c} = excluded.{c}" for c in insert_cols if c != "name")
        reset = "" if keep else ", last_run_at = NULL, total_run_count = 0, recent = '[]'"
        self.sql.run(
            [
                (
                    f"INSERT INTO celeriac_periodic_task ({', '.join(insert_cols)}) "
                    f"VALUES ({', '.join('?' * len(insert_cols))}) "
                    f"ON CONFLICT (name) DO UPDATE SET {update}{reset}",
                    list(row.values()),
                ),
                *_BUMP,
            ]
        )
        return self.get(name)

    def enable(self, name: str, enabled: bool = True) -> None:
        self._update(name, "enabled = ?", int(enabled))

    def disable(self, name: str) -> None:
        self.enable(name, False)

    def remove(self, name: str) -> None:
        existing = self.sql.run(
            [("SELECT kind, schedule_id FROM celeriac_periodic_task WHERE name = ?", (name,))]
        )
        if not existing:
            raise KeyError(f"no periodic task named {name!r}")
        kind, schedule_id = existing[0]
        self.sql.run(
            [
                ("DELETE FROM celeriac_periodic_task WHERE name = ?", (name,)),
                (f"DELETE FROM {kind} WHERE id = ?", (schedule_id,)),
                *_BUMP,
            ]
        )

    def run_now(self, name: str) -> Any:
        """Send the entry's task now (its schedule is not changed); returns its result."""
        entry = self.get(name)
        return self.app.send_task(entry.task, entry.args, entry.kwargs, **entry.options)

    def save_state(self, entry: Entry) -> None:
        """Record a run (beat calls this; it does not count as a change)."""
        self.sql.run(
            [
                (
                    "UPDATE celeriac_periodic_task SET last_run_at = ?, total_run_count = ?, "
                    "recent = ?, enabled = ? WHERE name = ?",
                    (
                        _time(entry.last_run_at),
                        entry.total_run_count,
                        _json(entry.recent),
                        int(entry.enabled),
                        entry.name,
                    ),
                )
            ]
        )

    def _update(self, name: str, assignment: str, value: Any) -> None:
        rows = self.sql.run(
            [
                (
                    f"UPDATE celeriac_periodic_task SET {assignment}, date_changed = ? "
                    "WHERE name = ? RETURNING name",
                    (value, time.time(), name),
                ),
            ]
        )
        if not rows:
            raise KeyError(f"no periodic task named {name!r}")
        self.sql.run(_BUMP)

    def close(self) -> None:
        self.sql.close()


class DatabaseStore:
    """Beat's store for ``-S db``: the entries in the database (see :class:`PeriodicTasks`)."""

    def __init__(self, app: Celeriac, url: str | None = None) -> None:
        self.tasks = PeriodicTasks(app, url)
        self.where = self.tasks.where
        self.sync_interval = float(app.conf.beat_db_sync_interval)
        self._version: int | None = None
        self._checked = 0.0
        self._synced_config = False

    def entries(self) -> dict[str, Entry]:
        if not self._synced_config:
            for entry in configured_entries(self.tasks.app).values():
                self.tasks.add(
                    entry.name,
                    entry.task,
                    entry.schedule,
                    entry.args,
                    entry.kwargs,
                    entry.options,
                    enabled=entry.enabled,
                    one_off=entry.one_off,
                    start_time=entry.start_time,
                    expires=entry.expires,
                    max_active=entry.max_active,
                )
            self._synced_config = True
        self._version = self.tasks.version()
        self._checked = time.monotonic()
        return {e.name: e for e in self.tasks.all()}

    def changed(self) -> bool:
        if time.monotonic() - self._checked < self.sync_interval:
            return False
        self._checked = time.monotonic()
        return self.tasks.version() != self._version

    def save(self, entry: Entry) -> None:
        self.tasks.save_state(entry)

    def close(self) -> None:
        self.tasks.close()


# -- schedules <-> rows (kept apart so the Django models can reuse them) -------------------

_TYPE_OF = {
    "celeriac_interval": "schedule",
    "celeriac_crontab": "crontab",
    "celeriac_solar": "solar",
    "celeriac_clocked": "clocked",
}
_TABLE_OF = {v: k for k, v in _TYPE_OF.items()}


def _encode(schedule: Any) -> tuple[str, dict[str, Any]]:
    """The table and column values for ``schedule``."""
    d = schedule.to_dict()
    kind = _TABLE_OF.get(d.get("type", ""))
    if kind is None:
        raise ImproperlyConfigured(f"cannot store a {type(schedule).__name__} schedule")
    return kind, {c: (None if d.get(c) is None else str(d[c])) for c in KINDS[kind]}


def _decode(kind: str, values: dict[str, Any]) -> dict[str, Any]:
    """Column values back into ``schedule_from_dict`` form."""
    return {k: v for k, v in values.items() if v is not None}  # from_dict parses text

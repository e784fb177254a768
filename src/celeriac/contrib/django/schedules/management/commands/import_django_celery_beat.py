"""``manage.py import_django_celery_beat``: copy django-celery-beat's rows into these models.

Reads the ``django_celery_beat_*`` tables (as django-celery-beat's migrations left them, in
the default database or ``--database``) with plain SQL, so django-celery-beat need not be
installed. Each schedule becomes a row of its own; each periodic task is created, or updated
when one of that name exists, with its run state (last run, run count). Columns a version of
django-celery-beat lacks are left at their defaults here.
"""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from ...models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    PeriodicTasks,
    SolarSchedule,
)

PREFIX = "django_celery_beat_"
#: their table -> (our model, the columns copied)
SCHEDULES: dict[str, tuple[Any, tuple[str, ...]]] = {
    "intervalschedule": (IntervalSchedule, ("every", "period")),
    "crontabschedule": (
        CrontabSchedule,
        ("minute", "hour", "day_of_week", "day_of_month", "month_of_year", "timezone"),
    ),
    "solarschedule": (SolarSchedule, ("event", "latitude", "longitude")),
    "clockedschedule": (ClockedSchedule, ("clocked_time",)),
}
#: their foreign key column -> (their schedule table, our field)
LINKS = {
    "interval_id": ("intervalschedule", "interval"),
    "crontab_id": ("crontabschedule", "crontab"),
    "solar_id": ("solarschedule", "solar"),
    "clocked_id": ("clockedschedule", "clocked"),
}
TASK_COLUMNS = (
    "name",
    "task",
    "args",
    "kwargs",
    "queue",
    "exchange",
    "routing_key",
    "headers",
    "priority",
    "expires",
    "expire_seconds",
    "one_off",
    "start_time",
    "enabled",
    "last_run_at",
    "total_run_count",
    "description",
)
TIMES = {"clocked_time", "expires", "start_time", "last_run_at"}
FLAGS = {"one_off", "enabled"}


class Command(BaseCommand):
    help = "Copy the periodic tasks of django-celery-beat's tables into celeriac's."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--database",
            default=DEFAULT_DB_ALIAS,
            help="the database holding the django_celery_beat_* tables (default: default)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        source = connections[options["database"]]
        tables = set(source.introspection.table_names())
        if f"{PREFIX}periodictask" not in tables:
            raise CommandError(f"no {PREFIX}periodictask table in database {options['database']!r}")
        with transaction.atomic():
            made: dict[tuple[str, int], Any] = {}
            for table, (model, columns) in SCHEDULES.items():
                for row in self._rows(source, tables, table, columns):
                    values = {c: _value(c, row[c]) for c in columns if c in row}
                    made[(table, int(row["id"]))] = _schedule(model, values)
            created = updated = 0
            for row in self._rows(source, tables, "periodictask", TASK_COLUMNS + tuple(LINKS)):
                values = {c: _value(c, row[c]) for c in TASK_COLUMNS if c in row}
                for column, (table, field) in LINKS.items():
                    key = row.get(column)
                    values[field] = made.get((table, int(key))) if key is not None else None
                for text, empty in (("args", "[]"), ("kwargs", "{}"), ("headers", "{}")):
                    values[text] = values.get(text) or empty
                values["description"] = values.get("description") or ""
                name = values.pop("name")
                _, new = PeriodicTask.objects.update_or_create(name=name, defaults=values)
                created, updated = created + new, updated + (not new)
            PeriodicTasks.update_changed()
        self.stdout.write(
            f"Imported {created + updated} periodic task(s) from django-celery-beat "
            f"({created} new, {updated} updated) and {len(made)} schedule(s)."
        )

    @staticmethod
    def _rows(
        source: Any, tables: set[str], table: str, wanted: tuple[str, ...]
    ) -> list[dict[str, Any]]:
        name = f"{PREFIX}{table}"
        if name not in tables:
            return []
        with source.cursor() as cursor:
            present = {c.name for c in source.introspection.get_table_description(cursor, name)}
            columns = ["id", *(c for c in wanted if c in present)]
            quote = source.ops.quote_name
            cursor.execute(
                f"SELECT {', '.join(quote(c) for c in columns)} FROM {quote(name)} ORDER BY id"
            )
            return [dict(zip(columns, r, strict=True)) for r in cursor.fetchall()]


def _schedule(model: Any, values: dict[str, Any]) -> Any:
    if model is SolarSchedule:  # (event, latitude, longitude) is unique
        row, _ = SolarSchedule.objects.get_or_create(**values)
        return row
    return model.objects.create(**values)


def _value(column: str, value: Any) -> Any:
    if value is None:
        return None
    if column in TIMES:
        return _time(value)
    if column in FLAGS:
        return bool(value)
    if column in ("latitude", "longitude"):
        return decimal.Decimal(str(value))
    if column == "timezone":
        return str(value) or "UTC"
    return value


def _time(value: Any) -> dt.datetime:
    when = parse_datetime(value) if isinstance(value, str) else value
    if not isinstance(when, dt.datetime):
        raise CommandError(f"not a date and time: {value!r}")
    if settings.USE_TZ and timezone.is_naive(when):  # stored in UTC, as Django stores times
        when = when.replace(tzinfo=dt.UTC)
    return when

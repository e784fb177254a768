"""Beat's store over the Django models: ``celeriac -A proj beat -S django``.

celeriac's beat (:mod:`celeriac.beat.service`) does the rest as for any store: one beat leads
(a lease in the result backend), each run is claimed before it is sent, and run state is
mirrored in the result backend. This store reads the enabled and disabled
:class:`~.models.PeriodicTask` rows as entries, looks at ``PeriodicTasks.last_update`` every
``beat_db_sync_interval`` seconds (3 by default) and reloads them when it moved, and writes each
run's ``last_run_at`` and ``total_run_count`` back without counting that as a change.

Entries of ``beat_schedule`` (and ``add_periodic_task``) are copied into the tables when beat
starts: their definitions are updated, their run state kept.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ....app import Celeriac
    from ....beat.entry import Entry

logger = logging.getLogger("celeriac.beat")


def setup_django() -> None:
    """``django.setup()`` unless done: beat opens its store before it imports the tasks."""
    import django
    from django.apps import apps

    if not apps.ready:
        django.setup()


class DatabaseScheduler:
    """A :class:`celeriac.beat.Store` over :class:`~.models.PeriodicTask` rows."""

    def __init__(self, app: Celeriac, *args: Any, **kwargs: Any) -> None:
        setup_django()
        from django.apps import apps
        from django.conf import settings

        if not apps.is_installed("celeriac.contrib.django.schedules"):
            from ....exceptions import ImproperlyConfigured

            raise ImproperlyConfigured(
                "beat -S django reads the models of celeriac.contrib.django.schedules: add it "
                "to INSTALLED_APPS and run manage.py migrate (docs/django.md)"
            )
        self.app = app
        self.sync_interval = float(app.conf.beat_db_sync_interval)
        database = settings.DATABASES["default"]
        self.where = f"Django database {database.get('NAME')} ({database.get('ENGINE')})"
        self._seen: dt.datetime | None = None
        self._checked = 0.0
        self._copied_config = False
        self._broken: set[str] = set()

    def entries(self) -> dict[str, Entry]:
        from django.db import close_old_connections

        from .models import SCHEDULE_FIELDS, PeriodicTask, PeriodicTasks

        close_old_connections()
        if not self._copied_config:
            copy_configured_entries(self.app)
            self._copied_config = True
        self._seen = PeriodicTasks.last_change()
        self._checked = time.monotonic()
        found: dict[str, Entry] = {}
        for row in PeriodicTask.objects.select_related(*SCHEDULE_FIELDS):
            try:
                found[row.name] = row.to_entry(self.app)
            except (ValueError, TypeError) as exc:  # a bad row does not hold up the others
                if row.name not in self._broken:
                    logger.warning("beat: periodic task %s skipped: %s", row.name, exc)
                self._broken.add(row.name)
            else:
                self._broken.discard(row.name)
        return found

    def changed(self) -> bool:
        if time.monotonic() - self._checked < self.sync_interval:
            return False
        from django.db import close_old_connections

        from .models import PeriodicTasks

        close_old_connections()
        self._checked = time.monotonic()
        return PeriodicTasks.last_change() != self._seen

    def save(self, entry: Entry) -> None:
        """Record a run (an ``update()``: no signal, so not a change beat reloads for)."""
        from .models import PeriodicTask

        values: dict[str, Any] = {
            "last_run_at": db_time(entry.last_run_at),
            "total_run_count": entry.total_run_count,
        }
        if not entry.enabled:  # a one-off or clocked task that ran turns itself off
            values["enabled"] = False
        PeriodicTask.objects.filter(name=entry.name).update(**values)

    def close(self) -> None:
        from django.db import connections

        connections.close_all()


def db_time(value: dt.datetime | None) -> dt.datetime | None:
    """``value`` as the database takes it (naive, in ``TIME_ZONE``, when ``USE_TZ`` is off)."""
    from django.conf import settings
    from django.utils import timezone

    if value is None or settings.USE_TZ or timezone.is_naive(value):
        return value
    return timezone.make_naive(value)


def schedule_row(sched: Any) -> Any:
    """A saved schedule row for a celeriac schedule (an existing equal one if any)."""
    from ....schedules import clocked, crontab, schedule, solar
    from ....schedules.base import tz_name
    from .models import ClockedSchedule, CrontabSchedule, IntervalSchedule, SolarSchedule

    if isinstance(sched, crontab):
        fields = sched.to_dict()
        row, _ = CrontabSchedule.objects.get_or_create(
            minute=fields["minute"],
            hour=fields["hour"],
            day_of_week=fields["day_of_week"],
            day_of_month=fields["day_of_month"],
            month_of_year=fields["month_of_year"],
            timezone=tz_name(sched.tz) or "UTC",
        )
        return row
    if isinstance(sched, solar):
        row, _ = SolarSchedule.objects.get_or_create(
            event=sched.event, latitude=round(sched.lat, 6), longitude=round(sched.lon, 6)
        )
        return row
    if isinstance(sched, clocked):
        row, _ = ClockedSchedule.objects.get_or_create(clocked_time=db_time(sched.run_at))
        return row
    if isinstance(sched, schedule):
        micro = round(sched.seconds * 1_000_000)
        every, period = (
            (micro // 1_000_000, "seconds") if micro % 1_000_000 == 0 else (micro, "microseconds")
        )
        row = IntervalSchedule.objects.filter(every=every, period=period).first()
        return row or IntervalSchedule.objects.create(every=every, period=period)
    raise TypeError(f"a {type(sched).__name__} schedule cannot be kept in the Django tables")


def copy_configured_entries(app: Celeriac) -> None:
    """Create or update a row for each ``beat_schedule`` entry (run state kept)."""
    from ....beat.entry import configured_entries
    from .models import SCHEDULE_FIELDS, PeriodicTask

    for entry in configured_entries(app).values():
        kind = type(entry.schedule).__name__
        field = {"schedule": "interval"}.get(kind, kind)
        options = dict(entry.options)
        defaults: dict[str, Any] = {f: None for f in SCHEDULE_FIELDS}
        defaults[field] = schedule_row(entry.schedule)
        defaults.update(
            task=entry.task,
            args=_json(entry.args),
            kwargs=_json(entry.kwargs),
            queue=options.pop("queue", None),
            exchange=options.pop("exchange", None),
            routing_key=options.pop("routing_key", None),
            priority=options.pop("priority", None),
            headers=_json(options.pop("headers", None) or {}),
            one_off=entry.one_off,
            start_time=db_time(entry.start_time),
            expires=db_time(entry.expires),
            enabled=entry.enabled,
        )
        expires = options.pop("expires", None)
        if isinstance(expires, int | float):
            defaults["expire_seconds"] = int(expires)
        if options:
            logger.warning(
                "beat: %s: option(s) %s have no column in the Django tables; not kept",
                entry.name,
                ", ".join(sorted(options)),
            )
        PeriodicTask.objects.update_or_create(name=entry.name, defaults=defaults)


def _json(value: Any) -> str:
    import json

    return json.dumps(value, default=str)

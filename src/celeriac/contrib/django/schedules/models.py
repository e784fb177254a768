"""Periodic tasks as Django models, with django-celery-beat's model and field names.

A :class:`PeriodicTask` names a task, its arguments and message options, and exactly one
schedule: an :class:`IntervalSchedule`, a :class:`CrontabSchedule` (with its time zone), a
:class:`SolarSchedule` or a :class:`ClockedSchedule`. Every change to these rows (a save or a
delete, through the admin or the ORM) moves :class:`PeriodicTasks`' ``last_update``, which is
all a running beat polls (:mod:`.scheduler`). ``QuerySet.update()`` sends no signals: call
``PeriodicTasks.update_changed()`` after one.

Times are kept as Django keeps them (aware, in UTC, with ``USE_TZ = True``); a naive time is
read in Django's ``TIME_ZONE``.
"""

from __future__ import annotations

import datetime as dt
import json
import zoneinfo
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import signals as model_signals
from django.utils import timezone as dj_timezone
from django.utils.deconstruct import deconstructible

from ....schedules import clocked, crontab, schedule, solar
from ....utils import solar as _solar

if TYPE_CHECKING:
    from ....app import Celeriac
    from ....beat.entry import Entry

PERIODS = ["days", "hours", "minutes", "seconds", "microseconds"]
PERIOD_CHOICES = [(p, p.capitalize()) for p in PERIODS]
SOLAR_EVENTS = [(e, e.replace("_", " ").capitalize()) for e in sorted(_solar.EVENTS)]


def aware(value: dt.datetime) -> dt.datetime:
    """``value``, a naive time being read in Django's ``TIME_ZONE``."""
    if dj_timezone.is_naive(value):
        return dj_timezone.make_aware(value)
    return value


def default_timezone() -> str:
    """A new crontab's zone: ``CELERY_TIMEZONE``, else Django's ``TIME_ZONE``, else UTC."""
    name = getattr(settings, "CELERY_TIMEZONE", None) or getattr(settings, "TIME_ZONE", None)
    return str(name or "UTC")


def validate_timezone(value: str) -> None:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValidationError(f"{value!r} is not a known time zone (e.g. Europe/Paris)") from None


@deconstructible
class CronFieldValidator:
    """Checks one crontab field as beat will read it (``crontab minute: 61 is out of ...``)."""

    def __init__(self, field: str) -> None:
        self.field = field

    def __call__(self, value: str) -> None:
        try:
            fields: dict[str, Any] = {self.field: value}
            crontab(**fields)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CronFieldValidator) and other.field == self.field

    def __hash__(self) -> int:
        return hash(self.field)


def validate_json(value: str, kind: type) -> None:
    try:
        decoded = json.loads(value or ("[]" if kind is list else "{}"))
    except ValueError as exc:
        raise ValidationError(f"not JSON: {exc}") from None
    if not isinstance(decoded, kind):
        raise ValidationError(f"must be a JSON {'list' if kind is list else 'object'}")


def validate_json_list(value: str) -> None:
    validate_json(value, list)


def validate_json_object(value: str) -> None:
    validate_json(value, dict)


class IntervalSchedule(models.Model):
    """Every ``every`` ``period`` (e.g. every 10 seconds)."""

    DAYS, HOURS, MINUTES, SECONDS, MICROSECONDS = PERIODS
    PERIOD_CHOICES = PERIOD_CHOICES

    every = models.IntegerField(
        validators=[MinValueValidator(1)], help_text="How many periods between two runs"
    )
    period = models.CharField(max_length=24, choices=PERIOD_CHOICES)

    class Meta:
        verbose_name = "interval"
        verbose_name_plural = "intervals"
        ordering = ["period", "every"]

    @property
    def schedule(self) -> schedule:
        return schedule(dt.timedelta(**{self.period: self.every}))

    def __str__(self) -> str:
        try:
            return self.schedule.human()
        except (TypeError, ValueError):
            return f"every {self.every} {self.period}"


class CrontabSchedule(models.Model):
    """Cron fields, read as wall-clock times in ``timezone``."""

    minute = models.CharField(
        max_length=240, default="*", validators=[CronFieldValidator("minute")]
    )
    hour = models.CharField(max_length=96, default="*", validators=[CronFieldValidator("hour")])
    day_of_week = models.CharField(
        max_length=64, default="*", validators=[CronFieldValidator("day_of_week")]
    )
    day_of_month = models.CharField(
        max_length=124, default="*", validators=[CronFieldValidator("day_of_month")]
    )
    month_of_year = models.CharField(
        max_length=64, default="*", validators=[CronFieldValidator("month_of_year")]
    )
    timezone = models.CharField(
        max_length=63, default=default_timezone, validators=[validate_timezone]
    )

    class Meta:
        verbose_name = "crontab"
        verbose_name_plural = "crontabs"
        ordering = ["month_of_year", "day_of_month", "day_of_week", "hour", "minute", "timezone"]

    @property
    def schedule(self) -> crontab:
        return crontab(
            minute=self.minute,
            hour=self.hour,
            day_of_week=self.day_of_week,
            day_of_month=self.day_of_month,
            month_of_year=self.month_of_year,
            tz=self.timezone or "UTC",
        )

    def clean(self) -> None:
        try:
            self.schedule  # noqa: B018  (fields that are fine alone may never meet)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None

    def __str__(self) -> str:
        fields = (self.minute, self.hour, self.day_of_month, self.month_of_year, self.day_of_week)
        return f"{' '.join(fields)} (m h dom mon dow) {self.timezone}"


class SolarSchedule(models.Model):
    """At a solar event (sunrise, sunset, ...) seen from a place."""

    event = models.CharField(max_length=24, choices=SOLAR_EVENTS)
    latitude = models.DecimalField(
        max_digits=9,
        decimal_places=6,
        validators=[MinValueValidator(-90), MaxValueValidator(90)],
    )
    longitude = models.DecimalField(
        max_digits=9,
        decimal_places=6,
        validators=[MinValueValidator(-180), MaxValueValidator(180)],
    )

    class Meta:
        verbose_name = "solar event"
        verbose_name_plural = "solar events"
        ordering = ["event", "latitude", "longitude"]
        unique_together = [("event", "latitude", "longitude")]

    @property
    def schedule(self) -> solar:
        return solar(self.event, float(self.latitude), float(self.longitude))

    def __str__(self) -> str:
        return f"{self.event.replace('_', ' ')} at ({self.latitude}, {self.longitude})"


class ClockedSchedule(models.Model):
    """Once, at ``clocked_time``."""

    clocked_time = models.DateTimeField(help_text="When to run the task (once)")

    class Meta:
        verbose_name = "clocked"
        verbose_name_plural = "clocked"
        ordering = ["clocked_time"]

    @property
    def schedule(self) -> clocked:
        return clocked(aware(self.clocked_time))

    def __str__(self) -> str:
        return self.schedule.human() if self.clocked_time else "once"


class PeriodicTasks(models.Model):
    """One row (``ident`` 1) whose ``last_update`` moves on every change to the schedule."""

    ident = models.SmallIntegerField(default=1, primary_key=True, unique=True)
    last_update = models.DateTimeField()

    class Meta:
        verbose_name = "change marker"

    @classmethod
    def update_changed(cls, **_: Any) -> None:
        """Record that the periodic tasks changed (beat reloads them)."""
        cls.objects.update_or_create(ident=1, defaults={"last_update": dj_timezone.now()})

    @classmethod
    def last_change(cls) -> dt.datetime | None:
        row = cls.objects.filter(ident=1).first()
        return row.last_update if row is not None else None


#: the schedule foreign keys of a PeriodicTask, in the order they are looked at
SCHEDULE_FIELDS = ("interval", "crontab", "solar", "clocked")


class PeriodicTask(models.Model):
    """One periodic task: what to send, on which schedule (exactly one), and its runs."""

    name = models.CharField(max_length=200, unique=True, help_text="A name for this entry")
    task = models.CharField(
        max_length=200, verbose_name="task name", help_text="e.g. proj.tasks.import_contacts"
    )
    interval = models.ForeignKey(IntervalSchedule, on_delete=models.CASCADE, null=True, blank=True)
    crontab = models.ForeignKey(CrontabSchedule, on_delete=models.CASCADE, null=True, blank=True)
    solar = models.ForeignKey(SolarSchedule, on_delete=models.CASCADE, null=True, blank=True)
    clocked = models.ForeignKey(ClockedSchedule, on_delete=models.CASCADE, null=True, blank=True)
    args = models.TextField(
        blank=True,
        default="[]",
        validators=[validate_json_list],
        help_text='Positional arguments as a JSON list, e.g. ["a", 1]',
    )
    kwargs = models.TextField(
        blank=True,
        default="{}",
        validators=[validate_json_object],
        help_text='Keyword arguments as a JSON object, e.g. {"kind": "daily"}',
    )
    queue = models.CharField(
        max_length=200, blank=True, null=True, default=None, help_text="Empty: the task's own"
    )
    exchange = models.CharField(max_length=200, blank=True, null=True, default=None)
    routing_key = models.CharField(max_length=200, blank=True, null=True, default=None)
    headers = models.TextField(
        blank=True,
        default="{}",
        validators=[validate_json_object],
        help_text="Message headers as a JSON object",
    )
    priority = models.PositiveIntegerField(
        default=None, blank=True, null=True, validators=[MaxValueValidator(255)]
    )
    expires = models.DateTimeField(
        blank=True, null=True, help_text="No run is sent after this time"
    )
    expire_seconds = models.PositiveIntegerField(
        blank=True,
        null=True,
        help_text="A run still waiting this many seconds after it is sent is discarded",
    )
    one_off = models.BooleanField(default=False, help_text="Run once, then disable")
    start_time = models.DateTimeField(blank=True, null=True, help_text="No run before this time")
    enabled = models.BooleanField(default=True)
    last_run_at = models.DateTimeField(editable=False, blank=True, null=True)
    total_run_count = models.PositiveIntegerField(default=0, editable=False)
    date_changed = models.DateTimeField(auto_now=True)
    description = models.TextField(blank=True)

    class Meta:
        verbose_name = "periodic task"
        verbose_name_plural = "periodic tasks"
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name}: {self.schedule_text()}"

    # -- the schedule -------------------------------------------------------------------------

    def schedule_row(self) -> models.Model | None:
        """The one schedule row this task uses (None if none is set)."""
        for field in SCHEDULE_FIELDS:
            if getattr(self, f"{field}_id") is not None:
                row: models.Model = getattr(self, field)
                return row
        return None

    @property
    def schedule(self) -> Any:
        """The celeriac schedule (``schedule``, ``crontab``, ``solar`` or ``clocked``)."""
        row = self.schedule_row()
        if row is None:
            raise ValueError(f"periodic task {self.name!r} has no schedule")
        return row.schedule  # every schedule model has one

    def schedule_text(self) -> str:
        """The schedule in words, e.g. ``at 07:30 on Monday (Europe/London)``."""
        try:
            sched = self.schedule
        except (ValueError, TypeError) as exc:
            return f"invalid: {exc}"
        text = str(sched.human())
        if isinstance(sched, crontab) and self.crontab is not None:
            text += f" ({self.crontab.timezone})"
        return text

    def next_run_at(self, now: dt.datetime | None = None) -> dt.datetime | None:
        """When beat will send it next (None: disabled, expired, finished or never)."""
        if not self.enabled:
            return None
        now = now or dj_timezone.now()
        try:
            sched = self.schedule
        except (ValueError, TypeError):
            return None
        after = aware(self.last_run_at) if self.last_run_at else None
        if after is None:
            if isinstance(sched, schedule | clocked):  # due at once (clocked: at its time)
                nxt = sched.run_at if isinstance(sched, clocked) else now
            else:
                nxt = sched.next_run_after(now)
        else:
            nxt = sched.next_run_after(after)
        if self.start_time and nxt < aware(self.start_time):
            nxt = (
                aware(self.start_time)
                if after is None
                else sched.next_run_after(aware(self.start_time))
            )
        if nxt.timestamp() - now.timestamp() > 1e8 or (self.expires and nxt >= aware(self.expires)):
            return None  # a clocked task that ran, or past its expiry
        return nxt

    def clean(self) -> None:
        chosen = [f for f in SCHEDULE_FIELDS if getattr(self, f"{f}_id") is not None]
        if len(chosen) != 1:
            message = "Choose exactly one schedule: interval, crontab, solar or clocked."
            raise ValidationError({f: message for f in SCHEDULE_FIELDS})

    # -- for beat -----------------------------------------------------------------------------

    def options(self) -> dict[str, Any]:
        """The message options beat sends the task with."""
        options: dict[str, Any] = {}
        for field in ("queue", "exchange", "routing_key", "priority"):
            value = getattr(self, field)
            if value not in (None, ""):
                options[field] = value
        if self.expire_seconds:
            options["expires"] = float(self.expire_seconds)
        headers = json.loads(self.headers or "{}")
        if headers:
            options["headers"] = headers
        return options

    def to_entry(self, app: Celeriac | None = None) -> Entry:
        """This task as an entry of celeriac's beat (its run state included)."""
        from ....beat.entry import Entry

        sched = self.schedule
        sched.app = app
        return Entry(
            name=self.name,
            task=self.task,
            schedule=sched,
            args=list(json.loads(self.args or "[]")),
            kwargs=dict(json.loads(self.kwargs or "{}")),
            options=self.options(),
            enabled=self.enabled,
            one_off=self.one_off,
            start_time=aware(self.start_time) if self.start_time else None,
            expires=aware(self.expires) if self.expires else None,
            last_run_at=aware(self.last_run_at) if self.last_run_at else None,
            total_run_count=self.total_run_count,
        )


_TRACKED = (PeriodicTask, IntervalSchedule, CrontabSchedule, SolarSchedule, ClockedSchedule)


def connect_change_tracking() -> None:
    """Move ``PeriodicTasks.last_update`` on every save and delete of a tracked model."""
    for model in _TRACKED:
        for signal in (model_signals.post_save, model_signals.post_delete):
            signal.connect(
                PeriodicTasks.update_changed,
                sender=model,
                dispatch_uid=f"celeriac.schedules.{model.__name__}.{id(signal)}",
            )

"""Periodic schedules for beat: ``schedule``, ``crontab``, ``solar`` and ``clocked``.

Every schedule answers ``is_due(last_run_at) -> schedstate(is_due, next)`` where ``next`` is
the number of seconds until it should be asked again, and ``next_run_after(dt)``: the first
run strictly after ``dt``, an aware datetime in the schedule's zone (:attr:`BaseSchedule.tz`).

Conventions
    * ``last_run_at`` may be an aware datetime, a naive datetime (read as wall-clock time in
      the schedule's zone: the first occurrence when ambiguous, the end of the gap when it does
      not exist; with the default settings that zone is UTC, as with Celery's ``enable_utc``)
      or UNIX seconds.  Internally all comparisons are made on real (UTC) time.
    * ``last_run_at=None`` means "never ran": an interval schedule and a due clocked schedule
      are due at once; a crontab or solar schedule is not due until its next time after the
      moment the schedule object was first asked (remembered on the object).  Beat should store
      the entry's creation time as its first ``last_run_at`` rather than rely on that.
    * Crontab times are wall-clock times in the schedule's zone.  A time that does not exist
      (spring forward, e.g. 02:30 when clocks jump from 02:00 to 03:00) runs once, at the first
      instant after the gap (03:00 local); several such times collapse into that single run.  A
      time that occurs twice (fall back) runs only at its first occurrence: jobs such as
      ``*/15`` run through the first pass of the repeated hour and are silent during the second,
      so no job ever runs twice for the same wall-clock time.
    * ``day_of_month`` and ``day_of_week`` must both match (as in Celery, unlike Vixie cron).
"""

from __future__ import annotations

import calendar
import datetime as dt
import math
import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, overload

from .utils import solar as _solar
from .utils.time import get_timezone

if TYPE_CHECKING:
    from .app import Celeriac

__all__ = ["NEVER", "BaseSchedule", "clocked", "crontab", "maybe_schedule", "schedstate"]
__all__ += ["schedule", "schedule_from_dict", "solar"]

#: ``next`` (seconds) reported by schedules that will never be due again.
NEVER = 1e9

_MINUTE = dt.timedelta(minutes=1)
_ALIASES = {"run_every": "every", "lat": "latitude", "lon": "longitude", "tz": "timezone"}
LastRun = dt.datetime | float | int | None


class schedstate(NamedTuple):
    """Result of :meth:`BaseSchedule.is_due`: due now?, and seconds until the next check."""

    is_due: bool
    next: float


def _tz_from(value: str | dt.tzinfo | None) -> dt.tzinfo | None:
    if value is None or isinstance(value, dt.tzinfo):
        return value
    m = re.fullmatch(r"(?:UTC)?([+-])(\d\d):?(\d\d)", value)
    if m:
        sign = -1 if m.group(1) == "-" else 1
        return dt.timezone(sign * dt.timedelta(hours=int(m.group(2)), minutes=int(m.group(3))))
    try:
        return get_timezone(value)
    except Exception:
        raise ValueError(f"unknown time zone {value!r}") from None


def _tz_name(tz: dt.tzinfo | None) -> str | None:
    if tz is None:
        return None
    if tz is dt.UTC:
        return "UTC"
    key = getattr(tz, "key", None)
    if isinstance(key, str):
        return key
    if isinstance(tz, dt.timezone):
        off = tz.utcoffset(None)
        sign = "-" if off < dt.timedelta(0) else "+"
        minutes = abs(int(off.total_seconds())) // 60
        return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"
    raise ValueError(f"time zone {tz!r} cannot be stored; use a zoneinfo name")


def _until(later: dt.datetime, earlier: dt.datetime) -> float:
    """Real seconds between aware datetimes (``-`` and ``<`` ignore ``fold`` within a zone)."""
    return later.timestamp() - earlier.timestamp()


def _resolve_wall(wall: dt.datetime, tz: dt.tzinfo) -> dt.datetime:
    """Naive wall-clock time in ``tz`` -> aware instant: the first occurrence of a repeated
    time, the end of the gap (first valid instant) for a time that does not exist."""
    first = wall.replace(tzinfo=tz, fold=0).astimezone(dt.UTC).astimezone(tz)
    if first.replace(tzinfo=None) == wall:
        return first
    # In a gap: fold=1 reads it with the later offset (earlier instant), fold=0 with the
    # earlier offset (later instant); the transition lies in between.
    after = wall.replace(tzinfo=tz, fold=1).utcoffset()
    lo = math.floor(wall.replace(tzinfo=tz, fold=1).timestamp())
    hi = math.ceil(wall.replace(tzinfo=tz, fold=0).timestamp())
    while lo < hi:
        mid = (lo + hi) // 2
        if dt.datetime.fromtimestamp(mid, tz).utcoffset() == after:
            hi = mid
        else:
            lo = mid + 1
    return dt.datetime.fromtimestamp(lo, tz)


class BaseSchedule:
    """Common machinery: time zone, clock, ``is_due`` and dict (JSON) conversion.

    ``app`` supplies the default zone (``app.timezone``); ``nowfun`` replaces the clock (it
    returns a datetime, naive ones being in :attr:`tz`); ``tz`` (a zone name or tzinfo) gives
    the schedule its own zone."""

    type_name: ClassVar[str] = ""
    _registry: ClassVar[dict[str, type[BaseSchedule]]] = {}

    def __init__(
        self,
        *,
        nowfun: Callable[[], dt.datetime] | None = None,
        app: Celeriac | None = None,
        tz: str | dt.tzinfo | None = None,
    ) -> None:
        self.nowfun = nowfun
        self.app = app
        self._tz = _tz_from(tz)
        self._anchor: dt.datetime | None = None

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if cls.__dict__.get("type_name"):  # its own name: a user's subclass takes no other's
            BaseSchedule._registry[cls.type_name] = cls

    @property
    def tz(self) -> dt.tzinfo:
        """The schedule's own zone if given, else ``app.timezone``, else UTC."""
        if self._tz is not None:
            return self._tz
        if self.app is not None:
            return self.app.timezone
        return dt.UTC

    def now(self) -> dt.datetime:
        """The current time, aware, in :attr:`tz`."""
        if self.nowfun is None:
            return dt.datetime.now(self.tz)
        return self.to_aware(self.nowfun())

    def to_aware(self, value: dt.datetime | float | int) -> dt.datetime:
        """UNIX seconds or a datetime (naive = wall time in :attr:`tz`) -> aware, in :attr:`tz`."""
        if isinstance(value, int | float):
            return dt.datetime.fromtimestamp(value, self.tz)
        if value.tzinfo is None:
            return _resolve_wall(value.replace(fold=0), self.tz)
        return value.astimezone(self.tz)

    def _reference(self, last_run_at: LastRun) -> dt.datetime:
        """``last_run_at`` made aware; for ``None``, when this object was first asked."""
        if last_run_at is not None:
            return self.to_aware(last_run_at)
        if self._anchor is None:
            self._anchor = self.now()
        return self._anchor

    def next_run_after(self, when: dt.datetime) -> dt.datetime:
        """The first run strictly after ``when`` (aware, in :attr:`tz`)."""
        raise NotImplementedError

    def remaining_estimate(self, last_run_at: LastRun) -> dt.timedelta:
        """Time from now until the run following ``last_run_at`` (negative when overdue)."""
        return dt.timedelta(
            seconds=_until(self.next_run_after(self._reference(last_run_at)), self.now())
        )

    def is_due(self, last_run_at: LastRun) -> schedstate:
        """Due when the first run after ``last_run_at`` has come; ``next`` is the number of
        seconds until the next run after now (when due) or until the pending run."""
        now = self.now()
        pending = self.next_run_after(self._reference(last_run_at))
        if _until(pending, now) <= 0:
            return schedstate(True, max(_until(self.next_run_after(now), now), 0.0))
        return schedstate(False, _until(pending, now))

    def human(self) -> str:
        """A short English description."""
        raise NotImplementedError

    def _fields(self) -> dict[str, Any]:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict with a ``"type"`` key; :func:`schedule_from_dict` reverses it."""
        return {"type": self.type_name, **self._fields(), "timezone": _tz_name(self._tz)}

    @classmethod
    def from_dict(cls, data: dict[str, Any], app: Celeriac | None = None) -> BaseSchedule:
        """Rebuild a schedule from :meth:`to_dict` output (dispatching on ``"type"``).  Missing
        optional keys take their defaults; Celery's attribute names (``run_every``, ``lat``,
        ``lon``, ``tz``) are accepted for ``every``, ``latitude``, ``longitude``, ``timezone``."""
        data = {_ALIASES.get(k, k): v for k, v in data.items()}
        kind = data.get("type")
        target = BaseSchedule._registry.get(kind) if isinstance(kind, str) else None
        if target is None or (cls is not BaseSchedule and not issubclass(target, cls)):
            raise ValueError(f"unknown schedule type {kind!r}")
        return target._from_fields(data, app)

    @classmethod
    def _from_fields(cls, data: dict[str, Any], app: Celeriac | None) -> BaseSchedule:
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, BaseSchedule)
        return self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(repr(sorted(self.to_dict().items())))


def schedule_from_dict(data: dict[str, Any], app: Celeriac | None = None) -> BaseSchedule:
    """Rebuild any schedule from its :meth:`~BaseSchedule.to_dict` form."""
    return BaseSchedule.from_dict(data, app)


# -- interval -----------------------------------------------------------------------------

_UNITS = (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1))


class schedule(BaseSchedule):
    """Run every ``run_every`` (seconds or timedelta).

    Due when ``now >= last_run_at + run_every``; never-run entries are due at once.  With
    ``relative=True`` the next run is rounded down to the resolution of ``run_every`` (days,
    hours, minutes or seconds, in wall-clock time of :attr:`tz`): hourly runs land on the hour."""

    type_name = "schedule"

    def __init__(
        self,
        run_every: float | dt.timedelta,
        relative: bool = False,
        app: Celeriac | None = None,
        *,
        nowfun: Callable[[], dt.datetime] | None = None,
        tz: str | dt.tzinfo | None = None,
    ) -> None:
        super().__init__(nowfun=nowfun, app=app, tz=tz)
        if not isinstance(run_every, dt.timedelta):
            run_every = dt.timedelta(seconds=run_every)
        if run_every <= dt.timedelta(0):
            raise ValueError(f"schedule run_every: {run_every} is not positive")
        self.run_every = run_every
        self.relative = relative

    @property
    def seconds(self) -> float:
        """``run_every`` in seconds."""
        return self.run_every.total_seconds()

    def next_run_after(self, when: dt.datetime) -> dt.datetime:
        """``when + run_every``, rounded down to its resolution when ``relative``."""
        when = self.to_aware(when)
        nxt = (when.astimezone(dt.UTC) + self.run_every).astimezone(self.tz)
        if not self.relative:
            return nxt
        wall = nxt.replace(tzinfo=None, microsecond=0)
        if self.seconds >= 86400:
            wall = wall.replace(hour=0, minute=0, second=0)
        elif self.seconds >= 3600:
            wall = wall.replace(minute=0, second=0)
        elif self.seconds >= 60:
            wall = wall.replace(second=0)
        rounded = _resolve_wall(wall, self.tz)
        return rounded if _until(rounded, when) > 0 else nxt

    def is_due(self, last_run_at: LastRun) -> schedstate:
        """Due once ``run_every`` has passed since ``last_run_at`` (or at once for ``None``);
        ``next`` is the remaining time, or ``run_every`` when due."""
        if last_run_at is None:
            return schedstate(True, self.seconds)
        remaining = self.remaining_estimate(last_run_at).total_seconds()
        if remaining <= 0:
            return schedstate(True, self.seconds)
        return schedstate(False, remaining)

    def remaining_estimate(self, last_run_at: LastRun) -> dt.timedelta:
        """Time until the run after ``last_run_at`` (zero for ``None``, negative if overdue)."""
        if last_run_at is None:
            return dt.timedelta(0)
        return super().remaining_estimate(last_run_at)

    def human(self) -> str:
        """E.g. ``"every 15 minutes"``, ``"every hour"``, ``"every 2.5 seconds"``."""
        secs = self.seconds
        for unit, size in _UNITS:
            if secs >= size and secs % size == 0:
                count = int(secs // size)
                return f"every {unit}" if count == 1 else f"every {count} {unit}s"
        return f"every {secs:g} seconds"

    def _fields(self) -> dict[str, Any]:
        return {"every": self.seconds, "relative": self.relative}

    @classmethod
    def _from_fields(cls, data: dict[str, Any], app: Celeriac | None) -> schedule:
        every, relative = float(data["every"]), bool(data.get("relative"))
        return cls(every, relative, app=app, tz=data.get("timezone"))

    def __repr__(self) -> str:
        return f"<schedule: {self.human()}{' (relative)' if self.relative else ''}>"


# -- crontab ------------------------------------------------------------------------------

_DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August"]
_MONTHS += ["September", "October", "November", "December"]


def _names(words: list[str], first: int) -> dict[str, int]:
    return {w.lower()[:size]: i + first for i, w in enumerate(words) for size in (3, len(w))}


#: field -> (low, high, names -> numbers)
_FIELDS: dict[str, tuple[int, int, dict[str, int]]] = {
    "minute": (0, 59, {}),
    "hour": (0, 23, {}),
    "day_of_week": (0, 7, _names(_DAYS, 0)),
    "day_of_month": (1, 31, {}),
    "month_of_year": (1, 12, _names(_MONTHS, 1)),
}
_MAX_DAYS = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
_SHORTCUTS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
CronField = str | int | Iterable[int]


def _parse_field(name: str, value: CronField) -> tuple[frozenset[int], str]:
    """One crontab field -> (set of values, canonical text)."""
    low, high, names = _FIELDS[name]
    top = 6 if name == "day_of_week" else high  # 7 (Sunday again) only when written

    def number(token: str) -> int:
        token = token.strip().lower()
        if token in names:
            return names[token]
        if not token.isdigit():
            raise ValueError(f"crontab {name}: invalid value {token!r}")
        return check(int(token))

    def check(n: int) -> int:
        if not low <= n <= high:
            raise ValueError(f"crontab {name}: {n} is out of range {low}-{high}")
        return n

    if isinstance(value, bool):
        raise ValueError(f"crontab {name}: invalid value {value!r}")
    if isinstance(value, int):
        values = {check(value)}
        text = str(value)
    elif isinstance(value, str):
        text = value.strip()
        values = set()
        for part in text.split(","):
            base, slash, step_text = part.strip().partition("/")
            step = 1
            if slash:
                if not step_text.strip().isdigit() or int(step_text) == 0:
                    raise ValueError(f"crontab {name}: invalid step in {part.strip()!r}")
                step = int(step_text)
            start_text, dash, end_text = base.partition("-")
            if base.strip() == "*":
                span = list(range(low, top + 1))
            elif dash:
                first, last = number(start_text), number(end_text)
                if last >= first:
                    span = list(range(first, last + 1))
                else:  # wraps around, e.g. fri-mon or 22-2
                    span = list(range(first, top + 1)) + list(range(low, last + 1))
            else:
                first = number(base)
                span = list(range(first, top + 1)) if slash else [first]
            values.update(span[::step])
    else:
        items = list(value) if isinstance(value, Iterable) else [value]
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in items):
            raise ValueError(f"crontab {name}: invalid value {value!r}")
        values = {check(v) for v in items}
        text = ",".join(str(v) for v in sorted(values))
    if name == "day_of_week" and 7 in values:
        values = (values - {7}) | {0}
    if not values or not text:
        raise ValueError(f"crontab {name}: empty value {value!r}")
    return frozenset(values), text


def _runs(values: list[int], words: list[str] | None, first: int) -> str:
    """[1, 2, 3, 5] -> "Monday-Wednesday, Friday" (or "1-3, 5" without words)."""
    groups: list[list[int]] = []
    for v in values:
        if groups and v == groups[-1][-1] + 1:
            groups[-1].append(v)
        else:
            groups.append([v])

    def name(v: int) -> str:
        return words[v - first] if words else str(v)

    return ", ".join(
        f"{name(g[0])}-{name(g[-1])}" if len(g) > 2 else ", ".join(map(name, g)) for g in groups
    )


class crontab(BaseSchedule):
    """Run at the wall-clock times matching cron fields, in :attr:`tz`.

    Every field takes ``*``, a number or name, ``a-b`` (wrapping, e.g. ``fri-mon``), steps
    (``*/15``, ``1-10/2``, ``5/10`` = 5-max/10), comma lists of those, an int or an iterable of
    ints.  Days: ``sun``..``sat`` (0-6, 7 is also Sunday); months: ``jan``..``dec`` (1-12);
    names are case-insensitive.  ``day_of_month`` and ``day_of_week`` must *both* match.
    See the module docstring for daylight-saving rules.  Invalid fields raise ``ValueError``."""

    type_name = "crontab"
    _ORDER = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")

    def __init__(
        self,
        minute: CronField = "*",
        hour: CronField = "*",
        day_of_week: CronField = "*",
        day_of_month: CronField = "*",
        month_of_year: CronField = "*",
        tz: str | dt.tzinfo | None = None,
        app: Celeriac | None = None,
        *,
        nowfun: Callable[[], dt.datetime] | None = None,
    ) -> None:
        super().__init__(nowfun=nowfun, app=app, tz=tz)
        self._text: dict[str, str] = {}
        self.minute, self._text["minute"] = _parse_field("minute", minute)
        self.hour, self._text["hour"] = _parse_field("hour", hour)
        self.day_of_week, self._text["day_of_week"] = _parse_field("day_of_week", day_of_week)
        self.day_of_month, self._text["day_of_month"] = _parse_field("day_of_month", day_of_month)
        self.month_of_year, self._text["month_of_year"] = _parse_field(
            "month_of_year", month_of_year
        )
        if not any(d <= _MAX_DAYS[m - 1] for m in self.month_of_year for d in self.day_of_month):
            raise ValueError(
                f"crontab day_of_month: {self._text['day_of_month']} never occurs in "
                f"month_of_year {self._text['month_of_year']}"
            )
        self._minutes = sorted(self.minute)
        self._hours = sorted(self.hour)
        self._days = sorted(self.day_of_month)
        self._months = sorted(self.month_of_year)

    @classmethod
    def from_string(
        cls, expr: str, tz: str | dt.tzinfo | None = None, app: Celeriac | None = None
    ) -> crontab:
        """Standard five-field cron text: ``"minute hour day_of_month month day_of_week"``
        (``"30 7 * * 1"``), or ``@hourly``/``@daily``/``@midnight``/``@weekly``/``@monthly``/
        ``@yearly``/``@annually``."""
        text = _SHORTCUTS.get(expr.strip().lower(), expr)
        parts = text.split()
        if len(parts) != 5:
            raise ValueError(f"crontab: expected 5 fields in {expr!r}, got {len(parts)}")
        minute, hour, dom, month, dow = parts
        return cls(minute, hour, dow, dom, month, tz=tz, app=app)

    def _first_time(self, hour: int, minute: int) -> tuple[int, int] | None:
        for h in self._hours:
            if h < hour:
                continue
            for m in self._minutes:
                if h > hour or m >= minute:
                    return h, m
        return None

    def _next_wall(self, start: dt.datetime) -> dt.datetime:
        """First matching naive wall time ``>= start`` (minute precision), walking fields."""
        year, month, day = start.year, start.month, start.day
        hour, minute = start.hour, start.minute
        limit = year + 401  # the Gregorian calendar repeats every 400 years
        while year <= limit:
            if month in self.month_of_year:
                ndays = calendar.monthrange(year, month)[1]
                for d in self._days:
                    if d < day:
                        continue
                    if d > ndays:
                        break
                    if (dt.date(year, month, d).weekday() + 1) % 7 in self.day_of_week:
                        found = self._first_time(*((hour, minute) if d == day else (0, 0)))
                        if found is not None:
                            return dt.datetime(year, month, d, *found)
            later = [m for m in self._months if m > month]
            if later:
                month = later[0]
            else:
                year, month = year + 1, self._months[0]
            day, hour, minute = 1, 0, 0
        raise ValueError(f"{self!r} never runs")  # pragma: no cover - excluded at __init__

    def next_run_after(self, when: dt.datetime) -> dt.datetime:
        """The first matching time strictly after ``when`` (aware, in :attr:`tz`)."""
        when = self.to_aware(when)
        start = when.replace(tzinfo=None, second=0, microsecond=0, fold=0) + _MINUTE
        while True:
            wall = self._next_wall(start)
            instant = _resolve_wall(wall, self.tz)
            if _until(instant, when) > 0:  # else: second pass of a repeated hour, already ran
                return instant
            start = wall + _MINUTE

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, crontab):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def _key(self) -> tuple[Any, ...]:
        sets = (self.minute, self.hour, self.day_of_week, self.day_of_month, self.month_of_year)
        return (*sets, _tz_name(self._tz))

    def human(self) -> str:
        """E.g. ``"at 07:30 on Monday"``, ``"every 15 minutes"``, ``"at 08:00"``."""
        t = self._text
        minutes, hours = self._minutes, self._hours
        if len(hours) == 24 and len(minutes) == 60:
            when = "every minute"
        elif len(hours) == 24 and re.fullmatch(r"(\*|0)/(2|3|4|5|6|10|12|15|20|30)", t["minute"]):
            when = f"every {t['minute'].split('/')[1]} minutes"
        elif len(hours) == 24 and len(minutes) == 1:
            when = "every hour" if minutes[0] == 0 else f"every hour at minute {minutes[0]}"
        elif len(hours) * len(minutes) <= 4:
            when = "at " + ", ".join(f"{h:02d}:{m:02d}" for h in hours for m in minutes)
        else:
            hour = "every hour" if len(hours) == 24 else f"hour {t['hour']}"
            when = f"at minute {t['minute']} of {hour}"
        if len(self.day_of_week) < 7:
            when += " on " + _runs(sorted(self.day_of_week), _DAYS, 0)
        if len(self._days) < 31:
            plural = "s" if len(self._days) > 1 else ""
            when += f" on day{plural} {_runs(self._days, None, 1)} of the month"
        if len(self._months) < 12:
            when += " in " + _runs(self._months, _MONTHS, 1)
        return when

    def _fields(self) -> dict[str, Any]:
        return {name: self._text[name] for name in self._ORDER}

    @classmethod
    def _from_fields(cls, data: dict[str, Any], app: Celeriac | None) -> crontab:
        fields = {name: data.get(name, "*") for name in cls._ORDER}
        return cls(**fields, tz=data.get("timezone"), app=app)

    def __repr__(self) -> str:
        text = " ".join(self._text[name] for name in self._ORDER)
        zone = f" {_tz_name(self._tz)}" if self._tz is not None else ""
        return f"<crontab: {text} (m h dom mon dow){zone}>"


# -- solar --------------------------------------------------------------------------------


class solar(BaseSchedule):
    """Run at a solar event at a place: ``"dawn_astronomical"``, ``"dawn_nautical"``,
    ``"dawn_civil"``, ``"sunrise"``, ``"solar_noon"``, ``"sunset"``, ``"dusk_civil"``,
    ``"dusk_nautical"`` or ``"dusk_astronomical"``; ``lat``/``lon`` in degrees (north/east
    positive).  Computed with the NOAA equations (to about a minute).  Days without the event
    (polar day or night) are skipped; if none comes within two years it never runs (this is
    also the case within about half a degree of a pole, where the sun crosses an altitude
    without a daily rise and set).  Returned times are in :attr:`tz`."""

    type_name = "solar"
    _SEARCH_DAYS = 800

    def __init__(
        self,
        event: str,
        lat: float,
        lon: float,
        app: Celeriac | None = None,
        *,
        nowfun: Callable[[], dt.datetime] | None = None,
        tz: str | dt.tzinfo | None = None,
    ) -> None:
        super().__init__(nowfun=nowfun, app=app, tz=tz)
        if event not in _solar.EVENTS:
            raise ValueError(f"solar event: unknown event {event!r}")
        if not -90 <= lat <= 90:
            raise ValueError(f"solar lat: {lat} is out of range -90..90")
        if not -180 <= lon <= 180:
            raise ValueError(f"solar lon: {lon} is out of range -180..180")
        self.event, self.lat, self.lon = event, float(lat), float(lon)

    def next_run_after(self, when: dt.datetime) -> dt.datetime:
        """The first occurrence of the event strictly after ``when``; ``when + NEVER`` seconds
        when the event does not happen within two years."""
        when = self.to_aware(when)
        ts = when.timestamp()
        midnight = dt.datetime.combine(when.astimezone(dt.UTC).date(), dt.time(), dt.UTC)
        day = midnight.timestamp() - 86400.0
        for _ in range(self._SEARCH_DAYS):
            found = _solar.event_time(self.event, self.lat, self.lon, day)
            if found is not None and found > ts:
                return dt.datetime.fromtimestamp(found, self.tz)
            day += 86400.0
        return when + dt.timedelta(seconds=NEVER)

    def human(self) -> str:
        """E.g. ``"at sunrise at 51.5074, -0.1278"``."""
        return f"at {self.event.replace('_', ' ')} at {self.lat:g}, {self.lon:g}"

    def _fields(self) -> dict[str, Any]:
        return {"event": self.event, "latitude": self.lat, "longitude": self.lon}

    @classmethod
    def _from_fields(cls, data: dict[str, Any], app: Celeriac | None) -> solar:
        lat, lon = float(data["latitude"]), float(data["longitude"])
        return cls(data["event"], lat, lon, app=app, tz=data.get("timezone"))

    def __repr__(self) -> str:
        return f"<solar: {self.human()}>"


# -- clocked ------------------------------------------------------------------------------


class clocked(BaseSchedule):
    """Run once at ``clocked_time`` (naive = wall time in :attr:`tz`).

    Due when ``now >= clocked_time`` and it has not run since (``last_run_at`` is ``None`` or
    earlier than ``clocked_time``); never due afterwards, reporting ``next = NEVER`` (1e9 s).
    Beat is expected to disable the entry once it has run."""

    type_name = "clocked"

    def __init__(
        self,
        clocked_time: dt.datetime,
        app: Celeriac | None = None,
        *,
        nowfun: Callable[[], dt.datetime] | None = None,
        tz: str | dt.tzinfo | None = None,
    ) -> None:
        super().__init__(nowfun=nowfun, app=app, tz=tz)
        self.clocked_time = clocked_time

    @property
    def run_at(self) -> dt.datetime:
        """``clocked_time`` as an aware datetime in :attr:`tz`."""
        return self.to_aware(self.clocked_time)

    def next_run_after(self, when: dt.datetime) -> dt.datetime:
        """``clocked_time`` if it is after ``when``, else ``when + NEVER`` seconds."""
        when = self.to_aware(when)
        if _until(self.run_at, when) > 0:
            return self.run_at
        return when + dt.timedelta(seconds=NEVER)

    def _pending(self, last_run_at: LastRun) -> bool:
        return last_run_at is None or _until(self.run_at, self.to_aware(last_run_at)) > 0

    def is_due(self, last_run_at: LastRun) -> schedstate:
        """Due once: when the time has come and it has not run since."""
        if not self._pending(last_run_at):
            return schedstate(False, NEVER)
        remaining = _until(self.run_at, self.now())
        return schedstate(True, NEVER) if remaining <= 0 else schedstate(False, remaining)

    def remaining_estimate(self, last_run_at: LastRun) -> dt.timedelta:
        """Time until ``clocked_time`` (negative when overdue); ``NEVER`` once it has run."""
        if not self._pending(last_run_at):
            return dt.timedelta(seconds=NEVER)
        return dt.timedelta(seconds=_until(self.run_at, self.now()))

    def human(self) -> str:
        """E.g. ``"once at 2026-05-01 10:00 UTC"``."""
        at = self.run_at
        return f"once at {at:%Y-%m-%d %H:%M} {at.tzname()}"

    def _fields(self) -> dict[str, Any]:
        return {"clocked_time": self.clocked_time.isoformat()}

    @classmethod
    def _from_fields(cls, data: dict[str, Any], app: Celeriac | None) -> clocked:
        when = dt.datetime.fromisoformat(data["clocked_time"])
        return cls(when, app=app, tz=data.get("timezone"))

    def __repr__(self) -> str:
        return f"<clocked: {self.clocked_time.isoformat()}>"


# -- helpers ------------------------------------------------------------------------------


@overload
def maybe_schedule(value: None, relative: bool = ..., app: Celeriac | None = ...) -> None: ...
@overload
def maybe_schedule(
    value: float | dt.timedelta | BaseSchedule | dict[str, Any],
    relative: bool = ...,
    app: Celeriac | None = ...,
) -> BaseSchedule: ...


def maybe_schedule(
    value: float | dt.timedelta | BaseSchedule | dict[str, Any] | None,
    relative: bool = False,
    app: Celeriac | None = None,
) -> BaseSchedule | None:
    """Seconds or a timedelta -> :class:`schedule`; a :meth:`~BaseSchedule.to_dict` dict ->
    its schedule; a schedule passes through (given ``app`` if it has none); ``None`` stays."""
    if value is None:
        return None
    if isinstance(value, BaseSchedule):
        if app is not None and value.app is None:
            value.app = app
        return value
    if isinstance(value, dict):
        return schedule_from_dict(value, app)
    if isinstance(value, bool) or not isinstance(value, int | float | dt.timedelta):
        raise TypeError(f"cannot make a schedule from {value!r}")
    return schedule(value, relative, app=app)

"""Crontab schedules: the fields, their parser, and the walk to the next wall-clock time."""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ..utils.time import DAY_NAMES, MONTH_NAMES
from .base import MINUTE, BaseSchedule, resolve_wall, tz_name, until

if TYPE_CHECKING:
    from ..app import Celeriac


def _names(words: Sequence[str], first: int) -> dict[str, int]:
    return {w.lower()[:size]: i + first for i, w in enumerate(words) for size in (3, len(w))}


_DAY_NAMES = _names(DAY_NAMES, 0)
_MONTH_NAMES = _names(MONTH_NAMES, 1)
#: field -> crontab_parser arguments (how many values, the first)
_FIELDS: dict[str, tuple[int, int]] = {
    "minute": (60, 0),
    "hour": (24, 0),
    "day_of_week": (7, 0),
    "day_of_month": (31, 1),
    "month_of_year": (12, 1),
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


class ParseException(ValueError):
    """A crontab field that cannot be read (from :class:`crontab_parser` and :class:`crontab`)."""


class crontab_parser:
    """One cron field's text -> the set of values it matches, as Celery's parser:
    ``crontab_parser(60).parse("*/15") == {0, 15, 30, 45}``.

    ``max_`` is how many values the field has and ``min_`` the first: ``(60)`` minutes,
    ``(24)`` hours, ``(7)`` days of the week (``sun``..``sat`` too), ``(31, 1)`` days of the
    month, ``(12, 1)`` months (``jan``..``dec`` too).  The syntax is :class:`crontab`'s; bad
    text raises :class:`ParseException` (a ``ValueError``)."""

    ParseException = ParseException

    def __init__(self, max_: int = 60, min_: int = 0) -> None:
        self.max_, self.min_ = max_, min_
        self.top = min_ + max_ - 1  # where `*` and wrapping ranges end
        self.high = self.top  # the highest value that may be written
        self.names = {(7, 0): _DAY_NAMES, (12, 1): _MONTH_NAMES}.get((max_, min_), {})
        self.field = "field"

    def _fail(self, message: str) -> ValueError:  # a ParseException
        return ParseException(f"crontab {self.field}: {message}")

    def check(self, n: int) -> int:
        """``n`` if the field allows it, else :class:`ParseException`."""
        if not self.min_ <= n <= self.high:
            raise self._fail(f"{n} is out of range {self.min_}-{self.high}")
        return n

    def _number(self, token: str) -> int:
        token = token.strip().lower()
        if token in self.names:
            return self.names[token]
        if not token.isdigit():
            raise self._fail(f"invalid value {token!r}")
        return self.check(int(token))

    def parse(self, spec: str) -> set[int]:
        """``*``, numbers or names, ``a-b`` (wrapping, e.g. ``fri-mon``), steps (``*/15``,
        ``1-10/2``, ``5/10`` = 5-max/10) and comma lists of those -> the values."""
        values: set[int] = set()
        for part in spec.strip().split(","):
            base, slash, step_text = part.strip().partition("/")
            step = 1
            if slash:
                if not step_text.strip().isdigit() or int(step_text) == 0:
                    raise self._fail(f"invalid step in {part.strip()!r}")
                step = int(step_text)
            start_text, dash, end_text = base.partition("-")
            if base.strip() == "*":
                span = list(range(self.min_, self.top + 1))
            elif dash:
                first, last = self._number(start_text), self._number(end_text)
                if last >= first:
                    span = list(range(first, last + 1))
                else:  # wraps around, e.g. fri-mon or 22-2
                    span = list(range(first, self.top + 1)) + list(range(self.min_, last + 1))
            else:
                first = self._number(base)
                span = list(range(first, self.top + 1)) if slash else [first]
            values.update(span[::step])
        return values


def _field_parser(name: str) -> crontab_parser:
    parser = crontab_parser(*_FIELDS[name])
    parser.field = name
    if name == "day_of_week":
        parser.high = 7  # Sunday again, only when written
    return parser


_PARSERS = {name: _field_parser(name) for name in _FIELDS}


def _parse_field(name: str, value: CronField) -> tuple[frozenset[int], str]:
    """One crontab field -> (set of values, canonical text); :class:`ParseException` if bad."""
    parser = _PARSERS[name]
    if isinstance(value, bool):
        raise parser._fail(f"invalid value {value!r}")
    if isinstance(value, int):
        values = {parser.check(value)}
        text = str(value)
    elif isinstance(value, str):
        text = value.strip()
        values = parser.parse(text)
    else:
        items = list(value) if isinstance(value, Iterable) else [value]
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in items):
            raise parser._fail(f"invalid value {value!r}")
        values = {parser.check(v) for v in items}
        text = ",".join(str(v) for v in sorted(values))
    if name == "day_of_week" and 7 in values:
        values = (values - {7}) | {0}
    if not values or not text:
        raise parser._fail(f"empty value {value!r}")
    return frozenset(values), text


def _runs(values: list[int], words: Sequence[str] | None, first: int) -> str:
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
    See the module docstring for daylight-saving rules.  Invalid fields raise
    :class:`ParseException` (a ``ValueError``)."""

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
        start = when.replace(tzinfo=None, second=0, microsecond=0, fold=0) + MINUTE
        while True:
            wall = self._next_wall(start)
            instant = resolve_wall(wall, self.tz)
            if until(instant, when) > 0:  # else: second pass of a repeated hour, already ran
                return instant
            start = wall + MINUTE

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, crontab):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def _key(self) -> tuple[Any, ...]:
        sets = (self.minute, self.hour, self.day_of_week, self.day_of_month, self.month_of_year)
        return (*sets, tz_name(self._tz))

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
            when += " on " + _runs(sorted(self.day_of_week), DAY_NAMES, 0)
        if len(self._days) < 31:
            plural = "s" if len(self._days) > 1 else ""
            when += f" on day{plural} {_runs(self._days, None, 1)} of the month"
        if len(self._months) < 12:
            when += " in " + _runs(self._months, MONTH_NAMES, 1)
        return when

    def _fields(self) -> dict[str, Any]:
        return {name: self._text[name] for name in self._ORDER}

    @classmethod
    def _from_fields(cls, data: dict[str, Any], app: Celeriac | None) -> crontab:
        fields = {name: data.get(name, "*") for name in cls._ORDER}
        return cls(**fields, tz=data.get("timezone"), app=app)

    def __repr__(self) -> str:
        text = " ".join(self._text[name] for name in self._ORDER)
        zone = f" {tz_name(self._tz)}" if self._tz is not None else ""
        return f"<crontab: {text} (m h dom mon dow){zone}>"


# -- solar --------------------------------------------------------------------------------

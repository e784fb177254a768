"""Time conversions: everything inside celeriac is UNIX seconds (UTC).

Also the helpers projects import from ``celery.utils.time`` (:data:`timezone`, :func:`remaining`,
:func:`humanize_seconds`, :func:`rate`...); in those, naive datetimes are read as UTC."""

from __future__ import annotations

import datetime as dt
import functools
import os
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, overload
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..exceptions import ImproperlyConfigured

#: day names by cron number (0 is Sunday), month names from January
DAY_NAMES = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
MONTH_NAMES = (
    *("January", "February", "March", "April", "May", "June"),
    *("July", "August", "September", "October", "November", "December"),
)
_RATE_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:/\s*([smhd]))?\s*$")


def get_timezone(name: str | None) -> dt.tzinfo:
    """``timezone`` setting -> tzinfo (UTC when unset)."""
    if not name or name.upper() == "UTC":
        return dt.UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ImproperlyConfigured(f"unknown timezone {name!r}") from None


def to_unix(value: dt.datetime | dt.date | float | int | str, tz: dt.tzinfo = dt.UTC) -> float:
    """A datetime (naive ones are in ``tz``), ISO string or number -> UNIX seconds."""
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if not isinstance(value, dt.datetime):
        value = dt.datetime.combine(value, dt.time(), tzinfo=tz)
    if value.tzinfo is None:
        value = value.replace(tzinfo=tz)
    return value.timestamp()


def relative_or_absolute(value: dt.datetime | dt.timedelta | float | int, tz: dt.tzinfo) -> float:
    """``expires``-style value: seconds from now, a timedelta, or a datetime -> UNIX seconds."""
    if isinstance(value, dt.timedelta):
        return time.time() + value.total_seconds()
    if isinstance(value, int | float):
        return time.time() + float(value)
    return to_unix(value, tz)


def get_exponential_backoff_interval(
    factor: float, retries: int, maximum: float, full_jitter: bool = False
) -> float:
    """Exponential back-off: ``factor * 2**retries`` seconds capped at ``maximum``; with
    ``full_jitter``, a random time from 0 to that (Celery's function, for ``retry_backoff``)."""
    countdown = min(maximum, factor * (2**retries))
    return random.uniform(0, countdown) if full_jitter else countdown


# -- rate limits --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rate:
    """``count`` executions per ``period`` seconds."""

    count: float
    period: float

    @property
    def per_second(self) -> float:
        return self.count / self.period


def parse_rate(rate: Any) -> Rate | None:
    """``"10/s"``, ``"100/m"``, ``"1000/h"``, ``"5/d"`` (a bare number is per second); None or
    0: no limit. Anything else raises ValueError naming the value."""
    if rate is None or rate == "" or rate == 0:
        return None
    if isinstance(rate, int | float) and not isinstance(rate, bool):
        return Rate(float(rate), 1.0) if rate > 0 else None
    match = _RATE.match(str(rate))
    if match is None:
        raise ValueError(f"bad rate limit {rate!r}: use a number per s, m or h, like '10/m'")
    count = float(match.group(1))
    if count <= 0:
        return None
    return Rate(count, _RATE_UNITS[match.group(2) or "s"])


def rate(r: Any) -> float:
    """Celery's ``rate``: a rate limit (``"100/m"``) -> executions per second; 0 for none."""
    parsed = parse_rate(r)
    return parsed.per_second if parsed else 0


# -- Celery's celery.utils.time -----------------------------------------------------------


def is_naive(value: dt.datetime) -> bool:
    """True when ``value`` carries no usable time zone."""
    return value.tzinfo is None or value.tzinfo.utcoffset(value) is None


def make_aware(value: dt.datetime, tz: dt.tzinfo) -> dt.datetime:
    """Naive wall time -> that time in ``tz``: the first occurrence of a repeated time; a time
    in a spring-forward gap is moved forward by the gap (02:30 -> 03:30), as in Celery."""
    aware = value.replace(tzinfo=tz, fold=0)
    return aware.astimezone(dt.UTC).astimezone(tz)


def localize(value: dt.datetime, tz: dt.tzinfo) -> dt.datetime:
    """``value`` in ``tz`` (a naive one is taken to be wall time there already)."""
    return make_aware(value, tz) if is_naive(value) else value.astimezone(tz)


def to_utc(value: dt.datetime) -> dt.datetime:
    """``value`` as an aware UTC datetime (naive ones are read as UTC)."""
    return value.replace(tzinfo=dt.UTC) if is_naive(value) else value.astimezone(dt.UTC)


def maybe_make_aware(
    value: dt.datetime, tz: dt.tzinfo | str | None = None, naive_as_utc: bool = True
) -> dt.datetime:
    """Aware datetimes unchanged; a naive one read as UTC (or as wall time in ``tz`` when not
    ``naive_as_utc``) and given in ``tz`` (UTC by default)."""
    if not is_naive(value):
        return value
    zone = timezone.get_timezone(tz) if tz is not None else dt.UTC
    return localize(to_utc(value) if naive_as_utc else value, zone)


def _local_zone() -> dt.tzinfo:
    """The system zone: ``$TZ`` or ``/etc/localtime``'s name, else its current fixed offset."""
    name = os.environ.get("TZ", "").lstrip(":")
    if not name and os.path.islink("/etc/localtime"):
        name = os.path.realpath("/etc/localtime").partition("/zoneinfo/")[2]
    try:
        return ZoneInfo(name) if name else _fixed_local()
    except (ZoneInfoNotFoundError, ValueError):
        return _fixed_local()


def _fixed_local() -> dt.tzinfo:
    return dt.datetime.now().astimezone().tzinfo or dt.UTC


class _Zone:
    """Celery's ``timezone`` object: the UTC and system zones and conversions between them."""

    utc: dt.tzinfo = dt.UTC

    @functools.cached_property
    def local(self) -> dt.tzinfo:
        """The system's time zone."""
        return _local_zone()

    def get_timezone(self, zone: str | dt.tzinfo) -> dt.tzinfo:
        """A zone name -> tzinfo (``ImproperlyConfigured`` if unknown); a tzinfo as it is."""
        return get_timezone(zone) if isinstance(zone, str) else zone

    def tz_or_local(self, tzinfo: str | dt.tzinfo | None = None) -> dt.tzinfo:
        """``tzinfo`` (a name or tzinfo), or the system zone for None."""
        return self.local if tzinfo is None else self.get_timezone(tzinfo)

    def to_local(
        self,
        value: dt.datetime,
        local: str | dt.tzinfo | None = None,
        orig: dt.tzinfo | None = None,
    ) -> dt.datetime:
        """``value`` (naive: wall time in ``orig``, UTC by default) in ``local`` (the system
        zone by default)."""
        if is_naive(value):
            value = make_aware(value, orig or self.utc)
        return localize(value, self.tz_or_local(local))

    def to_system(self, value: dt.datetime) -> dt.datetime:
        """``value`` in the system's zone (naive: read as system time)."""
        return value.astimezone()

    def to_local_fallback(self, value: dt.datetime) -> dt.datetime:
        """``value`` in the system zone; a naive one is taken as system wall time."""
        return localize(value, self.local)


timezone = _Zone()


@overload
def maybe_timedelta(delta: float | dt.timedelta) -> dt.timedelta: ...
@overload
def maybe_timedelta(delta: None) -> None: ...
def maybe_timedelta(delta: float | dt.timedelta | None) -> dt.timedelta | None:
    """Seconds -> timedelta; a timedelta or None is returned as it is."""
    return dt.timedelta(seconds=delta) if isinstance(delta, int | float) else delta


def delta_resolution(value: dt.datetime, delta: dt.timedelta) -> dt.datetime:
    """``value`` rounded down (on its wall clock) to the unit of ``delta``: the day for a delta
    of a day or more, the hour for hours, the minute for minutes; unchanged under a minute."""
    secs = delta.total_seconds()
    if secs >= 86400:
        return value.replace(hour=0, minute=0, second=0, microsecond=0)
    if secs >= 3600:
        return value.replace(minute=0, second=0, microsecond=0)
    if secs >= 60:
        return value.replace(second=0, microsecond=0)
    return value


def remaining(
    start: dt.datetime,
    ends_in: dt.timedelta,
    now: dt.datetime | None = None,
    relative: bool = False,
) -> dt.timedelta:
    """Real time from ``now`` (default: now) until ``start + ends_in``, negative once passed.
    With ``relative`` the end is rounded down to the unit of ``ends_in`` on ``start``'s wall
    clock (see :func:`delta_resolution`), unless that would not be after ``start``."""
    start = maybe_make_aware(start)
    zone = start.tzinfo or dt.UTC
    end = (to_utc(start) + ends_in).astimezone(zone)
    if relative:
        rounded = make_aware(delta_resolution(end, ends_in).replace(tzinfo=None), zone)
        end = rounded if to_utc(rounded) > to_utc(start) else end
    return to_utc(end) - to_utc(now or dt.datetime.now(dt.UTC))


def humanize_seconds(
    secs: float, prefix: str = "", sep: str = "", now: str = "now", microseconds: bool = False
) -> str:
    """Seconds as Celery words them: ``"1.00 minute"``, ``"2.50 hours"``; ``now`` for under a
    second (``"0.50 seconds"`` with ``microseconds``). ``prefix`` and ``sep`` go in front."""
    secs = round(float(secs), 2)
    for unit, size in (("day", 86400.0), ("hour", 3600.0), ("minute", 60.0), ("second", 1.0)):
        if secs >= size:
            count = secs / size
            return f"{prefix}{sep}{count:.2f} {unit}{'' if count == 1 else 's'}"
    if microseconds and secs > 0:
        return f"{prefix}{sep}{secs:.2f} seconds"
    return now


def maybe_iso8601(value: dt.datetime | str | None) -> dt.datetime | None:
    """ISO 8601 text -> datetime; a datetime as it is; None or ``""`` -> None."""
    if not value:
        return None
    return value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(value)


def weekday(name: str) -> int:
    """A day name (its first three letters count) -> 0 (Sunday) .. 6; KeyError if unknown."""
    for number, day in enumerate(DAY_NAMES):
        if name[:3].lower() == day[:3].lower():
            return number
    raise KeyError(name)


def utcoffset() -> float:
    """The system zone's current distance from UTC in hours, positive *west* of UTC (as
    :data:`time.timezone`): -1.0 in Paris in winter."""
    return (time.altzone if time.localtime().tm_isdst > 0 else time.timezone) / 3600


def adjust_timestamp(ts: float, offset: float, here: Callable[[], float] = utcoffset) -> float:
    """A UNIX time read on a clock ``offset`` hours west of UTC -> the same on this system's."""
    return ts - (offset - here()) * 3600

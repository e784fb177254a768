"""Time conversions: everything inside celeriac is UNIX seconds (UTC)."""

from __future__ import annotations

import datetime as dt
import random
import time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..exceptions import ImproperlyConfigured


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

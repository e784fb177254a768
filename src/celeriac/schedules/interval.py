"""Interval schedules: run every so many seconds."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, overload

from ..utils.time import delta_resolution
from .base import BaseSchedule, LastRun, resolve_wall, schedstate, schedule_from_dict, until

if TYPE_CHECKING:
    from ..app import Celeriac

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
        wall = delta_resolution(nxt.replace(tzinfo=None, microsecond=0), self.run_every)
        rounded = resolve_wall(wall, self.tz)
        return rounded if until(rounded, when) > 0 else nxt

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

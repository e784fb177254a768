"""One-off schedules: run once, at a given time."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .base import NEVER, BaseSchedule, LastRun, schedstate, until

if TYPE_CHECKING:
    from ..app import Celeriac


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
        if until(self.run_at, when) > 0:
            return self.run_at
        return when + dt.timedelta(seconds=NEVER)

    def _pending(self, last_run_at: LastRun) -> bool:
        return last_run_at is None or until(self.run_at, self.to_aware(last_run_at)) > 0

    def is_due(self, last_run_at: LastRun) -> schedstate:
        """Due once: when the time has come and it has not run since."""
        if not self._pending(last_run_at):
            return schedstate(False, NEVER)
        remaining = until(self.run_at, self.now())
        return schedstate(True, NEVER) if remaining <= 0 else schedstate(False, remaining)

    def remaining_estimate(self, last_run_at: LastRun) -> dt.timedelta:
        """Time until ``clocked_time`` (negative when overdue); ``NEVER`` once it has run."""
        if not self._pending(last_run_at):
            return dt.timedelta(seconds=NEVER)
        return dt.timedelta(seconds=until(self.run_at, self.now()))

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

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

from .base import NEVER, BaseSchedule, schedstate, schedule_from_dict
from .cron import ParseException, crontab, crontab_parser
from .interval import maybe_schedule, schedule
from .once import clocked
from .sun import solar

__all__ = ["NEVER", "BaseSchedule", "ParseException", "clocked", "crontab", "crontab_parser"]
__all__ += ["maybe_schedule", "schedstate", "schedule", "schedule_from_dict", "solar"]

"""Unit tests for celeriac.schedules: pure computations with an injected clock."""

from __future__ import annotations

import datetime as dt
import json
import random
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from celeriac.schedules import (
    NEVER,
    BaseSchedule,
    clocked,
    crontab,
    maybe_schedule,
    schedstate,
    schedule,
    schedule_from_dict,
    solar,
)

UTC = dt.UTC
LONDON = ZoneInfo("Europe/London")
NEW_YORK = ZoneInfo("America/New_York")
MINUTE = dt.timedelta(minutes=1)


class Clock:
    """A settable ``nowfun``."""

    def __init__(self, now: dt.datetime) -> None:
        self.value = now

    def __call__(self) -> dt.datetime:
        return self.value


class FakeApp:
    """Just what schedules use of an app: its ``timezone``."""

    def __init__(self, tz: dt.tzinfo) -> None:
        self.timezone = tz


def at(text: str, tz: dt.tzinfo = UTC) -> dt.datetime:
    """``"2026-03-08 01:30"`` -> aware datetime in ``tz`` (first occurrence if repeated)."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=tz)


def simulate(
    sched: BaseSchedule, start: dt.datetime, end: dt.datetime, step: dt.timedelta = MINUTE
) -> list[dt.datetime]:
    """Ask ``is_due`` at every ``step`` of real (UTC) time, like beat; return the run times.

    The entry is created at ``start`` (its first ``last_run_at``)."""
    clock = Clock(start)
    sched.nowfun = clock
    last: dt.datetime = start
    runs = []
    now = start.astimezone(UTC)
    while now < end:
        clock.value = now
        state = sched.is_due(last)
        if state.is_due:
            runs.append(now)
            last = now
        now += step
    return runs


# -- crontab parsing ----------------------------------------------------------------------

ALL_MINUTES = frozenset(range(60))
PARSE_CASES: list[tuple[dict[str, Any], str, set[int]]] = [
    ({}, "minute", set(range(60))),
    ({"minute": "*/15"}, "minute", {0, 15, 30, 45}),
    ({"minute": "1-5"}, "minute", {1, 2, 3, 4, 5}),
    ({"minute": "1-10/2"}, "minute", {1, 3, 5, 7, 9}),
    ({"minute": "5/20"}, "minute", {5, 25, 45}),
    ({"minute": "0,30"}, "minute", {0, 30}),
    ({"minute": " 7 "}, "minute", {7}),
    ({"minute": 0}, "minute", {0}),
    ({"minute": [0, 10, 20]}, "minute", {0, 10, 20}),
    ({"minute": {5, 6}}, "minute", {5, 6}),
    ({"minute": range(0, 60, 20)}, "minute", {0, 20, 40}),
    ({"minute": "55-5"}, "minute", {55, 56, 57, 58, 59, 0, 1, 2, 3, 4, 5}),
    ({"hour": "*/6"}, "hour", {0, 6, 12, 18}),
    ({"hour": "22-2"}, "hour", {22, 23, 0, 1, 2}),
    ({"hour": "9-17/4,20"}, "hour", {9, 13, 17, 20}),
    ({"day_of_week": "*"}, "day_of_week", set(range(7))),
    ({"day_of_week": "mon-fri"}, "day_of_week", {1, 2, 3, 4, 5}),
    ({"day_of_week": "sun,wed"}, "day_of_week", {0, 3}),
    ({"day_of_week": "SAT,Sun"}, "day_of_week", {6, 0}),
    ({"day_of_week": "monday,Friday"}, "day_of_week", {1, 5}),
    ({"day_of_week": "fri-mon"}, "day_of_week", {5, 6, 0, 1}),
    ({"day_of_week": "fri-sun"}, "day_of_week", {5, 6, 0}),
    ({"day_of_week": 7}, "day_of_week", {0}),
    ({"day_of_week": "1-7"}, "day_of_week", set(range(7))),
    ({"day_of_week": "*/2"}, "day_of_week", {0, 2, 4, 6}),
    ({"day_of_week": "1/2"}, "day_of_week", {1, 3, 5}),
    ({"day_of_week": 1}, "day_of_week", {1}),
    ({"day_of_month": "*"}, "day_of_month", set(range(1, 32))),
    ({"day_of_month": "1,15"}, "day_of_month", {1, 15}),
    ({"day_of_month": "*/10"}, "day_of_month", {1, 11, 21, 31}),
    ({"day_of_month": "28-3"}, "day_of_month", {28, 29, 30, 31, 1, 2, 3}),
    ({"month_of_year": "jan-mar"}, "month_of_year", {1, 2, 3}),
    ({"month_of_year": "DEC,jun"}, "month_of_year", {12, 6}),
    ({"month_of_year": "february"}, "month_of_year", {2}),
    ({"month_of_year": "*/3"}, "month_of_year", {1, 4, 7, 10}),
    ({"month_of_year": "nov-feb"}, "month_of_year", {11, 12, 1, 2}),
]


@pytest.mark.parametrize(("kwargs", "field", "expected"), PARSE_CASES)
def test_crontab_parses_every_form(kwargs: dict[str, Any], field: str, expected: set[int]) -> None:
    assert getattr(crontab(**kwargs), field) == frozenset(expected)


ERROR_CASES: list[tuple[dict[str, Any], str]] = [
    ({"minute": "61"}, "crontab minute: 61 is out of range 0-59"),
    ({"minute": 60}, "crontab minute: 60 is out of range 0-59"),
    ({"hour": "24"}, "crontab hour: 24 is out of range 0-23"),
    ({"hour": "1-25"}, "crontab hour: 25 is out of range 0-23"),
    ({"day_of_week": "8"}, "crontab day_of_week: 8 is out of range 0-7"),
    ({"day_of_week": "funday"}, "crontab day_of_week: invalid value 'funday'"),
    ({"day_of_month": "0"}, "crontab day_of_month: 0 is out of range 1-31"),
    ({"day_of_month": "32"}, "crontab day_of_month: 32 is out of range 1-31"),
    ({"month_of_year": "13"}, "crontab month_of_year: 13 is out of range 1-12"),
    ({"month_of_year": "mon"}, "crontab month_of_year: invalid value 'mon'"),
    ({"hour": "jan"}, "crontab hour: invalid value 'jan'"),
    ({"minute": "*/0"}, "crontab minute: invalid step in '*/0'"),
    ({"minute": "*/x"}, "crontab minute: invalid step in '*/x'"),
    ({"minute": "1-"}, "crontab minute: invalid value ''"),
    ({"minute": "-5"}, "crontab minute: invalid value ''"),
    ({"minute": "1,,2"}, "crontab minute: invalid value ''"),
    ({"minute": ""}, "crontab minute: invalid value ''"),
    ({"minute": []}, "crontab minute: empty value []"),
    ({"minute": [1, 99]}, "crontab minute: 99 is out of range 0-59"),
    ({"minute": True}, "crontab minute: invalid value True"),
    ({"minute": 1.5}, "crontab minute: invalid value 1.5"),
    ({"minute": [1.5]}, "crontab minute: invalid value [1.5]"),
    ({"minute": ["5"]}, "crontab minute: invalid value ['5']"),
    ({"day_of_month": 30, "month_of_year": 2}, "day_of_month: 30 never occurs in month_of_year 2"),
]


@pytest.mark.parametrize(("kwargs", "message"), ERROR_CASES)
def test_crontab_rejects_bad_fields(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as info:
        crontab(**kwargs)
    assert message in str(info.value)


def test_from_string_matches_keyword_form() -> None:
    assert crontab.from_string("30 7 * * 1") == crontab(hour=7, minute=30, day_of_week=1)
    assert crontab.from_string("0 8 * * *") == crontab(hour=8, minute=0)
    c = crontab.from_string("*/5 9-17 1,15 jan-jun mon-fri", tz="Europe/London")
    assert c.minute == frozenset(range(0, 60, 5))
    assert c.hour == frozenset(range(9, 18))
    assert c.day_of_month == frozenset({1, 15})
    assert c.month_of_year == frozenset(range(1, 7))
    assert c.day_of_week == frozenset(range(1, 6))
    assert c.tz == LONDON
    assert crontab.from_string("@daily") == crontab(minute=0, hour=0)
    assert crontab.from_string("@hourly") == crontab(minute=0)
    assert crontab.from_string("@weekly") == crontab(minute=0, hour=0, day_of_week="sun")
    with pytest.raises(ValueError, match="expected 5 fields"):
        crontab.from_string("* * * *")


def test_crontab_equality_is_semantic() -> None:
    assert crontab(minute="*/15") == crontab(minute="0,15,30,45")
    assert crontab(day_of_week="mon-fri") == crontab(day_of_week=[1, 2, 3, 4, 5])
    assert crontab(day_of_week=7) == crontab(day_of_week="sun")
    assert crontab(minute=1) != crontab(minute=2)
    assert crontab(minute=1, tz="Europe/London") != crontab(minute=1)
    assert len({crontab(minute="*/30"), crontab(minute="0,30")}) == 1
    assert crontab() != schedule(60)


# -- crontab next run ---------------------------------------------------------------------

NEXT_CASES: list[tuple[str, str, str]] = [
    # (expression, after (UTC), expected next run (UTC))
    ("* * * * *", "2026-05-01 10:00", "2026-05-01 10:01"),
    ("* * * * *", "2026-05-01 10:00:30", "2026-05-01 10:01"),
    ("*/15 * * * *", "2026-05-01 10:00", "2026-05-01 10:15"),
    ("*/15 * * * *", "2026-05-01 10:59", "2026-05-01 11:00"),
    ("*/15 * * * *", "2026-12-31 23:50", "2027-01-01 00:00"),
    ("30 7 * * *", "2026-05-01 07:30", "2026-05-02 07:30"),
    ("30 7 * * *", "2026-05-01 07:29:59", "2026-05-01 07:30"),
    ("30 7 * * 1", "2026-05-01 00:00", "2026-05-04 07:30"),  # 2026-05-01 is a Friday
    ("0 8 * * *", "2026-05-01 08:00", "2026-05-02 08:00"),
    ("0 9 * * mon-fri", "2026-05-01 09:00", "2026-05-04 09:00"),
    ("0 9 * * sat,sun", "2026-05-01 09:00", "2026-05-02 09:00"),
    ("0 0 1 * *", "2026-05-01 00:00", "2026-06-01 00:00"),
    ("0 0 31 * *", "2026-04-01 00:00", "2026-05-31 00:00"),
    ("0 0 31 * *", "2026-05-31 00:00", "2026-07-31 00:00"),
    ("0 0 1 jan *", "2026-05-01 00:00", "2027-01-01 00:00"),
    ("0 12 13 * fri", "2026-01-01 00:00", "2026-02-13 12:00"),  # both must match
    ("0 12 13 * fri", "2026-02-13 12:00", "2026-03-13 12:00"),
    ("0 12 13 * fri", "2026-03-13 12:00", "2026-11-13 12:00"),
    ("15,45 */6 * * *", "2026-05-01 06:45", "2026-05-01 12:15"),
    ("0 22-2 * * *", "2026-05-01 02:00", "2026-05-01 22:00"),
    ("0 0 * feb 0", "2026-03-01 00:00", "2027-02-07 00:00"),
    ("59 23 31 12 *", "2026-12-31 23:59", "2027-12-31 23:59"),
    ("0 0 29 2 *", "2027-01-01 00:00", "2028-02-29 00:00"),
    ("0 0 29 2 *", "2028-02-29 00:00", "2032-02-29 00:00"),
    ("0 0 29 2 mon", "2026-01-01 00:00", "2044-02-29 00:00"),
]


@pytest.mark.parametrize(("expr", "after", "expected"), NEXT_CASES)
def test_crontab_next_run_after(expr: str, after: str, expected: str) -> None:
    assert crontab.from_string(expr).next_run_after(at(after)) == at(expected)


def test_next_run_after_is_aware_in_schedule_zone() -> None:
    c = crontab(minute=30, hour=7, tz="Europe/London")
    nxt = c.next_run_after(at("2026-06-01 12:00"))
    assert nxt.tzinfo == LONDON
    assert nxt == at("2026-06-02 07:30", LONDON) == at("2026-06-02 06:30")


def test_app_timezone_is_the_default_zone() -> None:
    app: Any = FakeApp(NEW_YORK)
    c = crontab(minute=0, hour=8, app=app)
    assert c.tz == NEW_YORK
    assert c.next_run_after(at("2026-06-01 00:00")) == at("2026-06-01 08:00", NEW_YORK)
    assert crontab(minute=0, hour=8, app=app, tz="UTC").tz == UTC
    assert crontab().tz == UTC


def test_feb_29_job_runs_only_on_leap_days() -> None:
    c = crontab(minute=0, hour=0, day_of_month=29, month_of_year=2)
    runs = []
    when = at("2027-01-01 00:00")
    for _ in range(3):
        when = c.next_run_after(when)
        runs.append(when)
    assert runs == [at("2028-02-29 00:00"), at("2032-02-29 00:00"), at("2036-02-29 00:00")]
    clock = Clock(at("2027-03-01 00:00"))
    c.nowfun = clock
    state = c.is_due(at("2027-01-01 00:00"))  # no Feb 29 in 2027
    assert not state.is_due
    assert state.next == (at("2028-02-29 00:00") - clock.value).total_seconds()


# -- daylight saving time -----------------------------------------------------------------

DST_DAY_CASES: list[tuple[ZoneInfo, str, int, int, list[str]]] = [
    # (zone, local date, hour, minute, expected runs as local ISO times with offsets)
    # London springs forward at 01:00 GMT -> 02:00 BST: 01:30 does not exist.
    (LONDON, "2026-03-29", 1, 30, ["2026-03-29T02:00:00+01:00"]),
    (LONDON, "2026-03-29", 2, 30, ["2026-03-29T02:30:00+01:00"]),
    # London falls back at 02:00 BST -> 01:00 GMT: 01:30 happens twice.
    (LONDON, "2026-10-25", 1, 30, ["2026-10-25T01:30:00+01:00"]),
    (LONDON, "2026-10-25", 2, 30, ["2026-10-25T02:30:00+00:00"]),
    # New York springs forward at 02:00 EST -> 03:00 EDT: 02:30 does not exist.
    (NEW_YORK, "2026-03-08", 2, 30, ["2026-03-08T03:00:00-04:00"]),
    (NEW_YORK, "2026-03-08", 1, 30, ["2026-03-08T01:30:00-05:00"]),
    # New York falls back at 02:00 EDT -> 01:00 EST: 01:30 happens twice.
    (NEW_YORK, "2026-11-01", 1, 30, ["2026-11-01T01:30:00-04:00"]),
    (NEW_YORK, "2026-11-01", 2, 30, ["2026-11-01T02:30:00-05:00"]),
]


@pytest.mark.parametrize(("zone", "day", "hour", "minute", "expected"), DST_DAY_CASES)
def test_daily_job_runs_exactly_once_on_dst_days(
    zone: ZoneInfo, day: str, hour: int, minute: int, expected: list[str]
) -> None:
    c = crontab(minute=minute, hour=hour, tz=zone)
    start = at(f"{day} 00:00", zone)
    day_end = start + dt.timedelta(days=1)  # wall-clock arithmetic: 23 or 25 real hours later
    runs = simulate(c, start, day_end + dt.timedelta(days=1))
    in_day = [r.astimezone(zone).isoformat() for r in runs if r < day_end]
    assert in_day == expected
    # and the next day it is back to the normal wall-clock time
    assert runs[len(in_day)].astimezone(zone).strftime("%H:%M") == f"{hour:02d}:{minute:02d}"


def test_quarter_hourly_job_across_fall_back_runs_first_pass_only() -> None:
    c = crontab(minute="*/15", tz=NEW_YORK)
    runs = simulate(c, at("2026-11-01 00:50", NEW_YORK), at("2026-11-01 07:20"))
    local = [r.astimezone(NEW_YORK).isoformat(timespec="minutes") for r in runs]
    assert local == [
        "2026-11-01T01:00-04:00",
        "2026-11-01T01:15-04:00",
        "2026-11-01T01:30-04:00",
        "2026-11-01T01:45-04:00",
        # the repeated 01:00-01:59 EST hour is skipped: no wall-clock time runs twice
        "2026-11-01T02:00-05:00",
        "2026-11-01T02:15-05:00",
    ]


def test_quarter_hourly_job_across_spring_forward_collapses_the_gap() -> None:
    c = crontab(minute="*/15", tz=LONDON)
    runs = simulate(c, at("2026-03-29 00:40", LONDON), at("2026-03-29 01:20"))
    local = [r.astimezone(LONDON).isoformat(timespec="minutes") for r in runs]
    assert local == [
        "2026-03-29T00:45+00:00",
        "2026-03-29T02:00+01:00",  # 01:00-01:45 GMT do not exist: one run at the gap's end
        "2026-03-29T02:15+01:00",
    ]


def test_next_run_after_from_second_pass_of_repeated_hour() -> None:
    c = crontab(minute="*/15", tz=NEW_YORK)
    second_pass = dt.datetime(2026, 11, 1, 1, 20, tzinfo=NEW_YORK, fold=1)
    assert second_pass.utcoffset() == dt.timedelta(hours=-5)
    assert c.next_run_after(second_pass) == at("2026-11-01 02:00", NEW_YORK)
    first_pass = dt.datetime(2026, 11, 1, 1, 20, tzinfo=NEW_YORK)
    assert c.next_run_after(first_pass).isoformat() == "2026-11-01T01:30:00-04:00"


def test_next_counts_real_seconds_across_dst() -> None:
    clock = Clock(at("2026-03-07 08:00:05", NEW_YORK))
    c = crontab(minute=0, hour=8, tz=NEW_YORK, nowfun=clock)
    state = c.is_due(at("2026-03-06 08:00", NEW_YORK))
    assert state == schedstate(True, 23 * 3600 - 5)  # the night loses an hour
    assert c.remaining_estimate(clock.value) == dt.timedelta(seconds=23 * 3600 - 5)
    clock.value = at("2026-10-24 08:00", LONDON)
    london = crontab(minute=0, hour=8, tz=LONDON, nowfun=clock)
    assert london.is_due(clock.value) == schedstate(False, 25 * 3600)


def test_hourly_job_every_real_hour_except_repeated() -> None:
    c = crontab(minute=0, tz=LONDON)
    runs = simulate(c, at("2026-10-24 23:59", UTC), at("2026-10-25 04:30", UTC))
    assert [r.astimezone(LONDON).strftime("%H:%M%z") for r in runs] == [
        "01:00+0100",  # 00:00 UTC
        "02:00+0000",  # 02:00 UTC; 01:00 GMT (01:00 UTC) is the repeat of 01:00 BST
        "03:00+0000",
        "04:00+0000",
    ]


# -- is_due, last_run_at forms ------------------------------------------------------------


def test_crontab_is_due_and_next() -> None:
    clock = Clock(at("2026-05-01 07:30:05"))
    c = crontab(minute=30, hour=7, nowfun=clock)
    assert c.is_due(at("2026-04-30 07:30")) == schedstate(True, 86400 - 5)
    assert c.is_due(at("2026-05-01 07:30")) == schedstate(False, 86400 - 5)
    clock.value = at("2026-05-01 07:00")
    assert c.is_due(at("2026-04-30 07:30")) == schedstate(False, 1800)
    assert c.remaining_estimate(at("2026-04-30 07:30")) == dt.timedelta(minutes=30)
    # missed runs are caught up once, not once per missed time
    clock.value = at("2026-05-10 12:00")
    state = c.is_due(at("2026-05-01 07:30"))
    assert state.is_due
    assert state.next == (at("2026-05-11 07:30") - clock.value).total_seconds()
    assert c.remaining_estimate(at("2026-05-01 07:30")) < dt.timedelta(0)


def test_crontab_never_run_waits_for_next_time() -> None:
    clock = Clock(at("2026-05-01 07:29"))
    c = crontab(minute=30, hour=7, nowfun=clock)
    assert c.is_due(None) == schedstate(False, 60)
    clock.value = at("2026-05-01 07:29:30")
    assert c.is_due(None) == schedstate(False, 30)
    clock.value = at("2026-05-01 07:30")
    assert c.is_due(None).is_due


def test_naive_and_numeric_last_run_at_are_in_schedule_zone() -> None:
    clock = Clock(at("2026-06-01 08:00:30", NEW_YORK))
    c = crontab(minute=0, hour=8, tz=NEW_YORK, nowfun=clock)
    naive = dt.datetime(2026, 6, 1, 8, 0)  # 08:00 New York time: already ran today
    assert not c.is_due(naive).is_due
    assert not c.is_due(at("2026-06-01 08:00", NEW_YORK).timestamp()).is_due
    assert c.is_due(dt.datetime(2026, 5, 31, 8, 0)).is_due
    assert c.to_aware(naive) == at("2026-06-01 12:00")
    # a naive clock is read in the schedule zone too
    clock.value = dt.datetime(2026, 6, 1, 8, 0, 30)
    assert c.now() == at("2026-06-01 08:00:30", NEW_YORK)
    # default zone (no app, no tz): naive means UTC
    assert crontab().to_aware(dt.datetime(2026, 6, 1)) == at("2026-06-01 00:00")


# -- interval -----------------------------------------------------------------------------


def test_interval_is_due_and_next() -> None:
    clock = Clock(at("2026-05-01 10:00"))
    s = schedule(dt.timedelta(minutes=15), nowfun=clock)
    assert s.is_due(None) == schedstate(True, 900)
    assert s.is_due(at("2026-05-01 09:50")) == schedstate(False, 300)
    assert s.is_due(at("2026-05-01 09:45")) == schedstate(True, 900)
    assert s.is_due(at("2026-05-01 08:00")) == schedstate(True, 900)
    assert s.remaining_estimate(at("2026-05-01 09:50")) == dt.timedelta(minutes=5)
    assert s.remaining_estimate(None) == dt.timedelta(0)
    assert s.next_run_after(at("2026-05-01 10:00")) == at("2026-05-01 10:15")
    assert schedule(30).run_every == dt.timedelta(seconds=30)
    assert schedule(2.5).seconds == 2.5


def test_interval_runs_by_elapsed_time() -> None:
    runs = simulate(schedule(600), at("2026-05-01 10:00"), at("2026-05-01 11:00"))
    assert runs == [at("2026-05-01 10:10") + dt.timedelta(minutes=10 * i) for i in range(5)]


def test_relative_interval_rounds_to_resolution() -> None:
    hourly = schedule(3600, relative=True)
    assert hourly.next_run_after(at("2026-05-01 10:37:12")) == at("2026-05-01 11:00")
    minutely = schedule(dt.timedelta(minutes=5), relative=True)
    assert minutely.next_run_after(at("2026-05-01 10:37:12")) == at("2026-05-01 10:42")
    daily = schedule(dt.timedelta(days=1), relative=True, tz="Europe/London")
    assert daily.next_run_after(at("2026-06-01 15:00", LONDON)) == at("2026-06-02 00:00", LONDON)
    secs = schedule(10, relative=True)
    assert secs.next_run_after(at("2026-05-01 10:00:00.5")) == at("2026-05-01 10:00:10")
    clock = Clock(at("2026-05-01 10:59"))
    hourly.nowfun = clock
    assert hourly.is_due(at("2026-05-01 10:37")) == schedstate(False, 60)


def test_interval_validation_and_human() -> None:
    with pytest.raises(ValueError, match="run_every"):
        schedule(0)
    assert schedule(900).human() == "every 15 minutes"
    assert schedule(60).human() == "every minute"
    assert schedule(3600).human() == "every hour"
    assert schedule(7200).human() == "every 2 hours"
    assert schedule(86400).human() == "every day"
    assert schedule(90).human() == "every 90 seconds"
    assert schedule(2.5).human() == "every 2.5 seconds"
    assert repr(schedule(30)) == "<schedule: every 30 seconds>"


def test_maybe_schedule() -> None:
    assert maybe_schedule(None) is None
    assert maybe_schedule(30) == schedule(30)
    assert maybe_schedule(1.5) == schedule(1.5)
    assert maybe_schedule(dt.timedelta(hours=1), relative=True) == schedule(3600, True)
    c = crontab(minute=0)
    assert maybe_schedule(c) is c
    app: Any = FakeApp(LONDON)
    assert maybe_schedule(c, app=app) is c and c.app is app
    assert maybe_schedule(60, app=app).tz == LONDON
    assert maybe_schedule({"type": "schedule", "every": 5}) == schedule(5)
    with pytest.raises(TypeError):
        maybe_schedule("every minute")  # type: ignore[call-overload]


# -- clocked ------------------------------------------------------------------------------


def test_clocked_fires_once() -> None:
    clock = Clock(at("2026-05-01 09:59"))
    c = clocked(at("2026-05-01 10:00"), nowfun=clock)
    assert c.is_due(None) == schedstate(False, 60)
    clock.value = at("2026-05-01 10:00:01")
    assert c.is_due(None) == schedstate(True, NEVER)
    assert c.is_due(at("2026-04-01 00:00")).is_due  # ran before the clocked time
    assert c.is_due(clock.value) == schedstate(False, NEVER)  # ran: never again
    assert c.remaining_estimate(clock.value) == dt.timedelta(seconds=NEVER)
    runs = simulate(c, at("2026-05-01 09:00"), at("2026-05-02 00:00"))
    assert runs == [at("2026-05-01 10:00")]
    assert c.next_run_after(at("2026-05-01 09:00")) == at("2026-05-01 10:00")
    assert c.next_run_after(at("2026-05-01 10:00")) > at("2050-01-01 00:00")


def test_clocked_naive_time_is_in_schedule_zone() -> None:
    c = clocked(dt.datetime(2026, 7, 1, 9, 0), tz="America/New_York")
    assert c.run_at == at("2026-07-01 13:00")
    assert c.human() == "once at 2026-07-01 09:00 EDT"


# -- solar --------------------------------------------------------------------------------

LONDON_LAT, LONDON_LON = 51.5074, -0.1278
SOLAR_CASES: list[tuple[str, str, str]] = [
    # (event, search from (London time), published London time), timeanddate.com/NOAA
    ("sunrise", "2026-06-21 00:00", "2026-06-21 04:43"),
    ("sunset", "2026-06-21 00:00", "2026-06-21 21:21"),
    ("solar_noon", "2026-06-21 00:00", "2026-06-21 13:02"),
    ("dawn_civil", "2026-06-21 00:00", "2026-06-21 03:55"),
    ("dusk_civil", "2026-06-21 00:00", "2026-06-21 22:09"),
    ("sunrise", "2026-12-21 00:00", "2026-12-21 08:03"),
    ("sunset", "2026-12-21 00:00", "2026-12-21 15:53"),
    ("sunrise", "2026-06-21 05:00", "2026-06-22 04:43"),
]


@pytest.mark.parametrize(("event", "after", "expected"), SOLAR_CASES)
def test_solar_matches_published_times(event: str, after: str, expected: str) -> None:
    s = solar(event, LONDON_LAT, LONDON_LON, tz="Europe/London")
    found = s.next_run_after(at(after, LONDON))
    assert found.tzinfo == LONDON
    assert abs(found - at(expected, LONDON)) <= dt.timedelta(minutes=2)


def test_solar_events_in_order() -> None:
    events = [
        "dawn_astronomical",
        "dawn_nautical",
        "dawn_civil",
        "sunrise",
        "solar_noon",
        "sunset",
        "dusk_civil",
        "dusk_nautical",
        "dusk_astronomical",
    ]
    start = at("2026-03-20 00:00")
    times = [solar(e, LONDON_LAT, LONDON_LON).next_run_after(start) for e in events]
    assert times == sorted(times)
    assert times[-1] - times[0] < dt.timedelta(hours=24)


def test_solar_skips_days_without_the_event() -> None:
    # Tromso: midnight sun until late July, polar night until mid January.
    tromso = (69.6492, 18.9553)
    sunset = solar("sunset", *tromso).next_run_after(at("2026-06-21 00:00"))
    assert at("2026-07-24 00:00") < sunset < at("2026-07-28 00:00")
    sunrise = solar("sunrise", *tromso).next_run_after(at("2026-12-21 00:00"))
    assert at("2027-01-13 00:00") < sunrise < at("2027-01-17 00:00")
    # London has no astronomical night around midsummer.
    dusk = solar("dusk_astronomical", LONDON_LAT, LONDON_LON).next_run_after(at("2026-06-21"))
    assert at("2026-07-10 00:00") < dusk < at("2026-08-01 00:00")
    # solar noon happens every day everywhere
    noon = solar("solar_noon", *tromso).next_run_after(at("2026-06-21 00:00"))
    assert noon.date() == dt.date(2026, 6, 21)


def test_solar_is_due() -> None:
    clock = Clock(at("2026-06-21 04:00", LONDON))
    s = solar("sunrise", LONDON_LAT, LONDON_LON, nowfun=clock)
    state = s.is_due(at("2026-06-20 05:00", LONDON))
    assert not state.is_due and 40 * 60 < state.next < 46 * 60
    clock.value = at("2026-06-21 04:45", LONDON)
    state = s.is_due(at("2026-06-20 05:00", LONDON))
    assert state.is_due and 23 * 3600 < state.next < 24 * 3600


def test_solar_validation() -> None:
    with pytest.raises(ValueError, match="unknown event 'moonrise'"):
        solar("moonrise", 0, 0)
    with pytest.raises(ValueError, match="solar lat: 91"):
        solar("sunrise", 91, 0)
    with pytest.raises(ValueError, match="solar lon: -181"):
        solar("sunrise", 0, -181)
    assert solar("sunset", 51.5, -0.12).human() == "at sunset at 51.5, -0.12"


# -- dict form ----------------------------------------------------------------------------

ROUND_TRIP = [
    schedule(30),
    schedule(dt.timedelta(hours=1), relative=True),
    schedule(2.5, tz="Europe/London"),
    crontab(),
    crontab(minute="*/15", hour="9-17", day_of_week="mon-fri"),
    crontab(minute=30, hour=7, day_of_week=1),
    crontab(minute=[0, 30], hour={8, 20}, day_of_month="1,15", month_of_year="jan-jun"),
    crontab.from_string("0 0 29 2 *", tz="America/New_York"),
    crontab(minute=0, tz=dt.timezone(dt.timedelta(hours=5, minutes=30))),
    solar("sunrise", 51.5074, -0.1278),
    solar("dusk_civil", -33.87, 151.21, tz="Australia/Sydney"),
    clocked(at("2026-05-01 10:00")),
    clocked(dt.datetime(2026, 5, 1, 10, 0)),
    clocked(at("2026-05-01 10:00", LONDON), tz="Europe/London"),
]


@pytest.mark.parametrize("sched", ROUND_TRIP, ids=repr)
def test_to_dict_round_trip(sched: BaseSchedule) -> None:
    data = sched.to_dict()
    text = json.dumps(data)
    again = schedule_from_dict(json.loads(text))
    assert type(again) is type(sched)
    assert again == sched
    assert again.to_dict() == data
    assert again.tz == sched.tz
    assert again.human() == sched.human()
    assert type(sched).from_dict(data) == sched
    assert BaseSchedule.from_dict(data) == sched


def test_from_dict_errors_and_app() -> None:
    with pytest.raises(ValueError, match="unknown schedule type 'cron'"):
        schedule_from_dict({"type": "cron"})
    with pytest.raises(ValueError, match="unknown schedule type"):
        crontab.from_dict(schedule(5).to_dict())
    app: Any = FakeApp(NEW_YORK)
    restored = schedule_from_dict(crontab(minute=0).to_dict(), app=app)
    assert restored.app is app and restored.tz == NEW_YORK
    assert crontab(minute=0).to_dict() == {
        "type": "crontab",
        "minute": "0",
        "hour": "*",
        "day_of_month": "*",
        "month_of_year": "*",
        "day_of_week": "*",
        "timezone": None,
    }
    assert schedule(30).to_dict() == {
        "type": "schedule",
        "every": 30.0,
        "relative": False,
        "timezone": None,
    }
    assert solar("sunrise", 1, 2, tz="Europe/London").to_dict() == {
        "type": "solar",
        "event": "sunrise",
        "latitude": 1.0,
        "longitude": 2.0,
        "timezone": "Europe/London",
    }
    assert clocked(at("2026-05-01 10:00")).to_dict() == {
        "type": "clocked",
        "clocked_time": "2026-05-01T10:00:00+00:00",
        "timezone": None,
    }


def test_from_dict_accepts_aliases_and_text_columns() -> None:
    # Celery attribute names, and every value as text (as read back from TEXT columns)
    assert schedule_from_dict({"type": "schedule", "run_every": "60", "tz": "UTC"}) == (
        schedule(60, tz="UTC")
    )
    assert schedule_from_dict({"type": "solar", "event": "sunset", "lat": "1.5", "lon": "2"}) == (
        solar("sunset", 1.5, 2)
    )
    cron = {"type": "crontab", "minute": "30", "hour": "7", "timezone": "Europe/London"}
    assert schedule_from_dict(cron) == crontab(minute=30, hour=7, tz="Europe/London")


# -- human and repr -----------------------------------------------------------------------

HUMAN_CASES: list[tuple[crontab, str]] = [
    (crontab(), "every minute"),
    (crontab(minute="*/15"), "every 15 minutes"),
    (crontab(minute=0), "every hour"),
    (crontab(minute=5), "every hour at minute 5"),
    (crontab(hour=7, minute=30, day_of_week=1), "at 07:30 on Monday"),
    (crontab(hour=8, minute=0), "at 08:00"),
    (crontab(hour="9,17", minute=0, day_of_week="sat,sun"), "at 09:00, 17:00 on Sunday, Saturday"),
    (crontab(hour=9, minute=0, day_of_week="mon-fri"), "at 09:00 on Monday-Friday"),
    (crontab(hour=0, minute=0, day_of_month=1), "at 00:00 on day 1 of the month"),
    (
        crontab(hour=0, minute=0, day_of_month="1,15", month_of_year="jan-mar,dec"),
        "at 00:00 on days 1, 15 of the month in January-March, December",
    ),
    (crontab(minute="*/7"), "at minute */7 of every hour"),
    (crontab(minute="*/5", hour="9-17"), "at minute */5 of hour 9-17"),
]


@pytest.mark.parametrize(("sched", "text"), HUMAN_CASES, ids=repr)
def test_crontab_human(sched: crontab, text: str) -> None:
    assert sched.human() == text


def test_repr() -> None:
    assert repr(crontab(minute=30, hour=7, day_of_week="mon")) == (
        "<crontab: 30 7 * * mon (m h dom mon dow)>"
    )
    assert repr(crontab.from_string("0 8 * * *", tz="Europe/London")) == (
        "<crontab: 0 8 * * * (m h dom mon dow) Europe/London>"
    )
    assert repr(solar("sunrise", 1, 2)) == "<solar: at sunrise at 1, 2>"
    assert repr(clocked(at("2026-05-01 10:00"))) == "<clocked: 2026-05-01T10:00:00+00:00>"


def test_next_run_after_agrees_with_minute_by_minute_search() -> None:
    rnd = random.Random(20260501)

    def field(low: int, high: int) -> str:
        a, b = sorted(rnd.sample(range(low, high + 1), 2))
        return rnd.choice(["*", str(a), f"{a}-{b}", f"*/{rnd.randint(2, 5)}", f"{a},{b}"])

    for _ in range(60):
        c = crontab(field(0, 59), field(0, 23), field(0, 6))
        start = at("2026-01-01 00:00") + dt.timedelta(seconds=rnd.randint(0, 365 * 86400))
        t = start.replace(second=0, microsecond=0) + MINUTE
        while not (
            t.minute in c.minute and t.hour in c.hour and (t.weekday() + 1) % 7 in c.day_of_week
        ):
            t += MINUTE
        assert c.next_run_after(start) == t, (c, start)


def test_a_users_subclass_does_not_take_over_its_parents_type() -> None:
    class Every(schedule):  # a custom schedule, as users write them
        pass

    assert type(maybe_schedule({"type": "schedule", "every": 5})) is schedule
    assert Every(5).to_dict()["type"] == "schedule"

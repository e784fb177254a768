"""Celery's names from celery.schedules (crontab_parser), celery.utils.time and celery.states."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from celeriac import states
from celeriac.rates import Rate, parse_rate
from celeriac.schedules import ParseException, crontab, crontab_parser
from celeriac.states import PRECEDENCE, precedence, state
from celeriac.utils.time import (
    adjust_timestamp,
    delta_resolution,
    humanize_seconds,
    is_naive,
    localize,
    make_aware,
    maybe_iso8601,
    maybe_make_aware,
    maybe_timedelta,
    rate,
    remaining,
    timezone,
    to_utc,
    utcoffset,
    weekday,
)

NEW_YORK = ZoneInfo("America/New_York")
UTC = dt.UTC

# -- crontab_parser -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "text", "expected"),
    [
        ((60,), "*/15", {0, 15, 30, 45}),
        ((60, 0), "*", set(range(60))),
        ((24,), "1-5", {1, 2, 3, 4, 5}),
        ((24,), "*/4", {0, 4, 8, 12, 16, 20}),
        ((24,), "22-2", {22, 23, 0, 1, 2}),
        ((7,), "mon-fri", {1, 2, 3, 4, 5}),
        ((7,), "fri-mon", {5, 6, 0, 1}),
        ((7,), "sunday,SAT", {0, 6}),
        ((7,), "*", set(range(7))),
        ((31, 1), "*/3", set(range(1, 32, 3))),
        ((12, 1), "2-12/2", {2, 4, 6, 8, 10, 12}),
        ((12, 1), "jan-mar, dec", {1, 2, 3, 12}),
        ((60,), " 5 ", {5}),
        ((60,), "1-10/3,30", {1, 4, 7, 10, 30}),
    ],
)
def test_crontab_parser_expands_like_celery(
    args: tuple[int, ...], text: str, expected: set[int]
) -> None:
    assert crontab_parser(*args).parse(text) == expected


@pytest.mark.parametrize(
    ("args", "text"),
    [
        ((60,), "60"),
        ((60,), "x"),
        ((60,), "-1"),
        ((60,), "1,,2"),
        ((60,), ""),
        ((60,), "*/"),
        ((60,), "*/0"),
        ((60,), "1.5"),
        ((60,), "mon"),  # names only for days of the week and months
        ((7,), "7"),  # as Celery's parser: 0-6
        ((7,), "funday"),
        ((31, 1), "0"),
        ((12, 1), "13"),
    ],
)
def test_crontab_parser_rejects_bad_text(args: tuple[int, ...], text: str) -> None:
    with pytest.raises(ParseException):
        crontab_parser(*args).parse(text)
    with pytest.raises(ValueError):  # projects catch either
        crontab_parser(*args).parse(text)


def test_parse_exception_is_a_value_error_raised_by_crontab_too() -> None:
    assert issubclass(ParseException, ValueError)
    assert crontab_parser.ParseException is ParseException
    with pytest.raises(ParseException, match="crontab minute: invalid value 'bad'"):
        crontab(minute="bad")
    with pytest.raises(ParseException, match="crontab hour: 24 is out of range 0-23"):
        crontab(hour=24)


def test_crontab_and_parser_read_fields_alike() -> None:
    c = crontab(minute="*/20", hour="9-17/4", day_of_week="mon-fri", month_of_year="jan,jul")
    assert c.minute == crontab_parser(60).parse("*/20")
    assert c.hour == crontab_parser(24).parse("9-17/4")
    assert c.day_of_week == crontab_parser(7).parse("mon-fri")
    assert c.month_of_year == crontab_parser(12, 1).parse("jan,jul")
    assert crontab(day_of_week="7").day_of_week == {0}  # crontab still takes 7 for Sunday


# -- celeriac.utils.time ------------------------------------------------------------------


def test_rate_reuses_the_rate_limit_parser() -> None:
    assert rate("100/m") == pytest.approx(100 / 60)
    assert rate("2/h") == pytest.approx(2 / 3600)
    assert rate("0.5/s") == 0.5
    assert rate("5") == 5.0
    assert rate(3) == 3.0
    assert rate(None) == 0 and rate("") == 0 and rate("0/m") == 0
    with pytest.raises(ValueError):
        rate("ten per minute")
    assert parse_rate("10/m") == Rate(10, 60)  # still importable from celeriac.rates


def test_humanize_seconds_words_like_celery() -> None:
    assert humanize_seconds(0) == "now"
    assert humanize_seconds(1) == "1.00 second"
    assert humanize_seconds(1.5) == "1.50 seconds"
    assert humanize_seconds(60) == "1.00 minute"
    assert humanize_seconds(61) == "1.02 minutes"
    assert humanize_seconds(7200) == "2.00 hours"
    assert humanize_seconds(90000) == "1.04 days"
    assert humanize_seconds(60, "in ") == "in 1.00 minute"
    assert humanize_seconds(60, "in", sep=" ") == "in 1.00 minute"
    assert humanize_seconds(0, "in ") == "now"
    assert humanize_seconds(0.5, microseconds=True) == "0.50 seconds"


def test_maybe_timedelta_and_iso8601() -> None:
    assert maybe_timedelta(5) == dt.timedelta(seconds=5)
    assert maybe_timedelta(1.5) == dt.timedelta(seconds=1.5)
    assert maybe_timedelta(dt.timedelta(hours=1)) == dt.timedelta(hours=1)
    assert maybe_timedelta(None) is None
    assert maybe_iso8601(None) is None and maybe_iso8601("") is None
    assert maybe_iso8601("2024-01-01T10:00:00Z") == dt.datetime(2024, 1, 1, 10, tzinfo=UTC)
    assert maybe_iso8601("2024-01-01") == dt.datetime(2024, 1, 1)
    now = dt.datetime.now(UTC)
    assert maybe_iso8601(now) is now


def test_weekday() -> None:
    assert (weekday("sunday"), weekday("sun"), weekday("Mon"), weekday("SAT")) == (0, 0, 1, 6)
    with pytest.raises(KeyError):
        weekday("funday")


def test_naive_and_aware() -> None:
    naive = dt.datetime(2024, 1, 1, 12)
    assert is_naive(naive) and not is_naive(naive.replace(tzinfo=UTC))
    assert to_utc(naive) == dt.datetime(2024, 1, 1, 12, tzinfo=UTC)
    assert to_utc(dt.datetime(2024, 1, 1, 7, tzinfo=NEW_YORK)).hour == 12
    assert make_aware(naive, NEW_YORK) == dt.datetime(2024, 1, 1, 17, tzinfo=UTC)
    assert localize(dt.datetime(2024, 1, 1, 17, tzinfo=UTC), NEW_YORK).hour == 12
    assert localize(naive, NEW_YORK).utcoffset() == dt.timedelta(hours=-5)
    assert maybe_make_aware(naive) == naive.replace(tzinfo=UTC)
    in_ny = maybe_make_aware(naive, NEW_YORK)
    assert in_ny.tzinfo is NEW_YORK and in_ny == naive.replace(tzinfo=UTC)
    assert maybe_make_aware(naive, "America/New_York", naive_as_utc=False).hour == 12
    aware = dt.datetime(2024, 1, 1, tzinfo=NEW_YORK)
    assert maybe_make_aware(aware, UTC) is aware


def test_make_aware_across_daylight_saving() -> None:
    # a repeated time: the first occurrence; a skipped one: moved on by the gap
    repeated = make_aware(dt.datetime(2024, 11, 3, 1, 30), NEW_YORK)
    assert repeated.utcoffset() == dt.timedelta(hours=-4)
    skipped = make_aware(dt.datetime(2024, 3, 10, 2, 30), NEW_YORK)
    assert (skipped.hour, skipped.minute) == (3, 30)
    assert skipped.utcoffset() == dt.timedelta(hours=-4)


def test_timezone_object() -> None:
    assert timezone.utc.utcoffset(None) == dt.timedelta(0)
    assert isinstance(timezone.local, dt.tzinfo)
    assert timezone.get_timezone("America/New_York") == NEW_YORK
    assert timezone.get_timezone(NEW_YORK) is NEW_YORK
    assert timezone.tz_or_local() is timezone.local
    noon_utc = dt.datetime(2024, 1, 1, 12)
    assert timezone.to_local(noon_utc, NEW_YORK).hour == 7
    assert timezone.to_local(noon_utc, "America/New_York", orig=NEW_YORK).hour == 12
    local = timezone.to_local(noon_utc)
    assert local == noon_utc.replace(tzinfo=UTC) and not is_naive(local)
    assert timezone.to_system(noon_utc.replace(tzinfo=UTC)) == noon_utc.replace(tzinfo=UTC)


def test_delta_resolution() -> None:
    when = dt.datetime(2024, 1, 1, 10, 17, 33, 5, tzinfo=UTC)
    assert delta_resolution(when, dt.timedelta(days=2)) == dt.datetime(2024, 1, 1, tzinfo=UTC)
    assert delta_resolution(when, dt.timedelta(hours=2)).time() == dt.time(10)
    assert delta_resolution(when, dt.timedelta(minutes=5)).time() == dt.time(10, 17)
    assert delta_resolution(when, dt.timedelta(seconds=30)) == when


def test_remaining() -> None:
    start = dt.datetime(2024, 1, 1, 10, 17, 33, tzinfo=UTC)
    now = start + dt.timedelta(minutes=10)
    hour = dt.timedelta(hours=1)
    assert remaining(start, hour, now) == dt.timedelta(minutes=50)
    assert remaining(start, hour, now, relative=True) == dt.timedelta(minutes=32, seconds=27)
    assert remaining(start, hour, start + 2 * hour) == -hour
    assert remaining(start.replace(tzinfo=None), hour, now) == dt.timedelta(minutes=50)
    fresh = remaining(dt.datetime.now(UTC), hour)
    assert dt.timedelta(minutes=59) < fresh <= hour
    # real time across the spring-forward gap: 01:30 EST + 1h is 03:30 EDT
    before = dt.datetime(2024, 3, 10, 1, 30, tzinfo=NEW_YORK)
    assert remaining(before, hour, before) == hour


def test_utcoffset_and_adjust_timestamp() -> None:
    offset = utcoffset()
    assert isinstance(offset, float)
    assert adjust_timestamp(1000.0, 1.0, here=lambda: 0.0) == 1000.0 - 3600
    assert adjust_timestamp(1000.0, offset) == 1000.0


# -- celeriac.states ----------------------------------------------------------------------


def test_precedence_follows_celery() -> None:
    high = [states.SUCCESS, states.FAILURE, None, states.REVOKED, states.STARTED]
    low = [states.RECEIVED, states.REJECTED, states.RETRY, states.PENDING]
    assert high + low == PRECEDENCE
    assert precedence(states.SUCCESS) == 0
    assert precedence(states.PENDING) == len(PRECEDENCE) - 1
    assert precedence("PROGRESS") == precedence(None) == 2


def test_state_compares_by_precedence() -> None:
    assert state(states.SUCCESS) > state(states.PENDING)
    assert state(states.PENDING) < state(states.SUCCESS)
    assert state(states.FAILURE) > state(states.STARTED)
    assert state(states.RETRY) < state(states.STARTED)
    assert state("PROGRESS") > state(states.STARTED)
    assert not state("PROGRESS") > state(states.SUCCESS)
    assert state(states.STARTED) >= states.STARTED and state(states.STARTED) <= states.STARTED
    assert state(states.SUCCESS) == "SUCCESS" and isinstance(state("X"), str)
    ranked = sorted(map(state, [states.PENDING, states.SUCCESS, states.STARTED]))
    assert ranked == [states.PENDING, states.STARTED, states.SUCCESS]

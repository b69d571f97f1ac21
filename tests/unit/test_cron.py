"""Schedule maths: cron expressions across both DST transitions in several zones, intervals, Celery's
schedule objects. Pure; fixed instants, no clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from celery.schedules import crontab, schedule

from skqueue.errors import ConfigError
from skqueue.scheduler.cron import Cron, Interval, crontab_expression, parse_schedule

HOUR = timedelta(hours=1)

# (zone, a UTC instant well before the spring-forward, the same before the fall-back), 2026.
# London: 29 Mar 01:00 GMT -> 02:00 BST, 25 Oct 02:00 BST -> 01:00 GMT.
# New York: 8 Mar 02:00 EST -> 03:00 EDT, 1 Nov 02:00 EDT -> 01:00 EST.
# Sydney (southern hemisphere): 4 Oct 02:00 AEST -> 03:00 AEDT, 5 Apr 03:00 AEDT -> 02:00 AEST.
ZONES = {
    "Europe/London": (datetime(2026, 3, 28, 12, tzinfo=UTC), datetime(2026, 10, 24, 12, tzinfo=UTC)),
    "America/New_York": (datetime(2026, 3, 7, 12, tzinfo=UTC), datetime(2026, 10, 31, 12, tzinfo=UTC)),
    "Australia/Sydney": (datetime(2026, 10, 3, 0, tzinfo=UTC), datetime(2026, 4, 4, 0, tzinfo=UTC)),
}
TRANSITIONS = [(zone, start, kind) for zone, (spring, fall) in ZONES.items()
               for start, kind in ((spring, "spring"), (fall, "fall"))]


def firings(cron: Cron | Interval, start: datetime, count: int) -> list[datetime]:
    out, cursor = [], start
    for _ in range(count):
        cursor = cron.next_after(cursor)
        out.append(cursor)
    return out


def test_cron_in_utc_is_plain_cron() -> None:
    cron = Cron.parse("*/15 9-10 * * mon-fri", ZoneInfo("UTC"))
    after = datetime(2026, 1, 2, 10, 40, tzinfo=UTC)  # a Friday
    assert firings(cron, after, 3) == [datetime(2026, 1, 2, 10, 45, tzinfo=UTC),
                                       datetime(2026, 1, 5, 9, 0, tzinfo=UTC),
                                       datetime(2026, 1, 5, 9, 15, tzinfo=UTC)]


def test_next_after_is_strictly_after() -> None:
    cron = Cron.parse("0 2 * * *", ZoneInfo("UTC"))
    at = datetime(2026, 1, 1, 2, tzinfo=UTC)
    assert cron.next_after(at) == at + timedelta(days=1)
    assert cron.next_after(at - timedelta(microseconds=1)) == at


@pytest.mark.parametrize("zone,start,kind", TRANSITIONS)
def test_hourly_stays_hourly_through_both_transitions(zone: str, start: datetime, kind: str) -> None:
    cron = Cron.parse("0 * * * *", ZoneInfo(zone))
    times = firings(cron, start, 48)
    assert all(b - a == HOUR for a, b in pairwise(times)), kind
    assert all(t.astimezone(ZoneInfo(zone)).minute == 0 for t in times)


@pytest.mark.parametrize("zone,start,kind", TRANSITIONS)
@pytest.mark.parametrize("expr", ["0 2 * * *", "30 1 * * *", "30 2 * * *"])
def test_daily_fires_once_every_local_day(zone: str, start: datetime, kind: str, expr: str) -> None:
    tz = ZoneInfo(zone)
    times = firings(Cron.parse(expr, tz), start, 4)
    days = [t.astimezone(tz).date() for t in times]
    assert days == [days[0] + timedelta(days=i) for i in range(4)], (kind, times)
    assert times == sorted(set(times))


@pytest.mark.parametrize("zone,expr,after,expected", [
    # a skipped local time fires when the clocks change: 02:00 BST = 01:00 UTC
    ("Europe/London", "30 1 * * *", datetime(2026, 3, 28, 12, tzinfo=UTC), datetime(2026, 3, 29, 1, tzinfo=UTC)),
    ("America/New_York", "30 2 * * *", datetime(2026, 3, 7, 12, tzinfo=UTC), datetime(2026, 3, 8, 7, tzinfo=UTC)),
    ("America/New_York", "0 2 * * *", datetime(2026, 3, 7, 12, tzinfo=UTC), datetime(2026, 3, 8, 7, tzinfo=UTC)),
    ("Australia/Sydney", "0 2 * * *", datetime(2026, 10, 3, 0, tzinfo=UTC), datetime(2026, 10, 3, 16, tzinfo=UTC)),
    ("Australia/Sydney", "30 2 * * *", datetime(2026, 10, 3, 0, tzinfo=UTC),
     datetime(2026, 10, 3, 16, tzinfo=UTC)),
    # a repeated local time fires once, at its first occurrence (summer time)
    ("Europe/London", "30 1 * * *", datetime(2026, 10, 24, 12, tzinfo=UTC),
     datetime(2026, 10, 25, 0, 30, tzinfo=UTC)),
    ("America/New_York", "30 1 * * *", datetime(2026, 10, 31, 12, tzinfo=UTC),
     datetime(2026, 11, 1, 5, 30, tzinfo=UTC)),
    ("Australia/Sydney", "0 2 * * *", datetime(2026, 4, 4, 0, tzinfo=UTC), datetime(2026, 4, 4, 15, tzinfo=UTC)),
    ("Australia/Sydney", "30 2 * * *", datetime(2026, 4, 4, 0, tzinfo=UTC),
     datetime(2026, 4, 4, 15, 30, tzinfo=UTC)),
    # and the firing after it is the next day's, not the second occurrence
    ("Europe/London", "30 1 * * *", datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
     datetime(2026, 10, 26, 1, 30, tzinfo=UTC)),
    # times next to a transition are untouched: 02:00 exists twice nowhere in London
    ("Europe/London", "0 2 * * *", datetime(2026, 10, 24, 12, tzinfo=UTC), datetime(2026, 10, 25, 2, tzinfo=UTC)),
])
def test_the_dst_rule(zone: str, expr: str, after: datetime, expected: datetime) -> None:
    assert Cron.parse(expr, ZoneInfo(zone)).next_after(after) == expected


def test_every_half_hour_keeps_elapsed_time_through_fall_back() -> None:
    cron = Cron.parse("*/30 * * * *", ZoneInfo("America/New_York"))
    times = firings(cron, datetime(2026, 11, 1, 3, tzinfo=UTC), 10)
    assert all(b - a == timedelta(minutes=30) for a, b in pairwise(times))


def test_a_skipped_hour_collapses_to_one_firing_for_fixed_hours() -> None:
    cron = Cron.parse("*/20 1 * * *", ZoneInfo("Europe/London"))  # 01:00, 01:20, 01:40: all skipped
    times = firings(cron, datetime(2026, 3, 28, 12, tzinfo=UTC), 2)
    assert times == [datetime(2026, 3, 29, 1, tzinfo=UTC), datetime(2026, 3, 30, 0, tzinfo=UTC)]


@pytest.mark.parametrize("expr,local_hour", [("0 2 * * *", 2), ("30 1 * * *", 1), ("0 * * * *", None)])
def test_kuala_lumpur_has_no_dst(expr: str, local_hour: int | None) -> None:
    tz = ZoneInfo("Asia/Kuala_Lumpur")
    cron = Cron.parse(expr, tz)
    times = firings(cron, datetime(2026, 1, 1, tzinfo=UTC), 400)
    step = HOUR if local_hour is None else timedelta(days=1)
    assert all(b - a == step for a, b in pairwise(times))
    if local_hour is not None:
        assert {t.astimezone(tz).hour for t in times} == {local_hour}
        assert {(t.hour - local_hour) % 24 for t in times} == {16}  # UTC+8


@pytest.mark.parametrize("zone", ["Europe/London", "America/New_York", "Australia/Sydney", "Asia/Kuala_Lumpur"])
@pytest.mark.parametrize("expr", ["0 */6 * * *", "15 0-3 * * *", "45 1 * * 0", "0 0 1 * *"])
def test_a_year_of_firings_strictly_increases_and_matches_local_fields(zone: str, expr: str) -> None:
    tz = ZoneInfo(zone)
    cron, times = Cron.parse(expr, tz), [datetime(2026, 1, 1, tzinfo=UTC)]
    while times[-1].year == 2026:
        times.append(cron.next_after(times[-1]))
    assert times == sorted(set(times))
    minute = int(expr.split(maxsplit=1)[0])
    # only a firing moved to the end of a skipped hour is off its minute: at most once a year
    assert sum(t.astimezone(tz).minute != minute for t in times[1:-1]) <= 1


def test_interval_is_aligned_to_the_epoch() -> None:
    every = Interval.of(3600)
    assert every.next_after(datetime(2026, 1, 1, 10, 59, 59, tzinfo=UTC)) == datetime(2026, 1, 1, 11, tzinfo=UTC)
    assert every.next_after(datetime(2026, 1, 1, 11, tzinfo=UTC)) == datetime(2026, 1, 1, 12, tzinfo=UTC)
    half = Interval.of(0.5)
    assert firings(half, datetime(2026, 1, 1, tzinfo=UTC), 2) == [
        datetime(2026, 1, 1, 0, 0, 0, 500000, tzinfo=UTC), datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC)]


def test_interval_and_cron_count_firings_in_a_half_open_range() -> None:
    start, end = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 3, tzinfo=UTC)
    assert Interval.of(3600).count(start, end) == 3
    assert Interval.of(3600).count(start + timedelta(seconds=1), end) == 2
    assert Cron.parse("0 * * * *", ZoneInfo("UTC")).count(start, end) == 3
    assert Cron.parse("0 * * * *", ZoneInfo("UTC")).count(end, start) == 0


@pytest.mark.parametrize("value,expected", [
    (crontab(minute=0), "0 * * * *"),
    (crontab(minute=0, hour="*/6"), "0 */6 * * *"),
    (crontab(minute=[0, 30], hour={2, 1}, day_of_week="mon-fri"), "0,30 1,2 * * mon-fri"),
    (crontab(hour=2, minute=0, day_of_week=1), "0 2 * * 1"),
    (crontab(hour=9, minute=0, day_of_month=1), "0 9 1 * *"),
])
def test_celery_crontab_becomes_a_cron_string(value: object, expected: str) -> None:
    assert crontab_expression(value) == expected
    parsed = parse_schedule(value, ZoneInfo("UTC"))
    assert isinstance(parsed, Cron) and parsed.expr == expected


@pytest.mark.parametrize("value,seconds", [(30, 30), (2.5, 2.5), (timedelta(hours=6), 21600),
                                           (schedule(timedelta(seconds=86400)), 86400), (schedule(60), 60)])
def test_intervals_from_numbers_timedeltas_and_celery_schedules(value: object, seconds: float) -> None:
    parsed = parse_schedule(value, ZoneInfo("UTC"))
    assert isinstance(parsed, Interval) and parsed.seconds == seconds


@pytest.mark.parametrize("value,message", [
    ("61 * * * *", "invalid cron expression"),
    ("0 * * *", "must have 5 fields"),
    ("0 0 * * * *", "must have 5 fields"),
    ("0 0 31 2 *", "invalid cron expression"),
    (0, "positive number of seconds"),
    (-5, "positive number of seconds"),
    (True, "neither seconds"),
    (SimpleNamespace(event="sunset", lat=3.1, lon=101.7), "solar schedules are not supported"),
    (object(), "unsupported schedule"),
])
def test_bad_schedules_are_config_errors(value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_schedule(value, ZoneInfo("UTC"))


def test_aliases_and_description() -> None:
    cron = Cron.parse("@daily", ZoneInfo("Asia/Kuala_Lumpur"))
    assert cron.next_after(datetime(2026, 1, 1, tzinfo=UTC)) == datetime(2026, 1, 1, 16, tzinfo=UTC)
    assert cron.describe() == "cron @daily Asia/Kuala_Lumpur"
    assert Interval.of(1).describe() == "every 1s"

"""Schedule entries and the catch-up plan, stepped with an injected clock; the message a firing sends,
compared with what a Celery client sends."""

from __future__ import annotations

import base64
import json
import random
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from celery.schedules import crontab

from skqueue.app import App
from skqueue.broker.schedules import EntryState
from skqueue.config import Settings
from skqueue.errors import ConfigError
from skqueue.protocol.message import decode_task
from skqueue.scheduler import publish
from skqueue.scheduler.entries import Entry, parse_entries, parse_entry, schedule_of
from skqueue.scheduler.plan import BATCH_LIMIT, GRACE, Plan, due, due_at, first_due, jitter_of
from skqueue.scheduler.senangkira import DEFAULT_SCHEDULE
from tests.unit.conftest import CeleryClient

UTC_ZONE = ZoneInfo("UTC")
T0 = datetime(2026, 1, 1, 12, tzinfo=UTC)
SECOND = timedelta(seconds=1)


def entry(schedule: Any = 60, **raw: Any) -> Entry:
    return parse_entry("e", {"task": "t.run", "schedule": schedule, **raw}, UTC_ZONE)


def state(e: Entry, next_run: datetime | None, **fields: Any) -> EntryState:
    return EntryState(next_run=next_run, schedule=e.schedule.describe(), **fields)


def apply(e: Entry, current: EntryState, plan: Plan) -> EntryState:
    """What the fire/advance scripts do with a plan, for simulations."""
    return EntryState(next_run=plan.next_run, schedule=e.schedule.describe(),
                      run_count=current.run_count + len(plan.fire), missed=current.missed + plan.missed)


def simulate(e: Entry, start: datetime, end: datetime, step: timedelta,
             down: tuple[datetime, datetime] | None = None) -> tuple[list[datetime], EntryState]:
    """Tick as the scheduler loop does from ``start`` to ``end``: at the next due time (50 ms late) or
    after ``step``, whichever comes first; not at all while ``down``. Returns every firing sent, in order."""
    sent: list[datetime] = []
    current = EntryState()
    now = start
    while now <= end:
        if down is not None and down[0] <= now < down[1]:
            now = down[1]
            continue
        plan = due(e, current, now)
        sent.extend(plan.fire)
        current = apply(e, current, plan)
        now = min(first_due(e, plan) + timedelta(milliseconds=50), now + step)
    return sent, current


# ---------------------------------------------------------------------------------------------- entries
def test_celery_shaped_entries_parse() -> None:
    raw = {
        "hourly": {"task": "a.b", "schedule": crontab(minute=0), "args": (1, 2), "kwargs": {"k": "v"},
                   "options": {"queue": "high_priority", "priority": 7, "expires": 300}},
        "every-minute": {"task": "a.c", "schedule": 60.0, "relative": False},
        "cron": {"task": "a.d", "schedule": "0 2 * * *", "timezone": "Asia/Kuala_Lumpur", "catch_up": "all",
                 "catch_up_window": timedelta(hours=2), "jitter": 5, "overlap": "skip"},
    }
    hourly, minute, cron = parse_entries(raw, ZoneInfo("Europe/London"))
    assert hourly.schedule.describe() == "cron 0 * * * * Europe/London"
    assert hourly.args == (1, 2) and hourly.kwargs == {"k": "v"}
    assert (hourly.options.queue, hourly.options.priority, hourly.options.expires) == ("high_priority", 7, 300)
    assert (hourly.catch_up, hourly.catch_up_window, hourly.jitter, hourly.overlap) == ("latest", 86400, 0, "allow")
    assert minute.schedule.describe() == "every 60s"
    assert cron.tz == ZoneInfo("Asia/Kuala_Lumpur") and cron.schedule.describe().endswith("Asia/Kuala_Lumpur")
    assert (cron.catch_up, cron.catch_up_window, cron.jitter, cron.overlap) == ("all", 7200, 5, "skip")


@pytest.mark.parametrize("raw,message", [
    ({"schedule": 1}, "'task'"),
    ({"task": "x"}, "'schedule' is required"),
    ({"task": "x", "schedule": 1, "every": 2}, "unknown key"),
    ({"task": "x", "schedule": 1, "catch_up": "some"}, "catch_up must be one of skip, latest, all"),
    ({"task": "x", "schedule": 1, "overlap": "queue"}, "overlap must be one of allow, skip"),
    ({"task": "x", "schedule": 1, "catch_up_window": 0}, "catch_up_window must be positive"),
    ({"task": "x", "schedule": 1, "jitter": -1}, "jitter must be zero or more"),
    ({"task": "x", "schedule": 1, "timezone": "Mars/Olympus"}, "unknown timezone"),
    ({"task": "x", "schedule": 1, "options": {"exchange": "e"}}, "unsupported option"),
    ({"task": "x", "schedule": 1, "args": {"a": 1}}, "'args' must be a list"),
    ({"task": "x", "schedule": 1, "args": [object()]}, "cannot be sent as JSON"),
    ({"task": "x", "schedule": 1, "overlap": "skip", "options": {"ignore_result": True}}, "needs results"),
    ({"task": "x", "schedule": "every day"}, "must have 5 fields"),
])
def test_bad_entries_name_the_entry_and_the_problem(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        parse_entry("nightly", raw, UTC_ZONE)
    assert "'nightly'" in str(info.value)


def test_default_senangkira_schedule() -> None:
    entries = {e.task.rsplit(".", 1)[1]: e for e in parse_entries(DEFAULT_SCHEDULE, UTC_ZONE)}
    assert {name: (e.schedule.describe(), e.options.queue) for name, e in entries.items()} == {
        "refresh_dashboard_cache": ("cron 0 * * * * UTC", "high_priority"),
        "warm_dashboard_cache": ("cron 0 2 * * * UTC", "cache_operations"),
        "performance_analysis": ("cron 0 */6 * * * UTC", "analytics"),
        "cleanup_old_data": ("cron 0 3 * * * UTC", "low_priority"),
    }
    assert all(e.task.startswith("dashboard.tasks.") for e in entries.values())


def test_the_default_schedule_is_only_for_the_dashboard_app() -> None:
    dashboard = App("dashboard", timezone="Asia/Kuala_Lumpur")
    dashboard.task(name="dashboard.tasks.refresh_dashboard_cache")(lambda: None)
    assert len(schedule_of(dashboard)) == 4
    assert schedule_of(dashboard)[0].tz == ZoneInfo("Asia/Kuala_Lumpur")
    assert schedule_of(App("other")) == []
    own = App("dashboard", beat_schedule={"mine": {"task": "dashboard.tasks.refresh_dashboard_cache",
                                                   "schedule": 10}})
    own.task(name="dashboard.tasks.refresh_dashboard_cache")(lambda: None)
    assert [e.name for e in schedule_of(own)] == ["mine"]


def test_beat_schedule_from_the_environment_is_json() -> None:
    from skqueue.config import from_environ

    settings = from_environ(Settings(), {"CELERY_BEAT_SCHEDULE": '{"a": {"task": "t", "schedule": "0 * * * *"}}',
                                         "SKQUEUE_BEAT_LEASE_SECONDS": "2.5"})
    assert settings.beat_schedule == {"a": {"task": "t", "schedule": "0 * * * *"}}
    assert settings.beat_lease_seconds == 2.5 and Settings().beat_lease_seconds == 15.0
    with pytest.raises(ConfigError, match="beat_schedule"):
        from_environ(Settings(), {"CELERY_BEAT_SCHEDULE": "[1, 2]"})


# ---------------------------------------------------------------------------------------------- plan
def test_a_new_entry_starts_at_its_next_fire_time_without_firing() -> None:
    e = entry("0 * * * *")
    plan = due(e, EntryState(), T0 + timedelta(minutes=10))
    assert plan == Plan((), 0, T0 + timedelta(hours=1), restart=True)


def test_a_changed_schedule_starts_over() -> None:
    e = entry("0 * * * *")
    old = EntryState(next_run=T0 + timedelta(days=1), schedule="cron 0 2 * * * UTC")
    assert due(e, old, T0).restart and due(e, old, T0).next_run == T0 + timedelta(hours=1)


def test_on_time_firing_is_sent_and_the_next_one_planned() -> None:
    e = entry(60)
    assert due(e, state(e, T0), T0 - SECOND) == Plan((), 0, T0)
    assert due(e, state(e, T0), T0 + timedelta(milliseconds=30)) == Plan((T0,), 0, T0 + timedelta(minutes=1))


@pytest.mark.parametrize("policy,fired,missed", [
    ("skip", [], 5),
    ("latest", [T0 + timedelta(hours=4)], 4),
    ("all", [T0 + timedelta(hours=h) for h in range(5)], 0),
])
def test_catch_up_after_downtime(policy: str, fired: list[datetime], missed: int) -> None:
    e = entry("0 * * * *", catch_up=policy)
    now = T0 + timedelta(hours=4, minutes=20)  # firings at 12:00..16:00 were missed
    plan = due(e, state(e, T0), now)
    assert plan == Plan(tuple(fired), missed, T0 + timedelta(hours=5))


@pytest.mark.parametrize("policy,fired,missed", [
    ("skip", [], 5),
    ("latest", [T0 + timedelta(hours=4)], 4),
    ("all", [T0 + timedelta(hours=3), T0 + timedelta(hours=4)], 3),
])
def test_firings_older_than_the_window_are_never_sent(policy: str, fired: list[datetime], missed: int) -> None:
    e = entry("0 * * * *", catch_up=policy, catch_up_window=timedelta(hours=1, minutes=30))
    plan = due(e, state(e, T0), T0 + timedelta(hours=4, minutes=20))
    assert plan == Plan(tuple(fired), missed, T0 + timedelta(hours=5))


def test_on_time_firings_are_all_sent_and_supersede_stale_ones() -> None:
    e = entry(1, catch_up="latest")
    now = T0 + GRACE + timedelta(seconds=5, milliseconds=200)  # T0..T0+5 s are late, the rest on time
    plan = due(e, state(e, T0), now)
    assert plan.fire == tuple(T0 + timedelta(seconds=s) for s in range(6, 16)) and plan.missed == 6
    assert plan.next_run == T0 + timedelta(seconds=16)
    assert due(e, state(e, T0), now).fire == due(entry(1, catch_up="skip"), state(e, T0), now).fire


def test_all_sends_a_long_backlog_in_batches() -> None:
    e = entry(1, catch_up="all")
    now = T0 + timedelta(seconds=BATCH_LIMIT + 500)
    first = due(e, state(e, T0), now)
    assert len(first.fire) == BATCH_LIMIT and first.missed == 0
    assert first.next_run == T0 + timedelta(seconds=BATCH_LIMIT)
    second = due(e, state(e, first.next_run), now)
    assert len(second.fire) == 501 and second.fire[-1] == now


def test_a_day_of_ticks_sends_every_firing_once() -> None:
    e = entry("*/10 * * * *")
    sent, final = simulate(e, T0, T0 + timedelta(days=1, seconds=10), timedelta(minutes=7))
    assert len(sent) == 144 and sent == sorted(set(sent)) and final.missed == 0
    assert all(t.minute % 10 == 0 and t.second == 0 for t in sent)


@pytest.mark.parametrize("policy,count,missed", [("skip", 24 * 6 - 18, 18), ("latest", 24 * 6 - 17, 17),
                                                  ("all", 24 * 6, 0)])
def test_a_day_with_three_hours_down(policy: str, count: int, missed: int) -> None:
    e = entry("*/10 * * * *", catch_up=policy)
    down = (T0 + timedelta(hours=5, minutes=1), T0 + timedelta(hours=8, minutes=1))
    sent, final = simulate(e, T0 - SECOND, T0 + timedelta(days=1) - SECOND, timedelta(minutes=5), down)
    assert len(sent) == count and final.missed == missed
    assert sent == sorted(set(sent))


def test_dst_day_in_new_york_with_an_injected_clock() -> None:
    tz = ZoneInfo("America/New_York")
    hourly = parse_entry("h", {"task": "t", "schedule": "0 * * * *"}, tz)
    daily = parse_entry("d", {"task": "t", "schedule": "30 2 * * *"}, tz)
    start, end = datetime(2026, 3, 7, 12, tzinfo=UTC), datetime(2026, 3, 9, 12, tzinfo=UTC)
    hours, _ = simulate(hourly, start, end, timedelta(minutes=5))
    days, _ = simulate(daily, start, end, timedelta(minutes=5))
    assert len(hours) == 48 and all(b - a == timedelta(hours=1) for a, b in pairwise(hours))
    assert days == [datetime(2026, 3, 8, 7, tzinfo=UTC), datetime(2026, 3, 9, 6, 30, tzinfo=UTC)]


# ---------------------------------------------------------------------------------------------- jitter
def test_jitter_stays_within_bounds_and_is_the_same_in_every_process() -> None:
    e = entry(60, jitter=10)
    rng = random.Random(7)
    times = [T0 + timedelta(minutes=rng.randrange(100_000)) for _ in range(300)]
    delays = [jitter_of(e, t).total_seconds() for t in times]
    assert all(0 <= d <= 10 for d in delays)
    assert len({round(d, 3) for d in delays}) > 250 and max(delays) > 9 and min(delays) < 1
    assert [jitter_of(entry(60, jitter=10), t) for t in times[:5]] == [jitter_of(e, t) for t in times[:5]]
    assert jitter_of(entry(60), T0) == timedelta(0)


def test_a_jittered_firing_is_due_after_its_delay() -> None:
    e = entry(60, jitter=30)
    delay = jitter_of(e, T0)
    assert due(e, state(e, T0), due_at(e, T0) - SECOND / 10).fire == ()
    plan = due(e, state(e, T0), T0 + delay)
    assert plan.fire == (T0,) and plan.next_run == T0 + timedelta(minutes=1)


# ---------------------------------------------------------------------------------------------- message
def test_a_firing_is_the_message_a_celery_client_sends(celery_client: CeleryClient) -> None:
    app = App("sk", task_default_queue="default", task_routes={"t.routed": {"queue": "analytics"}})
    capp = celery_client.app(task_routes={"t.routed": {"queue": "analytics"}})
    e = parse_entry("nightly", {"task": "t.routed", "schedule": "0 3 * * *", "args": [1], "kwargs": {"a": "b"},
                                "options": {"priority": 7, "expires": 60, "headers": {"h": "v"}}}, UTC_ZONE)
    item = publish.firing(app, e, T0, T0, "gen1@host")
    ours = json.loads(item.raw)
    theirs = celery_client.send(capp, "t.routed", args=[1], kwargs={"a": "b"}, priority=7, expires=60,
                                headers={"h": "v", "celery_beat_task": True})
    assert (item.queue, item.priority) == ("analytics", 7) and theirs.queue == "analytics"
    assert set(ours["headers"]) == set(theirs.headers) | {"skqueue_schedule", "skqueue_fire_time"}
    assert set(ours["properties"]) == set(theirs.properties)
    assert ours["properties"]["expiration"] == theirs.properties["expiration"] == "60000"
    assert ours["properties"]["delivery_info"] == theirs.properties["delivery_info"]
    assert json.loads(base64.b64decode(ours["body"])) == json.loads(base64.b64decode(theirs.message["body"]))
    message = decode_task(item.raw, UTC)
    assert (message.task, message.args, message.kwargs, message.id) == ("t.routed", [1], {"a": "b"}, item.task_id)
    assert message.expires == T0 + timedelta(seconds=60)
    assert message.custom_headers == {"h": "v", "celery_beat_task": True, "skqueue_schedule": "nightly",
                                      "skqueue_fire_time": "2026-01-01T12:00:00Z"}


def test_routing_follows_the_entry_then_the_task_then_the_default() -> None:
    app = App("sk", task_default_queue="default", task_default_priority=4,
              task_routes={"t.routed": {"queue": "analytics"}})
    app.task(name="t.own", queue="reminders", ignore_result=True)(lambda: None)
    cases = {"t.routed": "analytics", "t.own": "reminders", "t.other": "default"}
    for task, queue in cases.items():
        item = publish.firing(app, parse_entry("e", {"task": task, "schedule": 5}, UTC_ZONE), T0, T0, "o")
        assert (item.queue, item.priority) == (queue, 4)
    explicit = parse_entry("e", {"task": "t.own", "schedule": 5, "options": {"queue": "high_priority"}}, UTC_ZONE)
    assert publish.firing(app, explicit, T0, T0, "o").queue == "high_priority"
    own = decode_task(publish.firing(app, explicit, T0, T0, "o").raw, UTC)
    assert own.ignore_result is True and own.expires is None

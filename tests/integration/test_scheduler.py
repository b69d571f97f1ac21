"""The scheduler against a real Redis: Celery-compatible firings, the lease and its fencing, overlap, and
exactly-once firing with three scheduler processes while leaders are paused and killed."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from skqueue.app import App
from skqueue.broker.client import aclose, connect
from skqueue.broker.keys import BrokerKeys, ResultKeys
from skqueue.broker.lease import Lease
from skqueue.broker.results import ResultStore
from skqueue.broker.schedules import ScheduleStore
from skqueue.protocol.message import decode_task
from skqueue.scheduler.beat import LostLease, Scheduler
from skqueue.scheduler.entries import parse_entries
from tests.support import ROOT, RedisServer, kill9, spawn_celery, terminate, wait_for, wire_env

pytestmark = pytest.mark.timeout(60)

T0 = datetime(2026, 11, 1, 12, tzinfo=UTC)
MS = timedelta(milliseconds=10)
FIRED = "skqueue.fired.*"


def make(server: RedisServer, app: App, schedule: dict[str, Any], *, ttl: float = 5.0) -> Scheduler:
    client = connect(server.url(0))
    keys = BrokerKeys(app.conf.broker_transport_options, 0)
    results = ResultStore(connect(server.url(1)), ResultKeys())
    lease = Lease(client, keys.scheduler_lease, ttl)
    return Scheduler(app, parse_entries(schedule, UTC), ScheduleStore(client, keys), lease, results=results,
                     origin="gen1@test")


def run(server: RedisServer, app: App, schedule: dict[str, Any], body: Callable[..., Awaitable[Any]],
        count: int = 1, **kwargs: Any) -> Any:
    async def main() -> Any:
        schedulers = [make(server, app, schedule, **kwargs) for _ in range(count)]
        try:
            return await body(*schedulers)
        finally:
            for scheduler in schedulers:
                await aclose(scheduler.store.client)
                assert scheduler.results is not None
                await aclose(scheduler.results.client)

    return asyncio.run(main())


def messages(server: RedisServer, queue: str) -> list[Any]:
    return [decode_task(raw, UTC) for raw in reversed(server.client(0).lrange(queue, 0, -1))]


def test_a_firing_is_a_celery_message_that_a_worker_runs(wire_app: App, server: RedisServer, start_worker: Any,
                                                         celery_app: Any) -> None:
    schedule = {"add": {"task": "wire.add", "schedule": 60, "args": [2, 3], "options": {"expires": 600}}}
    # near the real time: the worker checks ``expires`` against its own clock
    now = datetime.now(UTC).replace(second=0, microsecond=0)

    async def body(scheduler: Scheduler) -> float:
        assert await scheduler.lease.acquire()
        assert await scheduler.tick(now) == pytest.approx(60.0)  # first sight: planned, not sent
        return await scheduler.tick(now + timedelta(seconds=60) + MS)

    assert run(server, wire_app, schedule, body) == pytest.approx(60 - 0.01)
    [message] = messages(server, "default")
    assert (message.task, message.args, message.routing_key) == ("wire.add", [2, 3], "default")
    fired = (now + timedelta(seconds=60)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert message.custom_headers["skqueue_fire_time"] == fired
    assert message.expires == now + timedelta(seconds=660) + MS
    state = server.client(0).hgetall("skqueue.schedule.add")
    assert state[b"run_count"] == b"1" and state[b"last_task_id"] == message.id.encode()
    assert server.client(0).get(f"skqueue.fired.add.{fired}") == message.id.encode()
    start_worker()
    assert celery_app.AsyncResult(message.id).get(timeout=10) == 5


@pytest.mark.slow
def test_a_celery_worker_runs_the_firings_too(wire_app: App, server: RedisServer, celery_app: Any,
                                             tmp_path: Path) -> None:
    schedule = {"add": {"task": "wire.add", "schedule": "*/5 * * * *", "args": [40, 2], "timezone": "Asia/Tokyo",
                        "options": {"queue": "analytics", "priority": 7, "expires": 600}}}
    now = datetime.now(UTC).replace(second=0, microsecond=0)

    async def body(scheduler: Scheduler) -> None:
        assert await scheduler.lease.acquire()
        await scheduler.tick(now)
        await scheduler.tick(scheduler.entries[0].schedule.next_after(now) + MS)

    run(server, wire_app, schedule, body)
    [message] = messages(server, "analytics\x06\x166")
    celery = spawn_celery(server, "-Q", "analytics", "-c", "1", "-P", "solo", log=tmp_path / "celery.log")
    try:
        assert celery_app.AsyncResult(message.id).get(timeout=20) == 42
    finally:
        terminate(celery)


def test_only_the_lease_holder_fires_and_a_stale_leader_is_fenced_off(wire_app: App, server: RedisServer) -> None:
    schedule = {"tick": {"task": "wire.add", "schedule": 1, "args": [1, 1], "catch_up": "all"}}

    async def body(a: Scheduler, b: Scheduler) -> None:
        assert await a.lease.acquire() and not await b.lease.acquire()
        await a.tick(T0)
        await a.tick(T0 + timedelta(seconds=1) + MS)
        with pytest.raises(LostLease):
            await b.tick(T0 + timedelta(seconds=2) + MS)
        await asyncio.sleep(0.35)  # a stops renewing (it died, or paused): its lease expires
        assert await b.lease.acquire()
        await b.tick(T0 + timedelta(seconds=3) + MS)  # catches up 12:00:02 and 12:00:03
        with pytest.raises(LostLease):  # a wakes up still believing it leads: the script refuses it
            await a.tick(T0 + timedelta(seconds=4) + MS)
        # the state is rolled back (say, restored from an old snapshot): the firing keys still hold
        await b.store.client.hset("skqueue.schedule.tick", "next_run", repr((T0 + timedelta(seconds=1)).timestamp()))
        await b.tick(T0 + timedelta(seconds=4) + MS)

    run(server, wire_app, schedule, body, count=2, ttl=0.3)
    sent = [m.custom_headers["skqueue_fire_time"] for m in messages(server, "default")]
    assert sent == [f"2026-11-01T12:00:0{s}Z" for s in range(1, 5)]
    assert len(server.client(0).keys(FIRED)) == 4
    assert server.client(0).hget("skqueue.schedule.tick", "run_count") == b"4"


def test_overlap_skip_waits_for_the_previous_run(wire_app: App, server: RedisServer) -> None:
    schedule = {"slow": {"task": "wire.add", "schedule": 60, "args": [1, 1], "overlap": "skip"}}

    async def body(scheduler: Scheduler) -> None:
        assert await scheduler.lease.acquire()
        await scheduler.tick(T0 - MS)
        await scheduler.tick(T0 + MS)
        await scheduler.tick(T0 + timedelta(seconds=60) + MS)  # the first run has no result yet: skipped
        [first] = messages(server, "default")
        server.client(1).set(f"celery-task-meta-{first.id}", json.dumps({"status": "SUCCESS", "result": 2}))
        await scheduler.tick(T0 + timedelta(seconds=120) + MS)

    run(server, wire_app, schedule, body)
    assert [m.custom_headers["skqueue_fire_time"] for m in messages(server, "default")] == [
        "2026-11-01T12:00:00Z", "2026-11-01T12:02:00Z"]
    state = server.client(0).hgetall("skqueue.schedule.slow")
    assert (state[b"run_count"], state[b"skipped"], state[b"last_status"]) == (b"2", b"1", b"sent")


def test_a_clean_stop_hands_over_at_once(wire_app: App, server: RedisServer) -> None:
    schedule = {"tick": {"task": "wire.add", "schedule": 0.2, "args": [1, 1], "catch_up": "all"}}

    async def body(a: Scheduler, b: Scheduler) -> list[bool]:
        stop_a, stop_b = asyncio.Event(), asyncio.Event()
        tasks = [asyncio.create_task(a.run(stop_a))]
        await asyncio.sleep(0.1)
        tasks.append(asyncio.create_task(b.run(stop_b)))
        await asyncio.sleep(1.0)
        leaders = [a.leader, b.leader]
        stop_a.set()
        await asyncio.sleep(1.5)
        leaders += [b.leader]
        stop_b.set()
        await asyncio.gather(*tasks)
        return leaders

    # a 30 s lease: only the release on stop lets b take over within the test
    assert run(server, wire_app, schedule, body, count=2, ttl=30.0) == [True, False, True]
    times = [datetime.fromisoformat(m.custom_headers["skqueue_fire_time"]) for m in messages(server, "default")]
    assert len(times) >= 8 and all(b - a == timedelta(milliseconds=200) for a, b in pairwise(times))


# ------------------------------------------------------------------------------------ processes
BEAT_SCHEDULE = {
    "all-1s": {"task": "wire.add", "schedule": 1, "args": [1, 1], "catch_up": "all", "catch_up_window": 300},
    "all-1s-hp": {"task": "wire.add", "schedule": 1, "args": [2, 2], "catch_up": "all",
                  "options": {"queue": "high_priority", "priority": 3}},
    "latest-1s": {"task": "wire.add", "schedule": 1, "args": [3, 3], "options": {"queue": "low_priority"}},
}
QUEUES = {"all-1s": "default", "all-1s-hp": "high_priority\x06\x163", "latest-1s": "low_priority"}


def _env(server: RedisServer, schedule: dict[str, Any]) -> dict[str, str]:
    return {**wire_env(server, 3600), "CELERY_BEAT_SCHEDULE": json.dumps(schedule)}


def _spawn_scheduler(server: RedisServer, log: Path) -> subprocess.Popen[bytes]:
    out = open(log, "ab")  # noqa: SIM115 - handed to the child
    return subprocess.Popen([sys.executable, "-m", "skqueue", "-l", "info", "scheduler", "-A", "tests.apps.wire",
                             "--lease-seconds", "1"], env=_env(server, BEAT_SCHEDULE), stdout=out, stderr=out,
                            cwd=ROOT, start_new_session=True)


def _leader(server: RedisServer) -> int | None:
    token = server.client(0).get("skqueue.scheduler.lease")
    return int(token.decode().split(":")[-2]) if token else None


def _sent(server: RedisServer, entry: str) -> int:
    return int(server.client(0).hget(f"skqueue.schedule.{entry}", "run_count") or 0)


@pytest.mark.slow
def test_three_schedulers_fire_each_firing_exactly_once_across_leader_failures(server: RedisServer,
                                                                               tmp_path: Path) -> None:
    procs = {}
    for index in range(3):
        proc = _spawn_scheduler(server, tmp_path / f"beat{index}.log")
        procs[proc.pid] = proc
    try:
        first = wait_for(lambda: _sent(server, "all-1s") >= 2 and _leader(server), timeout=15)
        # pause the leader past its lease: another takes over; when it wakes it must not fire
        os.kill(first, signal.SIGSTOP)
        second = wait_for(lambda: (_leader(server) or first) != first and _leader(server), timeout=10)
        sent = _sent(server, "all-1s")
        wait_for(lambda: _sent(server, "all-1s") >= sent + 2)
        os.kill(first, signal.SIGCONT)
        time.sleep(1.5)
        # kill the leader outright
        current = _leader(server)
        assert current is not None
        kill9(procs.pop(current))
        wait_for(lambda: (_leader(server) or current) != current, timeout=10)
        sent = _sent(server, "all-1s")
        wait_for(lambda: _sent(server, "all-1s") >= sent + 2)
    finally:
        for proc in procs.values():
            os.kill(proc.pid, signal.SIGCONT)
            assert terminate(proc) == 0
    assert second != first
    broker = server.client(0)
    for entry, queue in QUEUES.items():
        found = [decode_task(raw, UTC) for raw in broker.lrange(queue, 0, -1)]
        times = sorted(datetime.fromisoformat(m.custom_headers["skqueue_fire_time"]) for m in found)
        assert len(times) == len(set(times)) == _sent(server, entry) >= 6, entry
        assert len(broker.keys(f"skqueue.fired.{entry}.*")) == len(times)
        assert all(m.task == "wire.add" and m.custom_headers["skqueue_schedule"] == entry for m in found)
        gaps = [(b - a).total_seconds() for a, b in pairwise(times)]
        if entry.startswith("all"):
            assert set(gaps) == {1.0}, (entry, gaps)  # nothing lost, nothing repeated
        else:
            assert max(gaps) <= 4.0, (entry, gaps)
    logs = "".join(path.read_text() for path in tmp_path.glob("beat*.log"))
    assert "INFO/MainProcess] Scheduler: Sending due task all-1s (wire.add)" in logs
    assert "no longer leading" in logs


def _skqueue(server: RedisServer, *argv: str, schedule: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "skqueue", *argv, "-A", "tests.apps.wire"],
                          env=_env(server, schedule), cwd=ROOT, capture_output=True, text=True, timeout=30,
                          check=False)


def test_schedule_list_pause_resume_trigger_from_the_command_line(server: RedisServer) -> None:
    schedule = {"nightly": {"task": "wire.add", "schedule": "0 2 * * *", "args": [20, 22],
                            "timezone": "Asia/Kuala_Lumpur", "options": {"queue": "low_priority"}},
                "often": {"task": "wire.hp", "schedule": 30}}
    listed = _skqueue(server, "schedule", "list", schedule=schedule)
    assert listed.returncode == 0, listed.stderr
    assert "nightly  wire.add -> low_priority  [cron 0 2 * * * Asia/Kuala_Lumpur]" in listed.stdout
    assert "02:00:00 +08 (not scheduled yet)" in listed.stdout and "2 entries; leader: none" in listed.stdout
    assert _skqueue(server, "schedule", "pause", "nightly", schedule=schedule).stdout.strip() == "nightly: paused"
    assert "paused: yes" in _skqueue(server, "schedule", "list", schedule=schedule).stdout
    triggered = _skqueue(server, "schedule", "trigger", "nightly", schedule=schedule)
    assert triggered.returncode == 0 and "nightly: sent wire.add[" in triggered.stdout
    [message] = messages(server, "low_priority")
    assert (message.args, message.custom_headers["skqueue_schedule"]) == ([20, 22], "nightly")
    assert message.id in triggered.stdout
    state = server.client(0).hgetall("skqueue.schedule.nightly")
    assert (state[b"last_status"], state[b"run_count"], state[b"paused"]) == (b"triggered", b"1", b"1")
    assert _skqueue(server, "schedule", "resume", "nightly", schedule=schedule).stdout.strip() == "nightly: resumed"
    listed = _skqueue(server, "schedule", "list", schedule=schedule).stdout
    assert "paused: no" in listed and "runs: 1" in listed and "(triggered, PENDING)" in listed
    unknown = _skqueue(server, "schedule", "pause", "weekly", schedule=schedule)
    assert unknown.returncode == 2 and "no schedule entry named 'weekly'" in unknown.stderr
    bad = _skqueue(server, "scheduler", schedule={"x": {"task": "t", "schedule": "61 * * * *"}})
    assert bad.returncode == 2 and "beat_schedule entry 'x': invalid cron expression" in bad.stderr
    assert _skqueue(server, "beat", schedule={}).returncode == 2


def test_a_paused_entry_does_not_fire_until_resumed(wire_app: App, server: RedisServer) -> None:
    from skqueue.scheduler import service

    schedule = {"tick": {"task": "wire.add", "schedule": 60, "args": [1, 1]}}

    async def body(scheduler: Scheduler) -> None:
        assert await scheduler.lease.acquire()
        await scheduler.tick(T0 - MS)
        await service.pause(scheduler.store, scheduler.entries, "tick")
        await scheduler.tick(T0 + MS)
        await scheduler.tick(T0 + timedelta(seconds=60) + MS)
        await service.resume(scheduler.store, scheduler.entries, "tick", T0 + timedelta(seconds=90))
        await scheduler.tick(T0 + timedelta(seconds=120) + MS)

    run(server, wire_app, schedule, body)
    assert [m.custom_headers["skqueue_fire_time"] for m in messages(server, "default")] == ["2026-11-01T12:02:00Z"]
    state = server.client(0).hgetall("skqueue.schedule.tick")
    assert (state[b"skipped"], state[b"run_count"], state.get(b"missed", b"0")) == (b"2", b"1", b"0")

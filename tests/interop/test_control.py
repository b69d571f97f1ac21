"""Spec §10 "Remote control" (rows 44-48): Celery's inspect/control/status against an skqueue worker."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from tests.apps import wire
from tests.conftest import configure_wire
from tests.support import ROOT, wait_for, wire_env

pytestmark = pytest.mark.timeout(40)

NODE = "w1@test"


def _meta(server: Any, task_id: str) -> dict[str, Any]:
    raw = server.client(1).get(f"celery-task-meta-{task_id}")
    return json.loads(raw) if raw else {}


def _celery(server: Any, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "celery", "-A", "tests.apps.celery_wire", *argv],
                          env=wire_env(server, 3600), cwd=ROOT, capture_output=True, text=True, timeout=30,
                          check=False)


def _skqueue(server: Any, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "skqueue", *argv, "-A", "tests.apps.wire"],
                          env=wire_env(server, 3600), cwd=ROOT, capture_output=True, text=True, timeout=30,
                          check=False)


def _inspect(celery_app: Any) -> Any:
    # With a destination the client stops at the first reply instead of waiting out the timeout.
    return celery_app.control.inspect(destination=[NODE], timeout=2)


def _held(worker: Any, attr: str) -> int:
    return int(worker.call(lambda: len(getattr(worker.worker, attr))))


def test_celery_cli_ping_and_status(wire_app: Any, start_worker: Any, server: Any) -> None:
    start_worker()
    ping = _celery(server, "inspect", "ping")
    assert ping.returncode == 0, ping.stderr
    assert f"-> {NODE}: OK" in " ".join(ping.stdout.split()) and "pong" in ping.stdout
    status = _celery(server, "status")
    assert status.returncode == 0, status.stderr
    assert "1 node online." in status.stdout and NODE in status.stdout


def test_ping_by_destination_and_pattern(wire_app: Any, celery_app: Any, start_worker: Any, server: Any) -> None:
    start_worker()
    assert celery_app.control.ping(destination=[NODE], timeout=2) == [{NODE: {"ok": "pong"}}]
    assert celery_app.control.inspect(pattern="w1@*", matcher="glob", limit=1).ping() == {NODE: {"ok": "pong"}}
    assert celery_app.control.inspect(pattern=r"^w\d@test$", matcher="pcre", limit=1).ping() == {NODE: {"ok": "pong"}}
    assert celery_app.control.ping(destination=["other@host"], timeout=0.3) == []
    other = _celery(server, "inspect", "ping", "-d", "other@host")
    assert other.returncode != 0 and "No nodes replied" in other.stderr


def test_inspect_shapes(wire_app: Any, celery_app: Any, start_worker: Any, server: Any) -> None:
    worker = start_worker(concurrency=1, prefetch_multiplier=4)
    running = celery_app.send_task("wire.sleep", args=(30,))
    waiting = celery_app.send_task("wire.add", args=(1, 2))
    later = celery_app.send_task("wire.add", args=(3, 4), countdown=30)
    wait_for(lambda: _held(worker, "running") == 1 and _held(worker, "ready") == 1 and _held(worker, "scheduled") == 1)
    inspect = _inspect(celery_app)

    [active] = inspect.active()[NODE]
    assert active["id"] == running.id and active["name"] == active["type"] == "wire.sleep"
    assert active["args"] == [30] and active["kwargs"] == {} and active["hostname"] == NODE
    assert active["acknowledged"] is False and active["time_start"] > 0 and active["worker_pid"] > 0
    assert active["delivery_info"] == {"exchange": "", "routing_key": "default", "priority": 0, "redelivered": False}
    [ready] = inspect.reserved()[NODE]
    assert ready["id"] == waiting.id and ready["time_start"] is None and ready["worker_pid"] is None
    [eta] = inspect.scheduled()[NODE]
    assert eta["priority"] == 6 and eta["request"]["id"] == later.id and eta["eta"].startswith("20")

    stats = inspect.stats()[NODE]
    assert stats["pool"]["implementation"] == "skqueue" and stats["pool"]["max-concurrency"] == 1
    assert stats["pool"]["processes"] == [stats["pid"]] and stats["prefetch_count"] == 4
    assert stats["broker"]["transport"] == "redis" and stats["broker"]["port"] == server.port
    assert isinstance(stats["uptime"], int) and int(stats["clock"]) > 0 and stats["rusage"]["maxrss"] > 0
    assert stats["total"] == {}

    queues = inspect.active_queues()[NODE]
    assert [q["name"] for q in queues] == ["high_priority", "cache_operations", "default", "analytics", "low_priority"]
    assert queues[2]["exchange"]["name"] == "default" and queues[2]["exchange"]["type"] == "direct"
    assert queues[2]["routing_key"] == "default"
    registered = inspect.registered()[NODE]
    assert registered == sorted(registered) and "wire.add" in registered and "wire.sleep" in registered
    conf = inspect.conf()[NODE]
    assert conf["task_default_queue"] == "default" and conf["broker_url"] == server.url(0)
    assert conf["broker_transport_options"]["visibility_timeout"] == 3600
    assert inspect.revoked()[NODE] == []
    assert inspect.query_task(running.id)[NODE][running.id][0] == "active"
    assert "skqueue" in inspect.report()[NODE]["ok"]

    running.revoke(terminate=True)
    assert waiting.get(timeout=5) == 3
    assert inspect.stats()[NODE]["total"]["wire.add"] == 1
    assert set(inspect.revoked()[NODE]) == {running.id}


def test_unknown_and_unsupported_commands(wire_app: Any, celery_app: Any, start_worker: Any) -> None:
    start_worker()
    control = celery_app.control
    assert control.broadcast("no_such_command", reply=True, destination=[NODE], timeout=2) == [
        {NODE: {"error": "KeyError('no_such_command')"}}]
    [reply] = control.rate_limit("wire.add", "1/s", reply=True, destination=[NODE], timeout=2)
    assert "not supported" in reply[NODE]["error"]


def test_revoke_before_it_runs(wire_app: Any, celery_app: Any, start_worker: Any, server: Any) -> None:
    worker = start_worker()
    result = celery_app.send_task("wire.record", args=("never",), countdown=30)
    wait_for(lambda: _held(worker, "scheduled") == 1)
    result.revoke()
    wait_for(lambda: _meta(server, result.id).get("status") == "REVOKED")
    wait_for(lambda: server.client(0).hlen("unacked") == 0)
    assert _held(worker, "scheduled") == 0 and wire.CALLS == []
    assert _meta(server, result.id)["result"]["exc_message"] == ["revoked"]


def test_revoke_before_the_message_arrives(wire_app: Any, celery_app: Any, start_worker: Any, server: Any) -> None:
    from celery.exceptions import TaskRevokedError

    start_worker()
    task_id = "11111111-2222-3333-4444-555555555555"
    [reply] = celery_app.control.revoke(task_id, reply=True, destination=[NODE], timeout=2)
    assert reply == {NODE: {"ok": f"tasks {{'{task_id}'}} flagged as revoked"}}
    assert _meta(server, task_id)["status"] == "REVOKED"  # celery >= 5.6: stored at revoke time
    result = celery_app.send_task("wire.record", args=("never",), task_id=task_id)
    with pytest.raises(TaskRevokedError):
        result.get(timeout=5)
    wait_for(lambda: server.client(0).hlen("unacked") == 0)
    assert wire.CALLS == []


@pytest.mark.parametrize("task", ["wire.sleep", "wire.block"])
def test_revoke_terminate_stops_a_running_task(task: str, wire_app: Any, celery_app: Any, start_worker: Any,
                                               server: Any) -> None:
    from celery.exceptions import TaskRevokedError

    worker = start_worker()
    result = celery_app.send_task(task, args=(30,))
    wait_for(lambda: _held(worker, "running") == 1)
    result.revoke(terminate=True)
    with pytest.raises(TaskRevokedError) as info:
        result.get(timeout=5)
    assert "terminated" in str(info.value)
    meta = _meta(server, result.id)
    assert meta["status"] == "REVOKED" and meta["result"]["exc_message"] == ["terminated"]
    wait_for(lambda: server.client(0).hlen("unacked") == 0)


def test_revokes_survive_a_worker_restart(server: Any, celery_app: Any, start_worker: Any) -> None:
    from celery.exceptions import TaskRevokedError

    configure_wire(server)
    first = start_worker(hostname="w1@test")
    # Sent to a queue the first worker does not consume: only the persisted revoke can stop it.
    result = celery_app.send_task("wire.record", args=("never",), queue="reminders")
    celery_app.control.revoke(result.id, reply=True, destination=["w1@test"], timeout=2)
    first.stop()
    start_worker(hostname="w2@test", queues=["reminders"])
    with pytest.raises(TaskRevokedError):
        result.get(timeout=5)
    wait_for(lambda: server.client(0).hlen("unacked") == 0 and server.client(0).llen("reminders") == 0)
    assert wire.CALLS == []


def test_hello_shares_revoked_ids(wire_app: Any, celery_app: Any, start_worker: Any) -> None:
    worker = start_worker()
    inspect = _inspect(celery_app)
    reply = inspect._request("hello", from_node="celery@elsewhere", revoked=["from-celery"])[NODE]
    assert reply["revoked"] == ["from-celery"] and reply["clock"] > 0
    assert worker.call(lambda: set(worker.worker.revoked)) == {"from-celery"}
    assert inspect._request("hello", from_node=NODE, revoked=[]) == {NODE: None}


def test_pidbox_binding_is_added_and_removed(wire_app: Any, start_worker: Any, server: Any) -> None:
    worker = start_worker()
    member = b"\x06\x16\x06\x16w1@test.celery.pidbox"
    assert server.client(0).smembers("_kombu.binding.celery.pidbox") == {member}
    worker.stop()
    assert server.client(0).smembers("_kombu.binding.celery.pidbox") == set()


def test_shutdown_command_stops_the_worker(wire_app: Any, celery_app: Any, start_worker: Any) -> None:
    worker = start_worker()
    assert celery_app.control.shutdown(reply=True, destination=[NODE], timeout=2) == [
        {NODE: {"ok": "shutting down"}}]
    wait_for(lambda: not worker._thread.is_alive())


def test_global_keyprefix_round_trip(server: Any, celery_factory: Any, start_worker: Any) -> None:
    options = {"visibility_timeout": 3600, "global_keyprefix": "pfx:"}
    configure_wire(server, broker_transport_options=options)
    capp = celery_factory(broker_transport_options=options)
    start_worker()
    assert capp.control.ping(destination=[NODE], timeout=2) == [{NODE: {"ok": "pong"}}]
    assert server.client(0).exists("pfx:_kombu.binding.celery.pidbox")
    assert capp.send_task("wire.add", args=(1, 1)).get(timeout=5) == 2


def test_skqueue_cli_inspect_and_control(wire_app: Any, start_worker: Any, server: Any) -> None:
    start_worker()
    ping = _skqueue(server, "inspect", "ping", "-d", NODE)
    assert ping.returncode == 0, ping.stderr
    assert ping.stdout.splitlines()[:2] == [f"->  {NODE}: OK", "    pong"] and "1 node online." in ping.stdout
    revoke = _skqueue(server, "control", "revoke", "id-1", "id-2", "-d", NODE)
    assert revoke.returncode == 0, revoke.stderr
    assert "flagged as revoked" in revoke.stdout
    revoked = _skqueue(server, "inspect", "revoked", "-d", NODE, "--json")
    assert json.loads(revoked.stdout) == {NODE: ["id-1", "id-2"]}
    nobody = _skqueue(server, "inspect", "stats", "-d", "other@host", "-t", "0.3")
    assert nobody.returncode == 69 and "No nodes replied" in nobody.stderr


def test_skqueue_cli_reaches_a_celery_worker(server: Any, celery_app: Any, tmp_path: Any) -> None:
    from tests.support import spawn_celery, terminate

    worker = spawn_celery(server, "-P", "solo", log=tmp_path / "celery.log")
    try:
        wait_for(lambda: celery_app.control.ping(destination=["celery@test"], timeout=0.5), timeout=20)
        ping = _skqueue(server, "inspect", "ping", "-d", "celery@test")
        assert ping.returncode == 0 and "pong" in ping.stdout, ping.stderr
    finally:
        terminate(worker)

"""Spec §10 "Events" (rows 49-51): Celery's event receiver and State watching an skqueue worker."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from skqueue.protocol.events import encode_event, make_event
from tests.support import spawn_skqueue, terminate, wait_for

pytestmark = pytest.mark.timeout(40)

NODE = "w1@test"


class Watcher:
    """A ``celery.events`` receiver in a thread, feeding an ``app.events.State``."""

    def __init__(self, capp: Any) -> None:
        self.events: list[dict[str, Any]] = []
        self.state = capp.events.State()
        self.connection = capp.connection_for_read()
        self.receiver = capp.events.Receiver(self.connection, handlers={"*": self._on_event})
        self.thread = threading.Thread(target=self._capture, daemon=True)

    def _on_event(self, event: dict[str, Any]) -> None:
        self.state.event(event)
        self.events.append(event)

    def _capture(self) -> None:
        with contextlib.suppress(Exception):  # the connection goes away at teardown
            self.receiver.capture(limit=None, timeout=None, wakeup=False)

    def of(self, kind: str, **fields: Any) -> list[dict[str, Any]]:
        return [e for e in list(self.events)
                if e["type"] == kind and all(e.get(k) == v for k, v in fields.items())]

    def wait(self, kind: str, **fields: Any) -> dict[str, Any]:
        return wait_for(lambda: self.of(kind, **fields), timeout=10)[-1]  # type: ignore[no-any-return]


@pytest.fixture
def watch(server: Any, celery_factory: Callable[..., Any]) -> Iterator[Callable[..., Watcher]]:
    started: list[Watcher] = []

    def start(**conf: Any) -> Watcher:
        redis = server.client(0)
        before = redis.execute_command("PUBSUB", "NUMPAT")
        watcher = Watcher(celery_factory(**conf))
        watcher.thread.start()
        wait_for(lambda: redis.execute_command("PUBSUB", "NUMPAT") > before)
        started.append(watcher)
        return watcher

    yield start
    # The receiver checks should_stop between messages: one more event stops it without a 1 s poll.
    wakeup = encode_event(make_event("test-wakeup", hostname="test", pid=0, clock=0), hostname="test",
                          exchange="celeryev", key="test.wakeup")
    for watcher in started:
        watcher.receiver.should_stop = True
        server.client(0).publish("/0.celeryev/test.wakeup", wakeup)
        watcher.thread.join(3)
        watcher.connection.release()


def test_worker_online_heartbeat_offline(wire_app: Any, start_worker: Any, watch: Any) -> None:
    watcher = watch()
    worker = start_worker(heartbeat_interval=0.2)
    online = watcher.wait("worker-online", hostname=NODE)
    assert online["sw_ident"] == "skqueue" and online["freq"] == 0.2 and online["sw_sys"]
    from celery.utils.time import utcoffset

    assert online["pid"] > 0 and online["clock"] > 0 and online["utcoffset"] == utcoffset()
    assert len(online["loadavg"]) == 3 and online["active"] == 0 and online["processed"] == 0
    beat = watcher.wait("worker-heartbeat", hostname=NODE)
    assert beat["clock"] > online["clock"] and beat["timestamp"] > online["timestamp"]
    assert watcher.state.workers[NODE].alive
    worker.stop()
    watcher.wait("worker-offline", hostname=NODE)
    assert not watcher.state.workers[NODE].alive


def test_no_task_events_without_E(wire_app: Any, celery_app: Any, start_worker: Any, watch: Any) -> None:
    watcher = watch()
    start_worker(heartbeat_interval=0.2)
    watcher.wait("worker-online")
    assert celery_app.send_task("wire.add", args=(1, 1)).get(timeout=5) == 2
    watcher.wait("worker-heartbeat", processed=1)
    assert not [e for e in watcher.events if e["type"].startswith("task-")]


def test_task_events_with_E(wire_app: Any, celery_app: Any, start_worker: Any, watch: Any) -> None:
    from celery.exceptions import TaskRevokedError

    watcher = watch()
    start_worker(task_events=True)
    ok = celery_app.send_task("wire.add", args=(2, 3))
    assert ok.get(timeout=5) == 5
    received = watcher.wait("task-received", uuid=ok.id)
    assert received["name"] == "wire.add" and received["args"] == "(2, 3)" and received["kwargs"] == "{}"
    assert received["hostname"] == NODE and received["retries"] == 0 and received["eta"] is None
    watcher.wait("task-started", uuid=ok.id)
    succeeded = watcher.wait("task-succeeded", uuid=ok.id)
    assert succeeded["result"] == "5" and 0 <= succeeded["runtime"] < 5
    assert watcher.state.tasks[ok.id].state == "SUCCESS" and watcher.state.tasks[ok.id].name == "wire.add"

    failed = celery_app.send_task("wire.fail", args=("boom",))
    with pytest.raises(ValueError):
        failed.get(timeout=5)
    event = watcher.wait("task-failed", uuid=failed.id)
    assert event["exception"] == "ValueError('boom')" and "ValueError: boom" in event["traceback"]

    retried = celery_app.send_task("wire.retry_twice", args=(0.05,))
    retried.get(timeout=5)
    assert len(watcher.of("task-retried", uuid=retried.id)) == 2
    assert "Flaky" in watcher.of("task-retried", uuid=retried.id)[0]["exception"]

    expired = celery_app.send_task("wire.add", args=(1, 1), expires=datetime.now(UTC) - timedelta(seconds=1))
    with pytest.raises(TaskRevokedError):
        expired.get(timeout=5)
    revoked = watcher.wait("task-revoked", uuid=expired.id)
    assert revoked["expired"] is True and revoked["terminated"] is False and revoked["signum"] is None
    assert watcher.state.tasks[expired.id].state == "REVOKED"


def test_terminated_task_event(wire_app: Any, celery_app: Any, start_worker: Any, watch: Any) -> None:
    watcher = watch()
    start_worker(task_events=True)
    result = celery_app.send_task("wire.sleep", args=(30,))
    watcher.wait("task-started", uuid=result.id)
    result.revoke(terminate=True)
    event = watcher.wait("task-revoked", uuid=result.id)
    assert event["terminated"] is True and event["signum"] == 15 and event["expired"] is False


def test_task_events_are_batched(wire_app: Any, celery_app: Any, start_worker: Any, server: Any,
                                 watch: Any) -> None:
    watcher = watch()
    pubsub = server.client(0).pubsub()
    pubsub.psubscribe("/0.celeryev/task.*")
    pubsub.get_message(timeout=2)
    start_worker(task_events=True)
    results = [celery_app.send_task("wire.add", args=(i, i)) for i in range(100)]
    assert [r.get(timeout=10) for r in results] == [2 * i for i in range(100)]
    wait_for(lambda: len(watcher.of("task-succeeded")) == 100)
    channels = []
    while (message := pubsub.get_message(timeout=0.5)) is not None:
        channels.append(message["channel"])
    pubsub.close()
    assert set(channels) == {b"/0.celeryev/task.multi"}
    assert len(channels) < 300 / 2  # 300 events, in 24-event (or per-tick) batches
    assert len(watcher.of("task-received")) == len(watcher.of("task-started")) == 100


def test_enable_and_disable_events_remotely(wire_app: Any, celery_app: Any, start_worker: Any,
                                            watch: Any) -> None:
    watcher = watch()
    start_worker(heartbeat_interval=0.2)
    watcher.wait("worker-online")
    assert celery_app.control.enable_events(reply=True, destination=[NODE], timeout=2) == [
        {NODE: {"ok": "task events enabled"}}]
    first = celery_app.send_task("wire.add", args=(1, 1))
    first.get(timeout=5)
    watcher.wait("task-succeeded", uuid=first.id)
    assert celery_app.control.disable_events(reply=True, destination=[NODE], timeout=2) == [
        {NODE: {"ok": "task events disabled"}}]
    second = celery_app.send_task("wire.add", args=(2, 2))
    second.get(timeout=5)
    watcher.wait("worker-heartbeat", processed=2)
    assert not watcher.of("task-received", uuid=second.id)


def test_task_sent_event_from_the_client(wire_app: Any, start_worker: Any, watch: Any,
                                         celery_factory: Any) -> None:
    watcher = watch()
    start_worker(task_events=True)
    client = celery_factory(task_send_sent_event=True)
    result = client.send_task("wire.add", args=(4, 4))
    assert result.get(timeout=5) == 8
    sent = watcher.wait("task-sent", uuid=result.id)
    assert sent["queue"] == "default" and sent["name"] == "wire.add"
    watcher.wait("task-succeeded", uuid=result.id)


def test_without_heartbeat(wire_app: Any, celery_app: Any, start_worker: Any, watch: Any) -> None:
    watcher = watch()
    start_worker(task_events=True, heartbeat=False)
    result = celery_app.send_task("wire.add", args=(1, 2))
    result.get(timeout=5)
    watcher.wait("task-succeeded", uuid=result.id)
    assert not [e for e in watcher.events if e["type"].startswith("worker-")]


def test_heartbeat_control_command_beats_at_once(wire_app: Any, celery_app: Any, start_worker: Any,
                                                 watch: Any) -> None:
    watcher = watch()
    start_worker(heartbeat_interval=30)
    watcher.wait("worker-online")
    started = time.monotonic()
    celery_app.control.heartbeat(destination=[NODE])
    watcher.wait("worker-heartbeat")
    assert time.monotonic() - started < 5


def test_cli_flag_E_on_a_worker_process(server: Any, celery_app: Any, watch: Any, tmp_path: Path) -> None:
    watcher = watch()
    worker = spawn_skqueue(server, "-E", "--processes", "0", "-Q", "default", log=tmp_path / "w.log")
    try:
        watcher.wait("worker-online", hostname="sk@test")
        result = celery_app.send_task("wire.add", args=(20, 22))
        assert result.get(timeout=10) == 42
        watcher.wait("task-succeeded", uuid=result.id, hostname="sk@test")
    finally:
        assert terminate(worker) == 0
    watcher.wait("worker-offline", hostname="sk@test")

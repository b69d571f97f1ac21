"""README claims that need their own test: restores despite a held mutex, polling without keyspace
notifications, and recycling a process that grows past --max-memory-per-child."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import configure_wire
from tests.support import RedisServer, restore_visible, spawn_skqueue, terminate, wait_for

pytestmark = pytest.mark.timeout(60)


def test_restore_goes_ahead_while_a_dead_workers_mutex_is_held(server: Any) -> None:
    broker = server.client(0)
    broker.set("unacked_mutex", b"left-by-a-killed-celery-worker", px=300_000)
    payload = {"body": "", "headers": {"id": "t"}, "properties": {"delivery_tag": "tag-1", "priority": 0,
               "delivery_info": {"exchange": "", "routing_key": "default"}}}
    broker.hset("unacked", "tag-1", json.dumps([payload, "", "default"]))
    broker.zadd("unacked_index", {"tag-1": time.time() - 100})

    assert restore_visible(server, 10) == 1
    assert broker.llen("default") == 1
    assert broker.get("unacked_mutex") == b"left-by-a-killed-celery-worker", "someone else's mutex is kept"


@pytest.fixture
def quiet_server() -> Iterator[RedisServer]:
    """A server without keyspace notifications, like most managed Redis services."""
    server = RedisServer(notifications=False)
    server.start()
    yield server
    server.stop()


def test_idle_worker_polls_when_notifications_are_off(quiet_server: RedisServer,
                                                      start_worker: Any) -> None:
    from celery import Celery

    configure_wire(quiet_server)
    client = Celery("quiet", broker=quiet_server.url(0), backend=quiet_server.url(1), set_as_current=False)
    client.conf.task_default_queue = "default"
    try:
        worker = start_worker()
        assert worker.worker is not None and not worker.worker.consumer.doorbell.use_notifications
        time.sleep(0.3)  # idle long enough for the poll back-off to reach its ceiling
        started = time.monotonic()
        assert client.send_task("wire.add", args=(1, 1)).get(timeout=5) == 2
        assert time.monotonic() - started < 0.5, "an idle worker polls at least every 50 ms"
    finally:
        client.close()


def test_max_memory_per_child_recycles_the_process(server: Any, celery_app: Any, tmp_path: Path) -> None:
    log = tmp_path / "w.log"
    supervisor = spawn_skqueue(server, "-Q", "default", "-c", "2", "--max-memory-per-child", "1000",
                               processes=1, log=log)
    try:
        wait_for(lambda: "exceeds --max-memory-per-child" in log.read_text(), timeout=20)
        assert celery_app.send_task("wire.add", args=(2, 2)).get(timeout=20) == 4
    finally:
        assert terminate(supervisor) == 0
    assert log.read_text().count("Started worker process 1") >= 2

"""Spec §10 rows 36-37 and §6.1: retries as Celery clients and workers see them."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.apps import wire
from tests.support import spawn_celery, terminate, wait_for

pytestmark = pytest.mark.timeout(30)


def _attempts(kind: str) -> list[Any]:
    return [label for k, label in wire.CALLS if k == kind]


def test_retry_twice_then_success(wire_app: Any, celery_app: Any, start_worker: Any, server: Any) -> None:
    monitor = server.client(1)
    start_worker()
    result = celery_app.send_task("wire.retry_twice", args=(0.3,), priority=4, headers={"custom_hdr": "kept"})
    seen = set()
    while not result.ready():
        seen.add(result.state)
        time.sleep(0.01)
    assert result.get(timeout=5) == {"retries": 2, "parent": result.id}
    assert "RETRY" in seen
    assert _attempts("retry_twice") == [0, 1, 2]
    assert json.loads(monitor.get(f"celery-task-meta-{result.id}"))["status"] == "SUCCESS"


def test_retry_message_shape(wire_app: Any, celery_app: Any, start_worker: Any, server: Any) -> None:
    broker = server.client(0)
    worker = start_worker(queues=["analytics"])
    result = celery_app.send_task("wire.retry_twice", args=(60,), queue="analytics", priority=4,
                                  headers={"custom_hdr": "kept"})
    wait_for(lambda: result.state == "RETRY")
    worker.stop()  # the retry message (eta in 60 s) goes back to its queue
    raw = broker.lrange("analytics\x06\x163", 0, -1)
    assert len(raw) == 1
    message = json.loads(raw[0])
    headers = message["headers"]
    assert headers["id"] == result.id and headers["retries"] == 1 and headers["parent_id"] == result.id
    assert headers["root_id"] == result.id and headers["custom_hdr"] == "kept" and headers["eta"]
    assert message["properties"]["priority"] == 4
    assert message["properties"]["delivery_info"]["routing_key"] == "analytics"
    meta = celery_app.backend.get_task_meta(result.id)
    assert meta["status"] == "RETRY"
    assert meta["children"] == [[[result.id, None], None]]
    assert "Retry in 60s" in meta["traceback"]
    assert isinstance(meta["result"], Exception) and "attempt 0" in str(meta["result"])


def test_max_retries_exceeded_fails_with_the_original_exception(
    wire_app: Any, celery_app: Any, start_worker: Any
) -> None:
    start_worker()
    result = celery_app.send_task("wire.always_retry")
    with pytest.raises(Exception, match="still broken") as info:
        result.get(timeout=10)
    assert type(info.value).__name__ == "Flaky"
    assert _attempts("always_retry") == [0, 1, 2]


def test_autoretry_with_backoff(wire_app: Any, celery_app: Any, start_worker: Any) -> None:
    start_worker()
    ok = celery_app.send_task("wire.auto", args=(2, "a"))
    assert ok.get(timeout=10) == "ok"
    assert _attempts("auto").count("a") == 3
    doomed = celery_app.send_task("wire.auto", args=(5, "b"))
    with pytest.raises(Exception, match="attempt 2"):
        doomed.get(timeout=10)
    assert _attempts("auto").count("b") == 3


def test_celery_worker_runs_a_retry_skqueue_published(wire_app: Any, celery_app: Any, start_worker: Any,
                                                      server: Any, tmp_path: Path) -> None:
    worker = start_worker(queues=["default"])
    result = celery_app.send_task("wire.retry_twice", args=(1.0,))
    wait_for(lambda: result.state == "RETRY")
    worker.stop()
    celery = spawn_celery(server, "-Q", "default", "-c", "1", "-P", "solo", log=tmp_path / "celery.log")
    try:
        assert result.get(timeout=20) == {"retries": 2, "parent": result.id}
    finally:
        terminate(celery)
    assert "wire.retry_twice" in (tmp_path / "celery.log").read_text()

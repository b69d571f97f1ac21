"""Spec §10 "Results": what Celery's AsyncResult reads back."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from tests.apps import wire
from tests.conftest import configure_wire
from tests.support import wait_for

pytestmark = pytest.mark.timeout(30)


def _meta(server: Any, task_id: str, prefix: str = "") -> dict[str, Any]:
    raw = server.client(1).get(f"{prefix}celery-task-meta-{task_id}")
    return json.loads(raw) if raw else {}


def test_failure_is_rebuilt_as_the_same_exception(wire_app: Any, celery_app: Any, start_worker: Any,
                                                  server: Any) -> None:
    start_worker()
    result = celery_app.send_task("wire.fail", args=("boom",))
    with pytest.raises(ValueError, match="boom"):
        result.get(timeout=5)
    assert "ValueError: boom" in result.traceback
    meta = _meta(server, result.id)
    assert meta["result"] == {"exc_type": "ValueError", "exc_message": ["boom"], "exc_module": "builtins"}
    assert meta["status"] == "FAILURE" and meta["date_done"]


def test_custom_exception_importable_and_synthetic(wire_app: Any, celery_app: Any, celery_factory: Any,
                                                   start_worker: Any, server: Any) -> None:
    start_worker()
    result = celery_app.send_task("wire.fail_custom", args=("custom", 42))
    with pytest.raises(wire.WireError) as info:
        result.get(timeout=5)
    assert info.value.args == ("custom", 42)
    meta = _meta(server, result.id)
    assert meta["result"]["exc_module"] == "tests.apps.wire"
    server.client(1).set(f"celery-task-meta-{result.id}", json.dumps(
        {**meta, "result": {**meta["result"], "exc_module": "not.imported.anywhere"}}))
    fresh = celery_factory().AsyncResult(result.id)  # a new client: nothing cached
    with pytest.raises(Exception) as synthetic:
        fresh.get(timeout=5)
    assert type(synthetic.value).__name__ == "WireError"
    assert not isinstance(synthetic.value, wire.WireError)


def test_ignore_result_writes_nothing(wire_app: Any, celery_app: Any, start_worker: Any, server: Any) -> None:
    worker = start_worker()
    result = celery_app.send_task("wire.ignored")
    header_ignored = celery_app.send_task("wire.add", args=(1, 1), ignore_result=True)
    wait_for(lambda: worker.worker.stats.succeeded == 2)
    wait_for(lambda: server.client(0).hlen("unacked") == 0)
    assert server.client(1).keys("*") == []
    assert celery_app.AsyncResult(result.id).state == "PENDING"
    assert header_ignored.get(timeout=1) is None


def test_track_started(server: Any, celery_factory: Any, start_worker: Any) -> None:
    configure_wire(server, task_track_started=True)
    capp = celery_factory(task_track_started=True)
    start_worker()
    result = capp.send_task("wire.sleep", args=(0.5,))
    wait_for(lambda: result.state == "STARTED")
    assert set(result.info) == {"pid", "hostname"} and result.info["hostname"] == "w1@test"
    assert result.get(timeout=5) == 0.5


def test_no_started_state_by_default(wire_app: Any, celery_app: Any, start_worker: Any) -> None:
    start_worker()
    result = celery_app.send_task("wire.sleep", args=(0.3,))
    states = set()
    while not result.ready():
        states.add(result.state)
        time.sleep(0.02)
    assert states <= {"PENDING"}


def test_get_waits_on_publish_and_reads_finished_results(wire_app: Any, celery_app: Any, start_worker: Any) -> None:
    result = celery_app.send_task("wire.add", args=(20, 1))
    waited: list[Any] = []
    waiter = threading.Thread(target=lambda: waited.append(result.get(timeout=5)))
    waiter.start()
    time.sleep(0.2)
    start_worker()
    started = time.monotonic()
    waiter.join(6)
    assert waited == [21]
    assert time.monotonic() - started < 2
    assert celery_app.AsyncResult(result.id).get(timeout=1) == 21


def test_success_is_never_overwritten(wire_app: Any, celery_app: Any, start_worker: Any, server: Any) -> None:
    start_worker()
    result = celery_app.send_task("wire.fail", args=("second run",))
    stored = {"status": "SUCCESS", "result": "first", "traceback": None, "children": [], "date_done": "x",
              "task_id": result.id}
    server.client(1).set(f"celery-task-meta-{result.id}", json.dumps(stored))
    wait_for(lambda: server.client(0).hlen("unacked") == 0 and server.client(0).llen("default") == 0)
    time.sleep(0.1)
    assert _meta(server, result.id) == stored


@pytest.mark.parametrize("expires,expected", [(10, (0, 10)), (None, (-1, -1))])
def test_result_expires(server: Any, celery_factory: Any, start_worker: Any, expires: Any,
                        expected: tuple[int, int]) -> None:
    configure_wire(server, result_expires=expires)
    capp = celery_factory(result_expires=expires)
    start_worker()
    result = capp.send_task("wire.add", args=(1, 1))
    assert result.get(timeout=5) == 2
    ttl = server.client(1).ttl(f"celery-task-meta-{result.id}")
    assert expected[0] <= ttl <= expected[1]


def test_result_extended(server: Any, celery_factory: Any, start_worker: Any) -> None:
    configure_wire(server, result_extended=True)
    capp = celery_factory(result_extended=True)
    start_worker()
    result = capp.send_task("wire.add", args=(2, 2), kwargs={})
    assert result.get(timeout=5) == 4
    fresh = capp.AsyncResult(result.id)
    assert (fresh.name, fresh.args, fresh.kwargs, fresh.worker, fresh.queue, fresh.retries) == (
        "wire.add", [2, 2], {}, "w1@test", "default", 0)


def test_result_key_prefix(server: Any, celery_factory: Any, start_worker: Any) -> None:
    options = {"global_keyprefix": "x"}
    configure_wire(server, result_backend_transport_options=options)
    capp = celery_factory(result_backend_transport_options=options)
    start_worker()
    result = capp.send_task("wire.add", args=(3, 3))
    assert result.get(timeout=5) == 6
    assert _meta(server, result.id, prefix="x_")["status"] == "SUCCESS"


def test_broker_key_prefix(server: Any, celery_factory: Any, start_worker: Any) -> None:
    options = {"global_keyprefix": "pfx:"}
    configure_wire(server, broker_transport_options=options)
    capp = celery_factory(broker_transport_options=options)
    capp.send_task("wire.add", args=(1, 1), countdown=60)
    start_worker()
    assert capp.send_task("wire.add", args=(4, 4)).get(timeout=5) == 8
    broker = server.client(0)
    assert broker.exists("pfx:_kombu.binding.default")
    assert broker.smembers("pfx:_kombu.binding.default") == {b"default\x06\x16\x06\x16default"}
    wait_for(lambda: broker.hlen("pfx:unacked") == 1)
    assert broker.hlen("unacked") == 0 and not broker.exists("default")


def test_results_on_another_database_number(server: Any, celery_factory: Any, start_worker: Any) -> None:
    configure_wire(server, broker_url=server.url(3), result_backend=server.url(5))
    from celery import Celery

    capp = Celery("other", broker=server.url(3), backend=server.url(5), set_as_current=False)
    capp.conf.update(task_default_queue="default")
    try:
        start_worker()
        assert capp.send_task("wire.add", args=(1, 2)).get(timeout=5) == 3
    finally:
        capp.close()

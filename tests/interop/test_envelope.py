"""Spec §10 "Envelope and routing": real Celery client -> skqueue worker."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from tests.apps import wire
from tests.support import wait_for

pytestmark = pytest.mark.timeout(30)


def test_delay_runs_and_leaves_no_unacked(wire_app: Any, celery_app: Any, start_worker: Any, server: Any) -> None:
    add = celery_app.signature("wire.add")
    start_worker()
    result = add.delay(2, 3)
    assert result.get(timeout=5) == 5
    broker, results = server.client(0), server.client(1)
    ttl = results.ttl(f"celery-task-meta-{result.id}")
    assert 86000 < ttl <= 86400
    wait_for(lambda: broker.hlen("unacked") == 0 and broker.zcard("unacked_index") == 0)


@pytest.mark.parametrize("task,queue", [
    ("wire.hp", "high_priority"), ("wire.cache", "cache_operations"), ("wire.add", "default"),
    ("wire.analytics", "analytics"), ("wire.low", "low_priority"), ("wire.reminder", "reminders"),
])
def test_routed_task_runs_only_where_its_queue_is_consumed(
    wire_app: Any, celery_app: Any, start_worker: Any, server: Any, task: str, queue: str
) -> None:
    other = "reminders" if queue != "reminders" else "default"
    worker = start_worker(queues=[other])
    args = (1, 2) if task == "wire.add" else ()
    result = celery_app.send_task(task, args=args)
    wait_for(lambda: server.client(0).llen(queue) == 1)
    assert result.state == "PENDING"
    worker.stop()
    start_worker(queues=[queue])
    assert result.get(timeout=5) is not None
    assert server.client(0).llen(queue) == 0


def test_apply_async_queue_overrides_route(wire_app: Any, celery_app: Any, start_worker: Any, server: Any) -> None:
    start_worker(queues=["analytics"])
    result = celery_app.send_task("wire.add", args=(1, 1), queue="analytics")
    assert result.get(timeout=5) == 2


def test_kwargs_and_custom_headers(wire_app: Any, celery_app: Any, start_worker: Any) -> None:
    start_worker()
    assert celery_app.send_task("wire.add", kwargs={"x": 1, "y": 2}).get(timeout=5) == 3
    ctx = celery_app.send_task("wire.context", headers={"custom_hdr": "v"}).get(timeout=5)
    assert ctx["custom"] == "v"
    assert ctx["delivery_info"]["routing_key"] == "default"
    assert ctx["redelivered"] is False


def test_unknown_task_is_not_registered(wire_app: Any, celery_app: Any, start_worker: Any, server: Any) -> None:
    from celery.exceptions import NotRegistered

    start_worker()
    result = celery_app.send_task("unknown.name")
    with pytest.raises(NotRegistered) as info:
        result.get(timeout=5)
    assert info.value.args == ("unknown.name",)
    meta = json.loads(server.client(1).get(f"celery-task-meta-{result.id}"))
    assert meta["result"] == {"exc_type": "NotRegistered", "exc_message": ["unknown.name"],
                              "exc_module": "celery.exceptions"}
    assert meta["traceback"] is None
    wait_for(lambda: server.client(0).hlen("unacked") == 0)


def test_tagged_types_round_trip(wire_app: Any, celery_app: Any, start_worker: Any) -> None:
    start_worker()
    when = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    ident = uuid.UUID(int=1)
    out = celery_app.send_task("wire.echo", args=(when, Decimal("1.10"), ident, b"raw", b"\xff\x00",
                                                    date(2025, 1, 2))).get(timeout=5)
    assert out["types"] == ["datetime", "Decimal", "UUID", "bytes", "bytes", "date"]
    assert out["args"] == [when, Decimal("1.10"), ident, b"raw", b"\xff\x00", date(2025, 1, 2)]
    assert celery_app.send_task("wire.identity", args=(when,)).get(timeout=5) == when


@pytest.mark.parametrize("method", ["zlib", "bzip2", "lzma"])
def test_compressed_messages(wire_app: Any, celery_factory: Any, start_worker: Any, method: str) -> None:
    capp = celery_factory(task_compression=method)
    start_worker()
    assert capp.send_task("wire.add", args=(4, 5)).get(timeout=5) == 9


def test_pickle_message_is_dead_lettered_and_worker_keeps_going(
    wire_app: Any, celery_factory: Any, celery_app: Any, start_worker: Any, server: Any
) -> None:
    pickler = celery_factory(task_serializer="pickle", accept_content=["json", "pickle"])
    worker = start_worker()
    bad = pickler.send_task("wire.add", args=(1, 2))
    good = celery_app.send_task("wire.add", args=(3, 4))
    assert good.get(timeout=5) == 7
    broker = server.client(0)
    wait_for(lambda: broker.llen("skqueue.dead_letters") == 1)
    record = json.loads(broker.lindex("skqueue.dead_letters", 0))
    assert "application/x-python-serialize" in record["reason"]
    assert json.loads(record["payload"])["headers"]["id"] == bad.id
    assert record["queue"] == "default"
    wait_for(lambda: broker.hlen("unacked") == 0)
    assert worker.worker.stats.dead_lettered == 1


@pytest.mark.parametrize("payload,reason", [
    (b"{not json", "not valid JSON"),
    (b'{"body": "x", "headers": {}, "properties": {}}', "delivery_tag"),
    (b'{"body": "%%%", "content-type": "application/json", "headers": {"task": "wire.add", "id": "1"},'
     b' "properties": {"delivery_tag": "t1", "body_encoding": "base64"}}', "base64"),
    (b'{"body": "W10=", "content-type": "application/json", "headers": {},'
     b' "properties": {"delivery_tag": "t2", "body_encoding": "base64"}}', "no 'task' header"),
])
def test_malformed_messages_go_to_dead_letters(
    wire_app: Any, celery_app: Any, start_worker: Any, server: Any, payload: bytes, reason: str
) -> None:
    broker = server.client(0)
    broker.lpush("default", payload)
    start_worker()
    wait_for(lambda: broker.llen("skqueue.dead_letters") == 1)
    record = json.loads(broker.lindex("skqueue.dead_letters", 0))
    assert reason in record["reason"]
    assert record["payload"].encode() == payload
    assert celery_app.send_task("wire.add", args=(1, 1)).get(timeout=5) == 2
    wait_for(lambda: broker.hlen("unacked") == 0)


def test_sync_tasks_run_off_the_loop(wire_app: Any, celery_app: Any, start_worker: Any) -> None:
    start_worker()
    name = celery_app.send_task("wire.thread_name").get(timeout=5)
    assert name != "skqueue-worker"


def test_app_config_from_celery_style_settings(server: Any, celery_app: Any, start_worker: Any) -> None:
    settings = {
        "CELERY_BROKER_URL": server.url(0), "CELERY_RESULT_BACKEND": server.url(1),
        "CELERY_TASK_DEFAULT_QUEUE": "default", "CELERY_TASK_ROUTES": wire.ROUTES,
        "CELERY_TASK_ACKS_LATE": True, "CELERY_WORKER_PREFETCH_MULTIPLIER": 1,
    }
    wire.app.configure(wire.app.conf.replace(broker_url=None, result_backend=None))
    wire.app.config_from_object(settings, namespace="CELERY")
    assert wire.app.conf.worker_prefetch_multiplier == 1
    start_worker(prefetch_multiplier=1)
    assert celery_app.send_task("wire.hp").get(timeout=5) == {"hp": 1}

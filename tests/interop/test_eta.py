"""Spec §10 "ETA / expires"."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.apps import wire
from tests.conftest import configure_wire
from tests.support import wait_for

pytestmark = pytest.mark.timeout(30)


def _meta(server: Any, task_id: str) -> dict[str, Any]:
    raw = server.client(1).get(f"celery-task-meta-{task_id}")
    return json.loads(raw) if raw else {}


def test_countdown_runs_on_time(wire_app: Any, celery_app: Any, start_worker: Any, server: Any) -> None:
    start_worker()
    sent = datetime.now(UTC)
    result = celery_app.send_task("wire.add", args=(1, 2), countdown=1)
    time.sleep(0.5)
    assert result.state == "PENDING"
    assert result.get(timeout=5) == 3
    done = datetime.fromisoformat(_meta(server, result.id)["date_done"])
    assert sent + timedelta(seconds=1) <= done < sent + timedelta(seconds=2)


def test_held_eta_does_not_take_a_slot(wire_app: Any, celery_app: Any, start_worker: Any) -> None:
    start_worker(concurrency=1, prefetch_multiplier=1)
    later = [celery_app.send_task("wire.add", args=(i, 0), countdown=2) for i in range(5)]
    assert celery_app.send_task("wire.add", args=(7, 7)).get(timeout=1.5) == 14
    assert [r.get(timeout=5) for r in later] == list(range(5))


def test_aware_and_naive_eta(wire_app: Any, celery_app: Any, start_worker: Any, server: Any) -> None:
    start_worker()
    aware = datetime.now(UTC) + timedelta(seconds=1)
    naive = datetime.now(UTC).replace(tzinfo=None) + timedelta(seconds=1)
    first = celery_app.send_task("wire.add", args=(1, 1), eta=aware)
    second = celery_app.send_task("wire.add", args=(2, 2), eta=naive)
    assert first.get(timeout=5) == 2 and second.get(timeout=5) == 4
    for result, eta in ((first, aware), (second, naive.replace(tzinfo=UTC))):
        assert datetime.fromisoformat(_meta(server, result.id)["date_done"]) >= eta


def test_expired_task_is_revoked(wire_app: Any, celery_app: Any, start_worker: Any, server: Any) -> None:
    from celery.exceptions import TaskRevokedError

    result = celery_app.send_task("wire.add", args=(1, 4), expires=datetime.now(UTC) - timedelta(seconds=5))
    start_worker()
    with pytest.raises(TaskRevokedError) as info:
        result.get(timeout=5)
    assert "expired" in str(info.value)
    assert _meta(server, result.id)["status"] == "REVOKED"
    wait_for(lambda: server.client(0).hlen("unacked") == 0)


def test_expires_before_eta_is_revoked_when_due(wire_app: Any, celery_app: Any, start_worker: Any, server: Any) -> None:
    from celery.exceptions import TaskRevokedError

    start_worker()
    result = celery_app.send_task("wire.record", args=("never",), countdown=1.5, expires=0.5)
    with pytest.raises(TaskRevokedError):
        result.get(timeout=5)
    assert wire.CALLS == []


def test_shutdown_returns_held_eta_to_the_head(wire_app: Any, celery_app: Any, start_worker: Any, server: Any) -> None:
    broker = server.client(0)
    worker = start_worker()
    result = celery_app.send_task("wire.add", args=(5, 5), countdown=60)
    wait_for(lambda: broker.hlen("unacked") == 1)
    tag = broker.hkeys("unacked")[0].decode()
    celery_app.send_task("wire.record", args=("queued-after",), queue="elsewhere")
    worker.stop()
    assert broker.hlen("unacked") == 0 and broker.zcard("unacked_index") == 0
    raw = json.loads(broker.lindex("default", -1))
    assert raw["properties"]["delivery_tag"] == tag
    assert raw["headers"]["redelivered"] is True
    assert raw["properties"]["delivery_info"]["redelivered"] is True
    assert raw["headers"]["id"] == result.id


def test_long_eta_runs_once_with_two_workers(server: Any, celery_factory: Any, start_worker: Any) -> None:
    configure_wire(server, broker_transport_options={"visibility_timeout": 1})
    capp = celery_factory(broker_transport_options={"visibility_timeout": 1})
    result = capp.send_task("wire.record", args=("once",), countdown=3)
    start_worker(hostname="w1@test")
    start_worker(hostname="w2@test")
    assert result.get(timeout=10) == "once"
    time.sleep(1.5)
    assert wire.CALLS == [("record", "once")]

"""Telemetry kept in Redis for the monitoring API: attempt stream, counters, histograms, heartbeats."""

from __future__ import annotations

import json
from typing import Any

import pytest

from skqueue.broker.telemetry import BUCKET_LABELS, decode_record
from tests.support import wait_for

pytestmark = pytest.mark.timeout(30)


def test_counts_stream_and_histograms_after_a_known_workload(wire_app: Any, celery_app: Any,
                                                             start_worker: Any, server: Any) -> None:
    start_worker(hostname="tele@test")
    ok = [celery_app.send_task("wire.add", args=(i, i)) for i in range(10)]
    bad = [celery_app.send_task("wire.fail", args=(f"boom {i}",)) for i in range(3)]
    [r.get(timeout=5) for r in ok]
    for result in bad:
        with pytest.raises(ValueError):
            result.get(timeout=5)
    broker = server.client(0)
    wait_for(lambda: broker.xlen("skqueue.task_events") == 13)
    counts = {k.decode(): int(v) for k, v in broker.hgetall("skqueue.stats.counts").items()}
    assert counts == {"default|wire.add|SUCCESS": 10, "default|wire.fail|FAILURE": 3}
    errors = {k.decode(): int(v) for k, v in broker.hgetall("skqueue.stats.errors").items()}
    assert errors == {"default|wire.fail|ValueError": 3}
    durations = {k.decode(): float(v) for k, v in broker.hgetall("skqueue.stats.durations").items()}
    add_buckets = {k: v for k, v in durations.items() if k.startswith("default|wire.add|") and not k.endswith("|sum")}
    assert sum(add_buckets.values()) == 10
    assert all(k.rsplit("|", 1)[1] in (*BUCKET_LABELS, "+Inf") for k in add_buckets)
    assert 0 < durations["default|wire.add|sum"] < 5
    records = [decode_record(fields[b"r"]) for _, fields in broker.xrange("skqueue.task_events")]
    assert {r.task_id for r in records} == {r.id for r in ok + bad}
    failed = [r for r in records if r.state == "FAILURE"]
    assert len(failed) == 3 and all(r.exception == "ValueError" and r.worker == "tele@test" for r in failed)
    assert all(r.received <= r.started <= r.completed and r.runtime >= 0 for r in records)


def test_heartbeat_record(wire_app: Any, celery_app: Any, start_worker: Any, server: Any) -> None:
    worker = start_worker(hostname="beat@test", concurrency=3)
    running = celery_app.send_task("wire.sleep", args=(2.5,))  # spans a heartbeat (every 2 s)
    broker = server.client(0)

    def record() -> dict[str, Any] | None:
        ids = [i.decode() for i in broker.zrange("skqueue.workers", 0, -1)]
        raw = broker.get(f"skqueue.worker.{ids[0]}") if ids else None
        data = json.loads(raw) if raw else None
        return data if data and data["active"] else None

    data = wait_for(record, timeout=10)
    assert data["node"] == "beat@test" and data["concurrency"] == 3 and data["queues"]
    assert data["active"] == [running.id] and data["started_at"] <= data["beat_at"]
    worker_id = data["worker_id"]
    assert 0 < broker.pttl(f"skqueue.worker.{worker_id}") <= 30_000
    running.get(timeout=5)
    worker.stop()
    assert not broker.exists(f"skqueue.worker.{worker_id}")
    assert broker.zscore("skqueue.workers", worker_id) is None

"""A Redis that goes away and comes back: the worker waits, reconnects and carries on."""

from __future__ import annotations

import time
from typing import Any

import pytest

pytestmark = pytest.mark.timeout(60)


def test_worker_survives_a_broker_restart(wire_app: Any, celery_factory: Any, start_worker: Any,
                                          server: Any) -> None:
    worker = start_worker()
    before = celery_factory()
    assert before.send_task("wire.add", args=(1, 1)).get(timeout=5) == 2
    server.stop()
    time.sleep(1.0)
    server.start()
    after = celery_factory()
    results = [after.send_task("wire.add", args=(i, i)) for i in range(20)]
    assert [r.get(timeout=15) for r in results] == [2 * i for i in range(20)]
    assert worker.worker is not None and worker.worker.stats.succeeded == 21


def test_result_written_after_the_outage_ends(wire_app: Any, celery_app: Any, start_worker: Any,
                                              server: Any) -> None:
    start_worker()
    result = celery_app.send_task("wire.sleep", args=(0.5,))
    while server.client(0).hlen("unacked") == 0:
        time.sleep(0.01)
    server.stop()
    time.sleep(1.5)
    server.start()
    deadline = time.monotonic() + 15
    while server.client(1).get(f"celery-task-meta-{result.id}") is None:
        assert time.monotonic() < deadline, "the settler must keep retrying until Redis is back"
        time.sleep(0.05)

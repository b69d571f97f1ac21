"""``skqueue dlq`` and ``skqueue purge`` against a real server."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from tests.support import ROOT, wait_for, wire_env

pytestmark = pytest.mark.timeout(60)


def _skqueue(server: Any, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "skqueue", *argv, "-A", "tests.apps.wire"],
                          env=wire_env(server, 3600), cwd=ROOT, capture_output=True, text=True, timeout=30,
                          check=False)


def test_dead_letters_can_be_listed_requeued_and_run(wire_app: Any, celery_factory: Any, celery_app: Any,
                                                     start_worker: Any, server: Any) -> None:
    pickler = celery_factory(task_serializer="pickle", accept_content=["json", "pickle"])
    worker = start_worker()
    pickler.send_task("wire.add", args=(1, 2))
    server.client(0).lpush("default", b"{broken")
    assert celery_app.send_task("wire.add", args=(0, 0)).get(timeout=5) == 0
    broker = server.client(0)
    wait_for(lambda: broker.llen("skqueue.dead_letters") == 2)
    worker.stop()
    listing = _skqueue(server, "dlq", "list")
    assert listing.returncode == 0, listing.stderr
    assert "wire.add[" in listing.stdout and "application/x-python-serialize" in listing.stdout
    assert "not valid JSON" in listing.stdout and "2 dead letter(s)" in listing.stdout
    index = next(line.split()[0] for line in listing.stdout.splitlines() if "wire.add[" in line)
    requeued = _skqueue(server, "dlq", "requeue", index, "--queue", "low_priority")
    assert requeued.returncode == 0 and "requeued 1 of 1" in requeued.stdout
    assert broker.llen("skqueue.dead_letters") == 1
    moved = json.loads(broker.lindex("low_priority", 0))
    assert moved["content-type"] == "application/x-python-serialize"
    purged = _skqueue(server, "dlq", "purge")
    assert "purged 1 dead letter(s)" in purged.stdout and broker.llen("skqueue.dead_letters") == 0


def test_purge_named_queues(celery_app: Any, server: Any) -> None:
    for priority in (0, 5, 9):
        celery_app.send_task("wire.add", args=(1, 1), priority=priority)
    celery_app.send_task("wire.hp")
    done = _skqueue(server, "purge", "-Q", "default")
    assert done.returncode == 0 and "default: purged 3 message(s)" in done.stdout
    assert server.client(0).llen("high_priority") == 1
    refused = _skqueue(server, "purge")
    assert refused.returncode == 2 and "-Q" in refused.stderr

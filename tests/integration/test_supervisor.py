"""``skqueue worker --processes P``: crashes, poison messages, recycling and shutdown under load."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support import kill9, spawn_skqueue, terminate, wait_for

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]

REJECT = {"CELERY_TASK_REJECT_ON_WORKER_LOST": "true"}


def _children(supervisor: subprocess.Popen[bytes]) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(supervisor.pid)], capture_output=True, text=True, check=False)
    return [int(pid) for pid in found.stdout.split()]


def _metas(server: Any, ids: list[str]) -> list[dict[str, Any] | None]:
    values = server.client(1).mget([f"celery-task-meta-{i}" for i in ids])
    return [json.loads(v) if v else None for v in values]


def _ledger(server: Any) -> list[dict[str, Any]]:
    return [json.loads(entry) for entry in server.client(2).lrange("ledger", 0, -1)]


def test_ledger_survives_repeated_kill_9_of_worker_processes(server: Any, celery_app: Any, tmp_path: Path) -> None:
    """2,000 tasks, worker processes SIGKILLed at random moments: every task completes at least once,
    and every execution after the first of a task was flagged as a redelivery."""
    ids = [celery_app.send_task("wire.ledger", args=(0.002,)).id for _ in range(2000)]
    supervisor = spawn_skqueue(server, "-Q", "default", "-c", "8", processes=2, env=REJECT,
                               log=tmp_path / "w.log")
    rng = random.Random(11)
    kills = 0
    try:
        while kills < 4:
            time.sleep(rng.uniform(0.3, 0.8))
            children = _children(supervisor)
            done = sum(1 for meta in _metas(server, ids) if meta)
            if done >= len(ids):
                break
            if children:
                os.kill(rng.choice(children), signal.SIGKILL)
                kills += 1
        wait_for(lambda: all(m and m["status"] == "SUCCESS" for m in _metas(server, ids)), timeout=60,
                 interval=0.2)
    finally:
        assert terminate(supervisor) == 0
    assert kills >= 2, "the test must kill workers while work is outstanding"
    runs: dict[str, list[dict[str, Any]]] = {}
    for entry in _ledger(server):
        runs.setdefault(entry["id"], []).append(entry)
    assert set(runs) == set(ids), "no task lost"
    duplicates = {task_id: entries for task_id, entries in runs.items() if len(entries) > 1}
    for entries in duplicates.values():
        assert all(e["redelivered"] for e in entries[1:]), "a second execution must know it is a redelivery"
    assert server.client(0).hlen("unacked") == 0
    assert "died: signal 9 (SIGKILL)" in (tmp_path / "w.log").read_text()


def test_poison_message_is_dead_lettered_and_others_keep_flowing(server: Any, celery_app: Any,
                                                                 tmp_path: Path) -> None:
    from billiard.exceptions import WorkerLostError

    supervisor = spawn_skqueue(server, "-Q", "default", "-c", "4", processes=2, env=REJECT,
                               log=tmp_path / "w.log")
    try:
        poison = celery_app.send_task("wire.crash")
        others = [celery_app.send_task("wire.add", args=(i, i)) for i in range(50)]
        assert [r.get(timeout=30) for r in others] == [2 * i for i in range(50)]
        with pytest.raises(WorkerLostError, match="poison message"):
            poison.get(timeout=60)
        broker = server.client(0)
        record = json.loads(broker.lindex("skqueue.dead_letters", 0))
        assert "poison message" in record["reason"] and "3 times" in record["reason"]
        assert json.loads(record["payload"])["headers"]["id"] == poison.id
        assert celery_app.send_task("wire.add", args=(1, 1)).get(timeout=10) == 2
    finally:
        assert terminate(supervisor) == 0
    assert server.client(0).hlen("unacked") == 0


def test_worker_lost_without_reject_fails_the_task_like_celery(server: Any, celery_app: Any,
                                                               tmp_path: Path) -> None:
    from billiard.exceptions import WorkerLostError

    supervisor = spawn_skqueue(server, "-Q", "default", "-c", "2", processes=1, log=tmp_path / "w.log")
    try:
        crashed = celery_app.send_task("wire.crash")
        with pytest.raises(WorkerLostError, match="signal 9"):
            crashed.get(timeout=30)
        assert celery_app.send_task("wire.add", args=(2, 3)).get(timeout=15) == 5
    finally:
        assert terminate(supervisor) == 0


def test_sigterm_under_load_loses_nothing(server: Any, celery_app: Any, tmp_path: Path) -> None:
    ids = [celery_app.send_task("wire.ledger", args=(0.02,)).id for _ in range(400)]
    supervisor = spawn_skqueue(server, "-Q", "default", "-c", "6", processes=2, log=tmp_path / "w.log")
    wait_for(lambda: len(_ledger(server)) >= 50, timeout=30)
    assert terminate(supervisor, timeout=60) == 0
    assert not _children(supervisor)
    broker = server.client(0)
    assert broker.hlen("unacked") == 0, "everything not acked went back to its queue"
    done = sum(1 for meta in _metas(server, ids) if meta)
    assert done + broker.llen("default") == len(ids)
    second = spawn_skqueue(server, "-Q", "default", "-c", "8", processes=2, log=tmp_path / "w2.log")
    try:
        wait_for(lambda: all(m and m["status"] == "SUCCESS" for m in _metas(server, ids)), timeout=60,
                 interval=0.2)
    finally:
        terminate(second)


def test_max_tasks_per_child_recycles_processes(server: Any, celery_app: Any, tmp_path: Path) -> None:
    log = tmp_path / "w.log"
    supervisor = spawn_skqueue(server, "-Q", "default", "-c", "2", "--max-tasks-per-child", "10",
                               processes=1, log=log)
    try:
        results = [celery_app.send_task("wire.ledger") for _ in range(35)]
        pids = {r.get(timeout=30) for r in results}
    finally:
        assert terminate(supervisor) == 0
    assert len(pids) >= 3
    assert "--max-tasks-per-child 10" in log.read_text()


def test_standalone_worker_killed_gets_its_deliveries_back_from_another(server: Any, celery_app: Any,
                                                                        tmp_path: Path) -> None:
    fast_reap = {"SKQUEUE_WORKER_LOST_TIMEOUT": "2"}
    victim = spawn_skqueue(server, "-Q", "default", "-c", "4", env=fast_reap, name="victim@test",
                           log=tmp_path / "victim.log")
    slow = [celery_app.send_task("wire.sleep", args=(0.5,)) for _ in range(4)]
    wait_for(lambda: server.client(0).hlen("unacked") == 4, timeout=15)
    kill9(victim)
    started = time.monotonic()
    rescuer = spawn_skqueue(server, "-Q", "default", "-c", "4", env=fast_reap, name="rescuer@test",
                            log=tmp_path / "rescuer.log")
    try:
        assert [r.get(timeout=30) for r in slow] == [0.5] * 4
    finally:
        terminate(rescuer)
    assert time.monotonic() - started < 15, "returned after the lost timeout, not the visibility timeout"
    assert "stopped beating" in (tmp_path / "rescuer.log").read_text()

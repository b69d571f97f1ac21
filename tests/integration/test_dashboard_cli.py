"""``skqueue db``, ``skqueue run-task`` and ``skqueue check`` as real subprocesses, with ``skqueue worker``
running the built-in dashboard app (no ``-A``)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.support import ROOT, terminate

pytestmark = pytest.mark.timeout(90)


def _env(server: Any, tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "SKQUEUE_BROKER_URL": server.url(0),
            "SKQUEUE_RESULT_BACKEND": server.url(1), "SKQUEUE_DATABASE_URL": f"sqlite:///{tmp_path / 'sk.db'}",
            "SKQUEUE_EXPORT_DIR": str(tmp_path / "exports"), "SKQUEUE_HOME": str(tmp_path / "home")}


def _skqueue(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "skqueue", *argv], env=env, capture_output=True, text=True,
                          timeout=60, check=False, cwd=ROOT)


@pytest.fixture
def seeded_env(server: Any, tmp_path: Path) -> dict[str, str]:
    env = _env(server, tmp_path)
    init = _skqueue(env, "db", "init")
    assert init.returncode == 0, init.stderr
    assert "11 tables ready (uuid ids)" in init.stdout
    seeded = _skqueue(env, "db", "seed", "--users", "2", "--seed", "5")
    assert seeded.returncode == 0, seeded.stderr
    assert "added 2 users" in seeded.stdout and "seeding users [" in seeded.stderr and "2/2" in seeded.stderr
    return env


def _users(tmp_path: Path) -> list[str]:
    with sqlite3.connect(tmp_path / "sk.db") as conn:
        return [str(uuid.UUID(hex=row[0])) for row in conn.execute("SELECT id FROM auth_user ORDER BY email")]


def test_run_task_sync_needs_no_worker(seeded_env: dict[str, str], tmp_path: Path) -> None:
    uid = _users(tmp_path)[0]
    done = _skqueue(seeded_env, "run-task", "refresh", "--user-id", uid, "--sync")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["user_id"] == uid and result["snapshots"] == 5
    missing = _skqueue(seeded_env, "run-task", "refresh", "--user-id", str(uuid.UUID(int=9)), "--sync")
    assert missing.returncode == 2 and f"user {uuid.UUID(int=9)} not found" in missing.stderr
    no_user = _skqueue(seeded_env, "run-task", "export")
    assert no_user.returncode == 2 and "needs --user-id" in no_user.stderr


def test_worker_run_task_and_check(seeded_env: dict[str, str], tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    with open(log, "wb") as out:
        worker = subprocess.Popen([sys.executable, "-m", "skqueue", "-l", "info", "worker", "--processes", "0",
                                   "-c", "4", "-n", "dash@test"], env=seeded_env, stdout=out, stderr=out, cwd=ROOT)
    try:
        uid = _users(tmp_path)[1]
        done = _skqueue(seeded_env, "run-task", "export", "--user-id", uid, "--format", "csv",
                        "--start", "2026-01-01", "--end", "2026-06-30", "-t", "30")
        assert done.returncode == 0, done.stderr + log.read_text()
        result = json.loads(done.stdout)
        assert Path(result["path"]).is_file() and result["rows"] > 0 and result["format"] == "csv"
        failed = _skqueue(seeded_env, "run-task", "export", "--user-id", uid, "--format", "docx", "-t", "30")
        assert failed.returncode == 1 and "FAILURE: InvalidArguments: unknown export format 'docx'" in failed.stderr
        check = _skqueue(seeded_env, "check", "-t", "20")
        assert check.returncode == 0, check.stdout + check.stderr
        lines = check.stdout.splitlines()
        assert lines[0].startswith("broker      ok") and "PING" in lines[0]
        assert lines[1].startswith("workers     ok") and "dash@test" in lines[1]
        assert lines[2].startswith("debug_task  ok") and "queue 'default', ran by dash@test" in lines[2]
    finally:
        assert terminate(worker) == 0
    text = log.read_text()
    assert "--- app:         senangkira" in text
    assert "dashboard.tasks.export_dashboard_data" in text and "high_priority, cache_operations" in text


def test_check_fails_without_workers(server: Any, tmp_path: Path) -> None:
    done = _skqueue(_env(server, tmp_path), "check", "-t", "0.5")
    assert done.returncode == 1
    assert "workers     FAIL  0 answered ping" in done.stdout
    assert "debug_task  FAIL  no result within 0.5 s" in done.stdout

"""The ``skqueue`` command line, run as real subprocesses."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support import ROOT, spawn_skqueue, terminate, wait_for, wire_env

pytestmark = pytest.mark.timeout(60)


def test_worker_from_environment_settings(server: Any, celery_app: Any, tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    worker = spawn_skqueue(server, "-c", "4", log=log, name="envworker@%h")
    try:
        assert celery_app.send_task("wire.add", args=(40, 2)).get(timeout=15) == 42
    finally:
        assert terminate(worker) == 0
    text = log.read_text()
    assert "envworker@" in text and "wire.add" in text
    assert "INFO/MainProcess] Task wire.add[" in text and "succeeded in" in text
    assert "WARNING/MainProcess] Warm shutdown" in text


def test_worker_with_module_attr_and_explicit_urls(server: Any, celery_app: Any, tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    env = {k: v for k, v in wire_env(server, 3600).items() if not k.startswith("CELERY_BROKER")}
    env.pop("CELERY_RESULT_BACKEND")
    with open(log, "wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "skqueue", "worker", "-A", "tests.apps.wire:app", "-Q", "default",
             "--broker", server.url(0), "--result-backend", server.url(1), "-l", "info"],
            env=env, stdout=out, stderr=out, cwd=ROOT)
    try:
        assert celery_app.send_task("wire.add", args=(1, 2)).get(timeout=15) == 3
    finally:
        terminate(worker)


@pytest.mark.parametrize("argv,message", [
    (["worker", "-A", "no.such.module"], "cannot import app module"),
    (["worker", "-A", "tests.apps.wire:nothing"], "does not name a skqueue.App"),
    (["worker", "-A", "tests.apps.wire", "--broker", "amqp://guest@localhost//"], "unsupported broker URL"),
    (["-l", "loud", "worker"], "unknown log level"),
])
def test_bad_command_lines_fail_clearly(argv: list[str], message: str) -> None:
    done = subprocess.run([sys.executable, "-m", "skqueue", *argv],
                          check=False, capture_output=True, cwd=ROOT, timeout=30)
    assert done.returncode == 2
    assert message in done.stderr.decode()


def test_unknown_setting_is_reported_by_name(server: Any, tmp_path: Path) -> None:
    log = tmp_path / "w.log"
    settings = tmp_path / "proj_settings.py"
    settings.write_text("CELERY_TASK_DEFAULT_QUEUE = 'default'\nCELERY_TASK_SOMETHING_NEW = 1\n")
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from tests.apps.wire import app; "
            "app.config_from_object('proj_settings', namespace='CELERY')")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)],
                          check=False, capture_output=True, cwd=ROOT, timeout=30)
    assert done.returncode == 0
    assert "task_something_new" in done.stderr.decode()
    assert not log.exists()


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "skqueue", "demo", "--home", str(tmp_path / "home")],
                          check=False, capture_output=True, cwd=tmp_path, timeout=90)
    out = done.stdout.decode()
    assert done.returncode == 0, done.stderr.decode()
    assert "added 3 users" in out and "3/3 users refreshed in 1 batch(es), failed: none" in out
    assert "revenue RM " in out and "5 periods cached, 5 snapshots written" in out
    assert "filled ['daily', 'weekly', 'monthly', 'quarterly', 'yearly']" in out
    exports = [line.strip() for line in out.splitlines() if line.strip().startswith(str(tmp_path))]
    assert [Path(p).suffix for p in exports] == [".json", ".csv", ".pdf"] and all(Path(p).is_file() for p in exports)
    assert "e-mail sent to " in out and "p95" in out and "deleted {'snapshots'" in out
    assert "raised UserNotFound: user 00000000-0000-4000-8000-000000000000 not found" in out
    assert "raised InvalidArguments: unknown export format 'xlsx'" in out
    assert "raised NotRegistered: 'dashboard.tasks.nope'" in out and "TaskRevokedError: expired" in out
    assert "Monitoring API: http://127.0.0.1:" in out and "Staff token" in out and "worker(s), success rate" in out
    wait_for(lambda: not (tmp_path / "home" / "broker.json").exists(), timeout=5)

"""The embedded Valkey broker: shared by concurrent commands, persistent, stopped by the last user."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from skqueue.broker import embedded
from tests.support import ROOT

pytestmark = pytest.mark.timeout(60)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split()[2] != "Z"


def test_shared_by_concurrent_users_and_stopped_by_the_last(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from skqueue.broker import embedded; "
         f"b = embedded.acquire({str(tmp_path)!r}); print(b.port, flush=True); sys.stdin.read(); embedded.release(b)"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT)
    assert holder.stdout is not None
    port = int(holder.stdout.readline())
    mine = embedded.acquire(tmp_path)
    assert mine.port == port, "a second command joins the running server"
    assert not embedded.release(mine), "the other user still needs it"
    assert redis.Redis(port=port).ping()
    holder.communicate(b"", timeout=20)
    assert not _alive(mine.pid)
    assert not (tmp_path / "broker.json").exists()


def test_killed_user_does_not_keep_it_alive(tmp_path: Path) -> None:
    victim = subprocess.Popen(
        [sys.executable, "-c", "import time; from skqueue.broker import embedded; "
         f"embedded.acquire({str(tmp_path)!r}); print('up', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, cwd=ROOT)
    assert victim.stdout is not None and victim.stdout.readline().strip() == b"up"
    victim.kill()
    victim.wait()
    mine = embedded.acquire(tmp_path)
    assert embedded.release(mine), "the dead user's claim is ignored"


def test_messages_survive_a_broker_restart(tmp_path: Path) -> None:
    first = embedded.acquire(tmp_path)
    client = redis.Redis(port=first.port)
    client.lpush("default", b"message-1")
    assert embedded.release(first)
    second = embedded.acquire(tmp_path)
    try:
        assert redis.Redis(port=second.port).lrange("default", 0, -1) == [b"message-1"]
        assert b"K" in redis.Redis(port=second.port).config_get("notify-keyspace-events")[
            "notify-keyspace-events"].encode()
    finally:
        embedded.release(second)
    assert (tmp_path / "data").exists()

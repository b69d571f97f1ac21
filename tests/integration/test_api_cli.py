"""``skqueue api`` (a real uvicorn server) and ``skqueue token``."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
import urllib.request
from typing import Any

import pytest

from tests.support import ROOT, RedisServer, free_port, terminate, wait_for, wire_env

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]
SECRET = "cli-secret-of-at-least-thirty-two-bytes"


def _fetch(url: str, token: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""


def test_skqueue_api_serves_with_a_token_from_skqueue_token(server: RedisServer) -> None:
    env: dict[str, Any] = {**wire_env(server, 3600), "SKQUEUE_JWT_SECRET": SECRET}
    port = free_port()
    api = subprocess.Popen([sys.executable, "-m", "skqueue", "api", "-A", "tests.apps.wire", "--port", str(port),
                            "--broker", server.url(0), "--result-backend", server.url(1)],
                           env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        minted = subprocess.run([sys.executable, "-m", "skqueue", "token", "--staff", "--ttl", "60"], env=env,
                                cwd=ROOT, capture_output=True, check=True, timeout=30).stdout.decode().strip()
        base = f"http://127.0.0.1:{port}/api/dashboard"
        wait_for(lambda: _fetch(f"{base}/openapi.json")[0] == 200, timeout=20)
        assert _fetch(f"{base}/celery/status/")[0] == 401
        status, body = _fetch(f"{base}/celery/status/", minted)
        assert status == 200 and b'"status": "critical"' in body
        assert _fetch(f"{base}/metrics/prometheus/", minted)[0] == 200
    finally:
        assert terminate(api) in (0, -15)  # uvicorn re-raises SIGTERM once it has shut down


def test_skqueue_token_needs_the_secret() -> None:
    env = {k: v for k, v in os.environ.items() if k != "SKQUEUE_JWT_SECRET"}
    done = subprocess.run([sys.executable, "-m", "skqueue", "token"], env=env, cwd=ROOT, capture_output=True,
                          check=False, timeout=30)
    assert done.returncode == 2 and b"SKQUEUE_JWT_SECRET" in done.stderr

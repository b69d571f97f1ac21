"""Run the demo: start the embedded broker and a worker, send tasks with the real Celery client."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from skqueue.api.auth import mint
from skqueue.broker import embedded
from skqueue.dashboard.tasks import ROUTES
from skqueue.demo import dashboard

QUEUES = "high_priority,cache_operations,default,analytics,low_priority"


def _celery_client(broker: str, backend: str) -> Any:
    try:
        from celery import Celery
    except ImportError:
        sys.exit("skqueue demo drives the real Celery client: pip install 'skqueue[demo]'")
    client = Celery("senangkira", broker=broker, backend=backend, set_as_current=False)
    client.conf.update(task_default_queue="default", task_routes=ROUTES,
                       task_serializer="json", accept_content=["json"], broker_connection_retry_on_startup=True)
    return client


def _start_worker(broker: str, backend: str, log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "skqueue", "-l", "info", "worker", "-A", "skqueue.dashboard",
            "--broker", broker, "--result-backend", backend, "-Q", QUEUES, "-c", "8", "-n", "demo@%h"]
    with open(log, "wb") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)


def _start_api(broker: str, backend: str, log: Path, secret: str) -> tuple[subprocess.Popen[bytes], str]:
    """``skqueue api`` on a free port; returns the process and the API's base URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    argv = [sys.executable, "-m", "skqueue", "api", "-A", "skqueue.dashboard", "--broker", broker,
            "--result-backend", backend, "--port", str(port)]
    with open(log, "wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                   env={**os.environ, "SKQUEUE_JWT_SECRET": secret})
    return process, f"http://127.0.0.1:{port}/api/dashboard"


def _api_status(base: str, token: str) -> str:
    """The API's status line (waits up to 10 s for the server to listen)."""
    request = urllib.request.Request(f"{base}/celery/status/", headers={"Authorization": f"Bearer {token}"})
    deadline = time.monotonic() + 10
    while True:
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                status = json.load(response)
            return (f"{status['status']}: {status['worker_count']} worker(s), "
                    f"success rate {status['success_rate']}% over the last hour")
        except OSError as exc:
            if time.monotonic() > deadline:
                return f"unreachable ({exc})"
            time.sleep(0.1)


def main(home: str | None = None, keep: bool = False) -> int:
    root = Path(home or os.environ.get("SKQUEUE_HOME") or ".skqueue")
    server = embedded.acquire(root)
    env, users = dashboard.prepare(server.home)
    mail = contextlib.ExitStack()
    mail.enter_context(dashboard.mail_server(env))
    log = server.home / "demo-worker.log"
    worker = _start_worker(server.broker_url, server.result_url, log, dashboard.environment(env))
    secret = secrets.token_urlsafe(32)
    api, base = _start_api(server.broker_url, server.result_url, server.home / "demo-api.log", secret)
    token = mint(secret, user_id="demo", staff=True, ttl=3600)
    client = _celery_client(server.broker_url, server.result_url)
    try:
        print(f"skqueue demo: embedded broker {server.broker_url} (data in {server.home}), "
              f"worker pid {worker.pid}", flush=True)
        print(f"Monitoring API: {base}/celery/status/  (OpenAPI: {base}/openapi.json)\n"
              f"Staff token, valid 1 h: {token}\n"
              f"  try: curl -H 'Authorization: Bearer <token>' {base}/celery/tasks/\n", flush=True)
        for label, call, render in dashboard.steps(client, users):
            dashboard.show(label, call, render)
        print("\nBad requests fail at once, with a clear error and no retry:", flush=True)
        for label, call, render in dashboard.failures(client):
            dashboard.show(label, call, render)
        print(f"\nAll results above were read by celery's own AsyncResult. Worker log: {log}")
        _tail(log)
        print(f"\nAPI status: {_api_status(base, token)}", flush=True)
        if keep:
            print("Broker, worker and API keep running: Ctrl-C stops them.", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                api.wait()
    finally:
        api.send_signal(signal.SIGTERM)
        api.wait(30)
        client.close()
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
        mail.close()
        embedded.release(server)
    return 0


def _tail(log: Path, lines: int = 8) -> None:
    text = log.read_text(errors="replace").splitlines()
    interesting = [line for line in text if "succeeded" in line or "raised" in line or "ready" in line]
    for line in interesting[-lines:]:
        print(f"  | {line}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

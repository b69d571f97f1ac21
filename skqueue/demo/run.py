"""Run the demo: start the embedded broker and a worker, send tasks with the real Celery client."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from skqueue.broker import embedded
from skqueue.demo.tasks import app as demo_app

QUEUES = "high_priority,default,analytics"


def _celery_client(broker: str, backend: str) -> Any:
    try:
        from celery import Celery
    except ImportError:
        sys.exit("skqueue demo drives the real Celery client: pip install 'skqueue[demo]'")
    client = Celery("senangkira", broker=broker, backend=backend, set_as_current=False)
    client.conf.update(task_default_queue="default", task_routes=demo_app.conf.task_routes,
                       task_serializer="json", accept_content=["json"], broker_connection_retry_on_startup=True)
    return client


def _start_worker(broker: str, backend: str, log: Path) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "skqueue", "-l", "info", "worker", "-A", "skqueue.demo.tasks",
            "--broker", broker, "--result-backend", backend, "-Q", QUEUES, "-c", "8", "-n", "demo@%h"]
    with open(log, "wb") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)


def _show(label: str, call: Callable[[], Any]) -> None:
    started = time.perf_counter()
    try:
        outcome = f"-> {call()!r}"
    except Exception as exc:
        outcome = f"-> raised {type(exc).__module__}.{type(exc).__qualname__}: {exc}"
    print(f"  {label:<46} {outcome}  ({(time.perf_counter() - started) * 1000:.0f} ms)", flush=True)


def _scenarios(client: Any) -> list[tuple[str, Callable[[], Any]]]:
    lines = [{"qty": 3, "unit_price": "150.00"}, {"qty": 1, "unit_price": "89.90"}]
    eta = datetime.now(UTC) + timedelta(seconds=2)
    return [
        ("add.delay(2, 3)  [sync def, thread]", lambda: client.send_task("demo.add", (2, 3)).get(timeout=30)),
        ("invoice_total(lines)  [async def, Decimal]",
         lambda: client.send_task("demo.invoice_total", (lines,)).get(timeout=10)),
        ("monthly_report('2026-11', countdown=2)",
         lambda: client.send_task("demo.monthly_report", ("2026-11",), eta=eta).get(timeout=10)),
        ("fail('card declined')  [FAILURE]",
         lambda: client.send_task("demo.fail", ("card declined",)).get(timeout=10)),
        ("send_task('demo.nope')  [NotRegistered]", lambda: client.send_task("demo.nope").get(timeout=10)),
        ("add(1, 1, countdown=1, expires=0.5)  [REVOKED]",
         lambda: client.send_task("demo.add", (1, 1), countdown=1, expires=0.5).get(timeout=10)),
        ("100 x add.delay(i, i), then sum(.get())",
         lambda: sum(r.get(timeout=10) for r in [client.send_task("demo.add", (i, i)) for i in range(100)])),
    ]


def main(home: str | None = None) -> int:
    root = Path(home or os.environ.get("SKQUEUE_HOME") or ".skqueue")
    server = embedded.acquire(root)
    log = server.home / "demo-worker.log"
    worker = _start_worker(server.broker_url, server.result_url, log)
    client = _celery_client(server.broker_url, server.result_url)
    try:
        print(f"skqueue demo: embedded broker {server.broker_url} (data in {server.home}), "
              f"worker pid {worker.pid}\n", flush=True)
        for label, call in _scenarios(client):
            _show(label, call)
        print(f"\nAll results above were read by celery's own AsyncResult. Worker log: {log}")
        _tail(log)
    finally:
        client.close()
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
        embedded.release(server)
    return 0


def _tail(log: Path, lines: int = 8) -> None:
    text = log.read_text(errors="replace").splitlines()
    interesting = [line for line in text if "succeeded" in line or "raised" in line or "ready" in line]
    for line in interesting[-lines:]:
        print(f"  | {line}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

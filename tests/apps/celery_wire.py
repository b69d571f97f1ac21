"""A real Celery worker app with the same ``wire.*`` task set, for mixed-fleet tests.

Configured from the environment: WIRE_BROKER, WIRE_BACKEND, WIRE_VT (visibility timeout seconds).
"""

from __future__ import annotations

import os
import time

from celery import Celery

from tests.apps.wire import ROUTES

app = Celery("celery_wire", broker=os.environ.get("WIRE_BROKER"), backend=os.environ.get("WIRE_BACKEND"))
app.conf.update(
    task_default_queue="default",
    task_routes=ROUTES,
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    accept_content=["json"],
    broker_transport_options={"visibility_timeout": float(os.environ.get("WIRE_VT", "3600"))},
    worker_hijack_root_logger=False,
)


@app.task(name="wire.add")
def add(x: int, y: int) -> int:
    return x + y


@app.task(name="wire.block")
def block(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@app.task(name="wire.identity")
def identity(value: object) -> object:
    return value


@app.task(name="wire.retry_twice", bind=True, max_retries=5)
def retry_twice(self, countdown: float = 0.1) -> dict[str, object]:  # type: ignore[no-untyped-def]
    if self.request.retries < 2:
        raise self.retry(exc=ValueError(f"attempt {self.request.retries}"), countdown=countdown)
    return {"retries": self.request.retries, "parent": self.request.parent_id}


@app.task(name="wire.xsum")
def xsum(values: list[int], *extra: int) -> int:
    return sum(values) + sum(extra)

"""The Celery side of the benchmark: ``celery -A benchmarks.celery_bench worker``.

The broker and backend URLs come from ``BENCH_BROKER`` / ``BENCH_BACKEND`` (set by ``drain.py``); without
them the app points at ``memory://`` so importing this module never touches a real Redis.
"""

from __future__ import annotations

import os

from celery import Celery

TASKS = ("bench.noop", "bench.noop_sync")


def make_app(broker: str, backend: str | None, *, register: bool = True) -> Celery:
    """A Celery app with the original system's settings (late acks, prefetch 1, JSON, queue "default")."""
    app = Celery("bench", broker=broker, backend=backend)
    app.conf.update(
        task_default_queue="default",
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
    )
    if register:
        for name in TASKS:
            app.task(name=name)(_noop)
    return app


def _noop() -> None:
    return None


app = make_app(os.environ.get("BENCH_BROKER", "memory://"), os.environ.get("BENCH_BACKEND"))

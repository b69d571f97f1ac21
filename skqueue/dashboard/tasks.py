"""The seven SenangKira dashboard tasks, under their Celery names, on the built-in ``senangkira`` app.

Routing and worker settings are the original's (``CELERY_TASK_ROUTES``, acks late, prefetch 1, reject on
worker lost), with the default queue named ``default``. Each task returns a JSON dict. Bad arguments (an
unknown format, a bad date range, a missing user) raise :class:`~skqueue.errors.InvalidArguments` at once;
only transient failures (database, Redis, network, SMTP) are retried, with exponential backoff.
"""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime
from typing import Any, Protocol

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import InterfaceError, OperationalError

from skqueue.app import App
from skqueue.dashboard import cleanup, export, notify, performance, refresh
from skqueue.dashboard.periods import parse_date_range
from skqueue.dashboard.runtime import runtime
from skqueue.errors import DeliveryError

ROUTES = {
    "dashboard.tasks.refresh_dashboard_cache": {"queue": "high_priority"},
    "dashboard.tasks.warm_dashboard_cache": {"queue": "cache_operations"},
    "dashboard.tasks.performance_analysis": {"queue": "analytics"},
    "dashboard.tasks.export_dashboard_data": {"queue": "low_priority"},
    "dashboard.tasks.send_notification": {"queue": "high_priority"},
    "dashboard.tasks.cleanup_old_data": {"queue": "low_priority"},
}

app = App("senangkira", task_default_queue="default", task_routes=ROUTES, task_acks_late=True,
          worker_prefetch_multiplier=1, task_reject_on_worker_lost=True)

TRANSIENT: tuple[type[Exception], ...] = (OperationalError, InterfaceError, RedisConnectionError,
                                          RedisTimeoutError, ConnectionError, TimeoutError)


class Request(Protocol):
    """What the tasks read from the request they are bound to (skqueue's ``TaskContext``)."""

    id: str
    retries: int
    hostname: str
    delivery_info: dict[str, Any]


@app.task(name="dashboard.tasks.refresh_dashboard_cache", autoretry_for=TRANSIENT, max_retries=3,
          retry_backoff=60, retry_jitter=False)
async def refresh_dashboard_cache(user_id: Any = None) -> dict[str, Any]:
    """Recompute one user's dashboards (every user's, in batches, without ``user_id``) into the cache."""
    rt = await runtime(app.conf)
    if user_id is None:
        return await refresh.every_user(rt, refresh.refresh_user, "refresh_dashboard_cache")
    return await refresh.refresh_user(rt, user_id)


@app.task(name="dashboard.tasks.warm_dashboard_cache", autoretry_for=TRANSIENT, max_retries=3,
          retry_backoff=60, retry_jitter=False)
async def warm_dashboard_cache(user_id: Any = None) -> dict[str, Any]:
    """Fill the cache entries that are missing or about to expire (one user, or every user)."""
    rt = await runtime(app.conf)
    if user_id is None:
        return await refresh.every_user(rt, refresh.warm_user, "warm_dashboard_cache")
    return await refresh.warm_user(rt, user_id)


@app.task(name="dashboard.tasks.performance_analysis", autoretry_for=TRANSIENT, max_retries=2,
          retry_backoff=300, retry_backoff_max=1200, retry_jitter=False)
async def performance_analysis() -> dict[str, Any]:
    """Per-task p50/p95 runtimes, error and retry rates, backlogs and cache hit ratio, with advice."""
    return await performance.analyse(await runtime(app.conf), app.known_queues())


@app.task(name="dashboard.tasks.export_dashboard_data", bind=True, autoretry_for=TRANSIENT, max_retries=1,
          retry_backoff=60, retry_jitter=False)
async def export_dashboard_data(self: Request, user_id: Any, export_format: str = "json",
                                date_range: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write the user's dashboard as json, csv or pdf; returns path, size, rows and sha256."""
    export.check_format(export_format)
    parse_date_range(date_range)
    return await export.export(await runtime(app.conf), user_id, export_format, date_range, self.id)


@app.task(name="dashboard.tasks.send_notification", bind=True, autoretry_for=(*TRANSIENT, DeliveryError),
          max_retries=2, retry_backoff=60, retry_jitter=False)
async def send_notification(self: Request, user_id: Any, message: str, notification_type: str = "info"
                            ) -> dict[str, Any]:
    """Store an in-app notification (info, warning or alert) and e-mail it to the user."""
    notify.check(message, notification_type)
    return await notify.send(await runtime(app.conf), user_id, message, notification_type, self.id)


@app.task(name="dashboard.tasks.cleanup_old_data", autoretry_for=TRANSIENT, max_retries=1,
          retry_backoff=3600, retry_backoff_max=3600, retry_jitter=False)
async def cleanup_old_data(days_old: int = 30) -> dict[str, Any]:
    """Delete snapshots, exports, notifications, reports and task history older than ``days_old`` days."""
    return await cleanup.cleanup(await runtime(app.conf), days_old)


@app.task(name="dashboard.tasks.debug_task", bind=True, max_retries=0)
async def debug_task(self: Request) -> dict[str, Any]:
    """Where and how this task ran (what ``skqueue check`` round-trips)."""
    return {"task_id": self.id, "hostname": self.hostname or socket.gethostname(), "pid": os.getpid(),
            "queue": self.delivery_info.get("routing_key"), "retries": self.retries,
            "ran_at": datetime.now(UTC).isoformat(timespec="milliseconds")}

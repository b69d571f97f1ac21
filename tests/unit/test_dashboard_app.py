"""The built-in ``skqueue.dashboard`` app: names, routes, retry policies and settings of the seven tasks."""

from __future__ import annotations

import random
from typing import Any

import pytest

from skqueue.cli import DEFAULT_APP, load_app
from skqueue.dashboard import app
from skqueue.errors import DeliveryError, InvalidArguments, UserNotFound
from skqueue.worker.retry import backoff_countdown

TABLE = {
    "refresh_dashboard_cache": ("high_priority", 3, 60),
    "warm_dashboard_cache": ("cache_operations", 3, 60),
    "performance_analysis": ("analytics", 2, 300),
    "export_dashboard_data": ("low_priority", 1, 60),
    "send_notification": ("high_priority", 2, 60),
    "cleanup_old_data": ("low_priority", 1, 3600),
    "debug_task": ("default", 0, False),
}


def test_it_is_the_cli_default_app() -> None:
    assert DEFAULT_APP == "skqueue.dashboard" and load_app(DEFAULT_APP) is app
    assert app.main == "senangkira"
    assert (app.conf.task_default_queue, app.conf.task_acks_late, app.conf.worker_prefetch_multiplier,
            app.conf.task_reject_on_worker_lost) == ("default", True, 1, True)
    assert app.known_queues() == ["default", "high_priority", "cache_operations", "analytics", "low_priority"]


@pytest.mark.parametrize("short", sorted(TABLE))
def test_routes_and_retry_policies(short: str) -> None:
    queue, retries, backoff = TABLE[short]
    task = app.get_task(f"dashboard.tasks.{short}")
    assert task.is_async and app.queue_for(task.name) == queue
    assert task.options.max_retries == retries and task.options.retry_backoff == backoff
    assert not task.options.retry_jitter or short == "debug_task"
    for bad in (InvalidArguments("x"), UserNotFound("x")):
        assert not isinstance(bad, task.options.autoretry_for)
    assert isinstance(DeliveryError("x"), task.options.autoretry_for) == (short == "send_notification")


def test_backoff_is_exponential_from_sixty_seconds() -> None:
    options = app.get_task("dashboard.tasks.refresh_dashboard_cache").options
    assert isinstance(options.retry_backoff, int)
    countdowns = [backoff_countdown(options.retry_backoff, n, options.retry_backoff_max, options.retry_jitter,
                                    random.Random(0)) for n in range(3)]
    assert countdowns == [60.0, 120.0, 240.0]


def test_the_runtime_is_per_loop_and_closed_with_its_loop(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from skqueue.config import Settings
    from skqueue.dashboard import runtime as rt_module

    closed: list[rt_module.Runtime] = []
    original = rt_module.Runtime.aclose

    async def recording(self: rt_module.Runtime) -> None:
        closed.append(self)
        await original(self)

    monkeypatch.setattr(rt_module.Runtime, "aclose", recording)
    settings = Settings(broker_url="redis://127.0.0.1:1/0", database_url=f"sqlite:///{tmp_path}/x.db")

    async def use() -> rt_module.Runtime:
        first = await rt_module.runtime(settings)
        assert await rt_module.runtime(settings) is first  # one per loop
        changed = await rt_module.runtime(settings.replace(dashboard_cache_ttl=5))
        assert changed is not first and closed[-1] is first  # new settings: the old one is closed at once
        return changed

    made = [asyncio.run(use()) for _ in range(2)]
    assert made[0] is not made[1]
    assert [closed[1], closed[3]] == made and len(closed) == 4  # closed when asyncio.run shut its loop down
    assert not (tmp_path / "x.db").exists()  # nothing was opened that was not used

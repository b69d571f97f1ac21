"""Soft and hard time limits, per task, per message and from settings."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.conftest import configure_wire

pytestmark = pytest.mark.timeout(30)


def test_soft_limit_is_raised_inside_a_sync_task(wire_app: Any, celery_app: Any, start_worker: Any) -> None:
    start_worker()
    assert celery_app.send_task("wire.soft_sync", args=(5.0,)).get(timeout=5) == "cleaned up"


@pytest.mark.parametrize("catch,expected", [(True, "cleaned up"), (False, None)])
def test_soft_limit_interrupts_an_async_task(wire_app: Any, celery_app: Any, start_worker: Any,
                                            catch: bool, expected: str | None) -> None:
    from celery.exceptions import SoftTimeLimitExceeded

    start_worker()
    result = celery_app.send_task("wire.soft_async", args=(5.0, catch))
    if expected:
        assert result.get(timeout=5) == expected
    else:
        with pytest.raises(SoftTimeLimitExceeded):
            result.get(timeout=5)


@pytest.mark.parametrize("task", ["wire.hard_sync", "wire.hard_async"])
def test_hard_limit_fails_the_task_and_frees_its_slot(wire_app: Any, celery_app: Any, start_worker: Any,
                                                     task: str) -> None:
    from celery.exceptions import TimeLimitExceeded

    start_worker(concurrency=1, prefetch_multiplier=2)
    started = time.monotonic()
    stuck = celery_app.send_task(task, args=(10.0,))
    after = celery_app.send_task("wire.add", args=(1, 2))
    with pytest.raises(TimeLimitExceeded):
        stuck.get(timeout=5)
    assert after.get(timeout=5) == 3
    assert time.monotonic() - started < 3
    meta = celery_app.backend.get_task_meta(stuck.id)
    assert meta["status"] == "FAILURE"


def test_message_time_limit_overrides_the_task(wire_app: Any, celery_app: Any, start_worker: Any) -> None:
    from celery.exceptions import TimeLimitExceeded

    start_worker()
    with pytest.raises(TimeLimitExceeded):
        celery_app.send_task("wire.sleep", args=(5.0,), time_limit=0.2).get(timeout=5)
    assert celery_app.send_task("wire.hard_async", args=(0.5,), time_limit=2).get(timeout=5) == "finished"


def test_time_limit_from_settings(server: Any, celery_app: Any, start_worker: Any) -> None:
    from celery.exceptions import TimeLimitExceeded

    configure_wire(server, task_time_limit=0.2)
    start_worker()
    with pytest.raises(TimeLimitExceeded):
        celery_app.send_task("wire.block", args=(3.0,)).get(timeout=5)

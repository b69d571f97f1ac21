"""Failure paths the review found: nothing may strand a message or hang a shutdown."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest

from tests.support import wait_for

pytestmark = pytest.mark.timeout(30)


def test_a_result_whose_repr_fails_is_still_stored(wire_app: Any, celery_app: Any, start_worker: Any,
                                                   server: Any, caplog: Any) -> None:
    caplog.set_level(logging.INFO, logger="skqueue")
    start_worker()
    assert celery_app.send_task("wire.bad_repr").get(timeout=5) == {"a": 1}
    wait_for(lambda: server.client(0).hlen("unacked") == 0)
    assert "_BadRepr instance" in caplog.text  # logged through a repr that cannot fail


def test_cold_stop_with_redis_gone_returns_promptly(wire_app: Any, celery_app: Any, start_worker: Any,
                                                    server: Any) -> None:
    worker = start_worker(shutdown_timeout=30)
    celery_app.send_task("wire.sleep", args=(0.3,))
    wait_for(lambda: server.client(0).hlen("unacked") == 1)
    server.stop()
    time.sleep(0.5)  # the task finishes; its result cannot be written
    started = time.monotonic()
    worker.stop(cold=True, timeout=15)
    assert time.monotonic() - started < 10

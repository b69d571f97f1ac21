from __future__ import annotations

from typing import Any


def test_delay_round_trip(wire_app: Any, celery_app: Any, start_worker: Any, server: Any) -> None:
    start_worker()
    result = celery_app.send_task("wire.add", args=(2, 3))
    assert result.get(timeout=5) == 5
    assert celery_app.send_task("wire.aadd", args=(20, 22)).get(timeout=5) == 42

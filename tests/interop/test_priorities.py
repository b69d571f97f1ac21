"""Spec §10 "Priorities and ordering"."""

from __future__ import annotations

from typing import Any

import pytest

from tests.apps import wire
from tests.conftest import configure_wire
from tests.support import wait_for

pytestmark = pytest.mark.timeout(30)


def _labels() -> list[Any]:
    return [label for kind, label in wire.CALLS if kind == "record"]


def _run_one_at_a_time(start_worker: Any, count: int, queues: list[str] | None = None) -> list[Any]:
    start_worker(concurrency=1, prefetch_multiplier=1, **({"queues": queues} if queues else {}))
    wait_for(lambda: len(_labels()) == count)
    return _labels()


def test_lower_number_runs_first(wire_app: Any, celery_app: Any, start_worker: Any, server: Any) -> None:
    for priority in (9, 6, 3, 0):
        celery_app.send_task("wire.record", args=(priority,), priority=priority)
    assert server.client(0).llen("default\x06\x169") == 1
    assert _run_one_at_a_time(start_worker, 4) == [0, 3, 6, 9]


def test_round_robin_between_queues_and_bands_first(
    wire_app: Any, celery_app: Any, start_worker: Any
) -> None:
    for i in range(3):
        celery_app.send_task("wire.record", args=(f"a{i}",), queue="qa")
    for i in range(3):
        celery_app.send_task("wire.record", args=(f"b{i}",), queue="qb")
    celery_app.send_task("wire.record", args=("a-low",), queue="qa", priority=3)
    celery_app.send_task("wire.record", args=("b-high",), queue="qb", priority=0)
    order = _run_one_at_a_time(start_worker, 8, queues=["qa", "qb"])
    assert order[:6] == ["a0", "b0", "a1", "b1", "a2", "b2"]
    assert order[6:] == ["b-high", "a-low"]


def test_fifo_within_a_band(wire_app: Any, celery_app: Any, start_worker: Any) -> None:
    for i in range(10):
        celery_app.send_task("wire.record", args=(i,), priority=4)
    assert _run_one_at_a_time(start_worker, 10) == list(range(10))


def test_no_priority_goes_to_the_bare_list(wire_app: Any, celery_app: Any, server: Any) -> None:
    celery_app.send_task("wire.record", args=("x",))
    assert server.client(0).llen("default") == 1


def test_custom_sep_and_priority_steps(server: Any, celery_factory: Any, start_worker: Any) -> None:
    options = {"sep": ":", "priority_steps": list(range(10))}
    configure_wire(server, broker_transport_options=options)
    capp = celery_factory(broker_transport_options=options)
    for priority in (7, 2, 9, 0, 5):
        capp.send_task("wire.record", args=(priority,), priority=priority)
    broker = server.client(0)
    assert broker.llen("default:7") == 1
    assert broker.llen("default") == 1
    assert _run_one_at_a_time(start_worker, 5) == [0, 2, 5, 7, 9]


def test_batch_reservation_keeps_band_major_order(wire_app: Any, celery_app: Any, start_worker: Any) -> None:
    for priority in (9, 6, 3, 0) * 3:
        celery_app.send_task("wire.record", args=(priority,), priority=priority)
    start_worker(concurrency=1, prefetch_multiplier=12)
    wait_for(lambda: len(_labels()) == 12)
    assert _labels() == sorted(_labels())

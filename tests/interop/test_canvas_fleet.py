"""Spec §5.8 in a mixed fleet: a real Celery worker (of the installed version) and skqueue run the header
tasks of the same chords; exactly one body runs, wherever it is routed, and chains cross between them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import celery
import pytest

from tests.conftest import configure_wire
from tests.support import spawn_celery, terminate

pytestmark = [pytest.mark.timeout(90), pytest.mark.slow]

CELERY_57 = tuple(int(p) for p in celery.__version__.split(".")[:2]) >= (5, 7)
# What the Celery workers of the fleet speak (5.3 workers know nothing of .d/.c), and auto.
PROTOCOLS = ["auto", "5.7" if CELERY_57 else "5.3"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_chord_headers_split_between_celery_and_skqueue(server: Any, celery_app: Any, start_worker: Any,
                                                        tmp_path: Path, protocol: str) -> None:
    from celery import chain, chord

    configure_wire(server, skqueue_chord_protocol=protocol)
    add = celery_app.signature("wire.add")
    xsum = celery_app.signature("wire.xsum")
    worker = spawn_celery(server, "-Q", "analytics", "-c", "1", "-P", "solo", log=tmp_path / "celery.log")
    try:
        start_worker(queues=["default"])
        assert add.clone((0, 0)).set(queue="analytics").apply_async().get(timeout=30) == 0  # Celery is up

        def header() -> list[Any]:
            return [add.clone((i, i)).set(queue="analytics" if i % 2 else "default") for i in range(6)]

        assert chord(header(), xsum.clone()).apply_async().get(timeout=20) == 30
        assert chord(header(), xsum.clone().set(queue="analytics")).apply_async().get(timeout=20) == 30
        steps = chain(add.clone((1, 1)), add.clone((2,)).set(queue="analytics"), add.clone((3,)))
        assert steps.apply_async().get(timeout=20) == 7
    finally:
        terminate(worker)
    log = (tmp_path / "celery.log").read_text()
    # Celery ran its half of both headers, the second body, the middle chain step (and the first ping).
    assert log.count("Task wire.add[") >= 2 * (1 + 3 + 1) and log.count("Task wire.xsum[") == 2

"""``wire.*`` tasks for canvas tests (chords, errbacks), registered on the same app as tests.apps.wire."""

from __future__ import annotations

from typing import Any

from skqueue import TaskContext
from tests.apps.wire import CALLS, app


@app.task(name="wire.xsum")
def xsum(values: list[int], *extra: int) -> int:
    """A chord body: the sum of the header results (and of any extra bound arguments)."""
    return sum(values) + sum(extra)


@app.task(name="wire.collect")
def collect(values: list[Any]) -> list[Any]:
    """A chord body that returns the header results exactly as it received them."""
    CALLS.append(("collect", values))
    return values


@app.task(name="wire.on_error")
def on_error(request: TaskContext, exc: BaseException, traceback: str | None) -> None:
    """A new-style errback: run inline by the worker that saw the failure."""
    CALLS.append(("on_error", (request.id, repr(exc), bool(traceback))))


@app.task(name="wire.old_errback")
def old_errback(task_id: str, label: str = "") -> None:
    """An old-style errback (one parameter left once its own argument is bound): published as a message
    with the failed task's id."""
    CALLS.append(("old_errback", (task_id, label)))

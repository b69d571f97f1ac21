"""More ``wire.*`` tasks (retries, time limits), registered on the same app as tests.apps.wire."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from typing import Any

from skqueue import TaskContext
from skqueue.errors import SoftTimeLimitExceeded
from tests.apps.wire import CALLS, app


class Flaky(Exception):
    pass


@app.task(name="wire.retry_twice", bind=True, max_retries=5)
def retry_twice(self: TaskContext, countdown: float = 0.1) -> dict[str, Any]:
    CALLS.append(("retry_twice", self.retries))
    if self.retries < 2:
        self.retry(exc=Flaky(f"attempt {self.retries}"), countdown=countdown)
    return {"retries": self.retries, "parent": self.parent_id}


@app.task(name="wire.always_retry", bind=True, max_retries=2)
async def always_retry(self: TaskContext) -> None:
    CALLS.append(("always_retry", self.retries))
    self.retry(exc=Flaky("still broken"), countdown=0)


@app.task(name="wire.auto", autoretry_for=(Flaky,), retry_backoff=True, retry_jitter=False, max_retries=2,
          retry_backoff_max=0)
def auto(fail_times: int, state_key: str) -> str:
    attempts = sum(1 for kind, label in CALLS if kind == "auto" and label == state_key)
    CALLS.append(("auto", state_key))
    if attempts < fail_times:
        raise Flaky(f"attempt {attempts}")
    return "ok"


@app.task(name="wire.soft_sync", soft_time_limit=0.2)
def soft_sync(seconds: float) -> str:
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:  # pure Python: interruptible at any bytecode
            sum(range(100))
    except SoftTimeLimitExceeded:
        return "cleaned up"
    return "finished"


@app.task(name="wire.soft_async", soft_time_limit=0.2)
async def soft_async(seconds: float, catch: bool) -> str:
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        if catch:
            return "cleaned up"
        raise
    return "finished"


@app.task(name="wire.hard_sync", time_limit=0.3)
def hard_sync(seconds: float) -> str:
    time.sleep(seconds)
    return "finished"


@app.task(name="wire.hard_async", time_limit=0.3)
async def hard_async(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "finished"


_LEDGER: list[Any] = []


def _ledger_client() -> Any:
    import redis

    if not _LEDGER:
        _LEDGER.append(redis.Redis.from_url(os.environ["WIRE_LEDGER"]))
    return _LEDGER[0]


@app.task(name="wire.ledger", bind=True)
def ledger(self: TaskContext, seconds: float = 0.0) -> int:
    """Records every execution (id, redelivered, pid) in a Redis list, for the at-least-once ledger."""
    if seconds:
        time.sleep(seconds)
    entry = json.dumps({"id": self.id, "redelivered": self.redelivered, "pid": os.getpid()})
    _ledger_client().rpush("ledger", entry)
    return os.getpid()


@app.task(name="wire.crash")
def crash() -> None:
    """Kills the process running it, every time: a poison message."""
    os.kill(os.getpid(), signal.SIGKILL)


class _BadRepr(dict):  # type: ignore[type-arg]
    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")


@app.task(name="wire.bad_repr")
def bad_repr() -> dict[str, int]:
    """Returns a value whose ``repr`` raises (the worker logs results at INFO)."""
    return _BadRepr(a=1)

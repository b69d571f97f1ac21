"""The skqueue side of the compatibility tests: tasks named ``wire.*``."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from typing import Any

from skqueue import App, TaskContext

app = App("wire")
ROUTES = {
    "wire.hp": {"queue": "high_priority"},
    "wire.cache": {"queue": "cache_operations"},
    "wire.analytics": {"queue": "analytics"},
    "wire.low": {"queue": "low_priority"},
    "wire.reminder": {"queue": "reminders"},
}

# Execution order and thread of each call, for the tests to inspect (the worker runs in-process).
CALLS: list[tuple[str, Any]] = []


class WireError(Exception):
    """A custom exception the client can import (tests.apps.wire.WireError)."""


@app.task(name="wire.add")
def add(x: int, y: int) -> int:
    return x + y


@app.task(name="wire.aadd")
async def aadd(x: int, y: int) -> int:
    await asyncio.sleep(0)
    return x + y


@app.task(name="wire.record")
async def record(label: Any) -> Any:
    CALLS.append(("record", label))
    return label


@app.task(name="wire.thread_name")
def thread_name() -> str:
    return threading.current_thread().name


@app.task(name="wire.echo")
def echo(*args: Any, **kwargs: Any) -> dict[str, Any]:
    return {"args": list(args), "kwargs": kwargs, "types": [type(a).__name__ for a in args]}


@app.task(name="wire.identity")
def identity(value: Any) -> Any:
    return value


@app.task(name="wire.fail")
def fail(message: str = "boom") -> None:
    raise ValueError(message)


@app.task(name="wire.fail_custom")
async def fail_custom(*args: Any) -> None:
    raise WireError(*args)


@app.task(name="wire.sleep")
async def sleep(seconds: float) -> float:
    await asyncio.sleep(seconds)
    return seconds


@app.task(name="wire.block")
def block(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@app.task(name="wire.context", bind=True)
def context(self: TaskContext) -> dict[str, Any]:
    return {
        "id": self.request.id,
        "retries": self.retries,
        "redelivered": self.redelivered,
        "delivery_info": self.delivery_info,
        "eta": self.eta.isoformat() if self.eta else None,
        "custom": self.headers.get("custom_hdr"),
        "pid": os.getpid(),
    }


@app.task(name="wire.ignored", ignore_result=True)
def ignored() -> str:
    return "nobody reads this"


@app.task(name="wire.hp")
def hp() -> dict[str, int]:
    return {"hp": 1}


@app.task(name="wire.cache")
def cache() -> str:
    return "cache"


@app.task(name="wire.analytics")
def analytics() -> str:
    return "analytics"


@app.task(name="wire.low")
def low() -> str:
    return "low"


@app.task(name="wire.reminder")
def reminder() -> str:
    return "reminder"


@app.task(name="wire.debug_task", bind=True)
def debug_task(self: TaskContext) -> str:
    """SenangKira's ``debug_task``: what the monitoring API's health check runs in the tests."""
    return f"Request: {self.request.id}"


# Registered last: it imports ``app`` and ``CALLS`` from this module.
from tests.apps import wire_canvas, wire_more  # noqa: E402, F401

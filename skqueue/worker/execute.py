"""Run one task function and describe what happened. No Redis here."""

from __future__ import annotations

import functools
import time
import traceback
from dataclasses import dataclass
from typing import Any

from skqueue.app import Task
from skqueue.protocol import states
from skqueue.protocol.message import TaskMessage
from skqueue.worker.context import TaskContext
from skqueue.worker.threads import ThreadPool


@dataclass(slots=True)
class Outcome:
    state: str
    value: Any = None
    exc: BaseException | None = None
    traceback: str | None = None
    runtime: float = 0.0


def build_context(message: TaskMessage, queue: str, hostname: str) -> TaskContext:
    return TaskContext(
        id=message.id,
        name=message.task,
        args=message.args,
        kwargs=message.kwargs,
        retries=message.retries,
        eta=message.eta,
        expires=message.expires,
        redelivered=message.redelivered,
        delivery_info={
            "exchange": message.exchange,
            "routing_key": message.routing_key or queue,
            "priority": message.priority,
            "redelivered": message.redelivered,
        },
        headers=message.headers,
        root_id=message.root_id,
        parent_id=message.parent_id,
        group=message.group,
        hostname=hostname,
    )


async def run_task(task: Task, message: TaskMessage, ctx: TaskContext | None, threads: ThreadPool) -> Outcome:
    """Await an ``async def`` task on the loop, or run a plain function in a worker thread."""
    args: list[Any] = [ctx, *message.args] if task.options.bind else message.args
    started = time.perf_counter()
    try:
        if task.is_async:
            value = await task.fn(*args, **message.kwargs)
        else:
            call = functools.partial(task.fn, *args, **message.kwargs)
            value = await threads.run(call)
    except Exception as exc:
        return Outcome(states.FAILURE, None, exc, traceback.format_exc(), time.perf_counter() - started)
    return Outcome(states.SUCCESS, value, None, None, time.perf_counter() - started)

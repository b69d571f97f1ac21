"""Run one task function under its time limits and describe what happened. No Redis here.

``async def`` tasks are awaited on the loop; plain functions run on the :class:`ThreadPool`.

Time limits (``(hard, soft)`` seconds from the message, else the task, else the settings):

* soft: a sync task gets :class:`SoftTimeLimitExceeded` raised inside it; an async task is cancelled at
  its current ``await`` (asyncio can only interrupt a coroutine with ``CancelledError``), and if it lets the
  cancellation through it ends with ``SoftTimeLimitExceeded``. Either may catch it, clean up and return.
* hard: the task ends FAILURE ``TimeLimitExceeded`` and its slot is freed at once; a sync call that is
  still stuck is interrupted and its thread replaced.
"""

from __future__ import annotations

import asyncio
import functools
import random
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from skqueue.app import Task
from skqueue.errors import Retry, SoftTimeLimitExceeded, TaskRevokedError, TimeLimitExceeded
from skqueue.protocol import states
from skqueue.protocol.message import TaskMessage
from skqueue.worker.context import TaskContext
from skqueue.worker.retry import autoretry
from skqueue.worker.threads import Job, ThreadPool

HARD_GRACE = 1.0


@dataclass(slots=True)
class Outcome:
    """``state`` is SUCCESS, FAILURE, RETRY (``exc`` is the :class:`Retry`) or REVOKED (terminated)."""

    state: str
    value: Any = None
    exc: BaseException | None = None
    traceback: str | None = None
    runtime: float = 0.0


def build_context(task: Task, message: TaskMessage, queue: str, hostname: str) -> TaskContext:
    return TaskContext(
        max_retries=task.options.max_retries,
        default_retry_delay=task.options.default_retry_delay,
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


def time_limits(task: Task, message: TaskMessage) -> tuple[float | None, float | None]:
    hard, soft = message.timelimit
    task_hard, task_soft = task.time_limits
    return (hard if hard is not None else task_hard, soft if soft is not None else task_soft)


class Running:
    """Handle on an executing task, so ``revoke(terminate=True)`` can stop it wherever it runs."""

    def __init__(self, task: asyncio.Task[Any] | None = None) -> None:
        self.task = task
        self.child: asyncio.Future[Any] | None = None
        self.job: Job | None = None
        self.pool: ThreadPool | None = None
        self.terminated = False

    def terminate(self) -> None:
        """Stop the task now. The caller sees ``CancelledError`` (or the task's exception) and, seeing
        ``terminated``, records REVOKED. A sync call blocked in C keeps its thread until it returns, but
        its slot is freed and its thread replaced at once."""
        self.terminated = True
        if self.job is not None:
            self.job.interrupt(TaskRevokedError)
            if self.pool is not None:
                self.pool.abandon(self.job)
            self.job.future.cancel()
        elif self.child is not None:
            self.child.cancel("terminated")
        elif self.task is not None:
            self.task.cancel("terminated")


async def run_task(task: Task, message: TaskMessage, ctx: TaskContext | None, threads: ThreadPool, *,
                   running: Running | None = None, rng: random.Random | None = None) -> Outcome:
    """Run the task; exceptions become FAILURE (or RETRY via ``retry()`` / ``autoretry_for``)."""
    args: list[Any] = [ctx, *message.args] if task.options.bind else message.args
    hard, soft = time_limits(task, message)
    handle = running or Running()
    started = time.perf_counter()
    try:
        if task.is_async:
            value = await _run_async(lambda: task.fn(*args, **message.kwargs), hard, soft, handle)
        else:
            value = await _run_sync(threads, functools.partial(task.fn, *args, **message.kwargs), hard, soft, handle)
    except Exception as exc:
        return _failed(task, ctx, exc, time.perf_counter() - started, handle=handle, rng=rng or random.Random())
    return Outcome(states.SUCCESS, value, None, None, time.perf_counter() - started)


def _failed(task: Task, ctx: TaskContext | None, exc: Exception, runtime: float, *, handle: Running,
            rng: random.Random) -> Outcome:
    trace = "".join(traceback.format_exception(exc))
    if handle.terminated:
        return Outcome(states.REVOKED, None, exc, None, runtime)
    final = autoretry(task, ctx, exc, rng) if ctx is not None else exc
    if final is not exc:
        trace = "".join(traceback.format_exception(final))
    if isinstance(final, Retry):
        return Outcome(states.RETRY, None, final, trace, runtime)
    return Outcome(states.FAILURE, None, final, trace, runtime)


async def _run_async(call: Callable[[], Any], hard: float | None, soft: float | None, handle: Running) -> Any:
    if hard is None and soft is None:
        return await call()
    child: asyncio.Future[Any] = asyncio.ensure_future(call())
    handle.child = child
    loop = asyncio.get_running_loop()
    soft_timer = loop.call_later(soft, child.cancel, "soft time limit") if soft else None
    try:
        await asyncio.wait({child}, timeout=hard)
    except asyncio.CancelledError:
        child.cancel()
        raise
    finally:
        if soft_timer is not None:
            soft_timer.cancel()
    if not child.done():
        child.cancel("hard time limit")
        await asyncio.wait({child}, timeout=HARD_GRACE)
        raise TimeLimitExceeded(hard)
    if child.cancelled() and not handle.terminated:
        raise SoftTimeLimitExceeded()
    return child.result()


async def _run_sync(threads: ThreadPool, call: Callable[[], Any], hard: float | None, soft: float | None,
                    handle: Running) -> Any:
    job = threads.submit(call)
    handle.job, handle.pool = job, threads
    if hard is None and soft is None:
        return await job.future
    loop = asyncio.get_running_loop()
    soft_timer = loop.call_later(soft, job.interrupt, SoftTimeLimitExceeded) if soft else None
    try:
        done, _ = await asyncio.wait({job.future}, timeout=hard)
    finally:
        if soft_timer is not None:
            soft_timer.cancel()
    if not done:
        job.interrupt(TimeLimitExceeded)
        threads.abandon(job)
        job.future.cancel()
        raise TimeLimitExceeded(hard)
    return job.future.result()

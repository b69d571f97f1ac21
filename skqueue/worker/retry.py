"""Retries as Celery does them: a new message with the same id, ``retries + 1`` and an ``eta``."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from skqueue.app import Task
from skqueue.broker.transport import Publish
from skqueue.errors import Retry
from skqueue.protocol.message import V2_HEADERS, Embed, Outgoing, TaskMessage, encode_task
from skqueue.worker.context import TaskContext

# v2 headers carried over to the retry message unchanged besides the custom ones (Celery copies them
# from the request: stamping and nesting information).
_CARRIED = ("replaced_task_nesting", "stamped_headers", "stamps")


def backoff_countdown(factor: float, retries: int, maximum: float, jitter: bool, rng: random.Random) -> float:
    """Celery's ``get_exponential_backoff_interval``: ``factor * 2**retries`` capped at ``maximum``, and
    with full jitter a uniformly random whole number of seconds between 0 and that."""
    countdown = min(maximum, factor * (2 ** retries))
    if jitter:
        countdown = rng.randrange(int(countdown) + 1)
    return max(0.0, float(countdown))


def autoretry(task: Task, ctx: TaskContext, exc: Exception, rng: random.Random) -> BaseException:
    """What an exception becomes under ``autoretry_for``: a :class:`Retry`, or (past ``max_retries``) the
    exception itself, exactly as Celery's autoretry wrapper calling ``task.retry(exc=exc)`` does."""
    opts = task.options
    if not opts.autoretry_for or not isinstance(exc, opts.autoretry_for):
        return exc
    if opts.dont_autoretry_for and isinstance(exc, opts.dont_autoretry_for):
        return exc
    kwargs = dict(opts.retry_kwargs)
    if opts.retry_backoff:
        factor = 1.0 if opts.retry_backoff is True else max(1.0, float(opts.retry_backoff))
        kwargs["countdown"] = backoff_countdown(factor, ctx.retries, opts.retry_backoff_max, opts.retry_jitter, rng)
    try:
        ctx.retry(exc=exc, **kwargs)
    except BaseException as outcome:  # retry() always raises: Retry, or the final exception
        return outcome
    raise AssertionError("unreachable")  # pragma: no cover


def retry_eta(retry: Retry, now: datetime) -> datetime:
    eta = retry.options.get("eta")
    if isinstance(eta, datetime):
        return eta
    return now + timedelta(seconds=float(retry.when or 0))


def retry_message(message: TaskMessage, queue: str, retry: Retry, now: datetime, hostname: str) -> Publish:
    """The message a Celery worker would publish for ``retry``: same id, args and workflow, ``retries+1``,
    ``parent_id`` = the task itself, custom headers and priority kept, same queue unless overridden."""
    headers = {k: v for k, v in message.headers.items() if k not in V2_HEADERS or k in _CARRIED}
    headers.pop("x-death", None)
    target = str(retry.options.get("queue") or message.routing_key or queue)
    priority = int(str(retry.options.get("priority", message.priority)))
    out = Outgoing(
        task=message.task, args=message.args, kwargs=message.kwargs, id=message.id, queue=target,
        priority=priority, eta=retry_eta(retry, now), expires=message.expires, retries=message.retries + 1,
        root_id=message.root_id or message.id, parent_id=message.id, group=message.group,
        group_index=message.group_index, timelimit=message.timelimit, shadow=message.shadow,
        ignore_result=message.ignore_result, origin=hostname,
        embed=Embed(message.embed.callbacks, message.embed.errbacks, message.embed.chain, message.embed.chord),
        extra_headers=headers, reply_to=message.reply_to,
    )
    return Publish(target, priority, encode_task(out))

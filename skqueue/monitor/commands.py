"""Commands: send a registered task, revoke a task, send a failed task again with its original arguments.

**Where retry finds the original arguments**, in this order: the result meta (when the workers store
extended results, ``result_extended``); what this API recorded when it sent the task (kept as long as
results, see :mod:`skqueue.broker.submissions`); the dead-letter list (the newest
``DEAD_LETTER_SCAN`` entries). A failed task sent by a Celery client without ``result_extended`` has
its arguments nowhere: retrying it answers "conflict" and says so.
"""

from __future__ import annotations

import inspect
import signal
import time
from typing import Any

from skqueue.app import Task
from skqueue.broker.mailbox import broadcast
from skqueue.broker.results import MetaWrite
from skqueue.broker.submissions import Submission
from skqueue.errors import Conflict, InvalidRequest, NotFound, ProtocolError
from skqueue.monitor.base import ORIGIN, Monitor, check_task_id
from skqueue.protocol import results, states
from skqueue.protocol.message import Outgoing, decode_task, encode_task

# As a worker does (Celery >= 5.6): a revoke stores REVOKED for tasks that have not started.
REVOCABLE_STATES = (states.PENDING, states.RECEIVED, states.RETRY, states.REJECTED)
DEAD_LETTER_SCAN = 1000
SIGNALS = frozenset(s.name for s in signal.Signals)


def check_arguments(task: Task, args: list[Any], kwargs: dict[str, Any]) -> None:
    """Raise :class:`InvalidRequest` unless ``task``'s function accepts these arguments."""
    try:
        signature = inspect.signature(task.fn)
    except (TypeError, ValueError):  # no introspectable signature: the worker will tell
        return
    params = list(signature.parameters.values())
    if task.options.bind:  # the worker passes the task context first
        params = params[1:]
    try:
        signature.replace(parameters=params).bind(*args, **kwargs)
    except TypeError as exc:
        raise InvalidRequest(f"bad arguments for {task.name}: {exc}") from None


def _parse_execute(body: Any) -> tuple[list[Any], dict[str, Any], Any]:
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    args = body.get("args", [])
    kwargs = body.get("kwargs", {})
    if not isinstance(args, list):
        raise InvalidRequest("args must be a JSON array")
    if not isinstance(kwargs, dict):
        raise InvalidRequest("kwargs must be a JSON object")
    unknown = set(body) - {"args", "kwargs", "user_id"}
    if unknown:
        raise InvalidRequest(f"unknown field(s) in the request body: {', '.join(sorted(unknown))}")
    return args, dict(kwargs), body.get("user_id")


async def execute(monitor: Monitor, name: str, body: Any) -> dict[str, Any]:
    """Send the registered task ``name`` with the body's ``args``/``kwargs``; ``user_id``, when given,
    becomes the ``user_id`` keyword argument unless ``kwargs`` already has one."""
    task = monitor.app.tasks.get(name)
    if task is None:
        raise NotFound(f"Unknown task: {name}")
    args, kwargs, user_id = _parse_execute(body)
    if user_id is not None:
        kwargs.setdefault("user_id", user_id)
    check_arguments(task, args, kwargs)
    return await enqueue(monitor, name, args, kwargs)


async def enqueue(monitor: Monitor, name: str, args: list[Any], kwargs: dict[str, Any],
                  retry_of: str | None = None) -> dict[str, Any]:
    """Publish a Celery message for ``name`` to the queue the app routes it to."""
    route = monitor.app.route(name)
    queue = monitor.app.queue_for(name)
    task = monitor.app.tasks.get(name)
    priority = route.get("priority", task.options.priority if task else None)
    if priority is None:
        priority = monitor.app.conf.task_default_priority or 0
    out = Outgoing(task=name, args=args, kwargs=kwargs, queue=queue, priority=int(priority), origin=ORIGIN)
    raw = encode_task(out)
    # Recorded before the publish: a task that fails at once can always be retried.
    await monitor.submissions.record(Submission(out.id, name, args, kwargs, queue, time.time(), retry_of))
    await monitor.broker.publish(queue, out.priority, raw)
    reply = {"task_id": out.id, "task_name": name, "queue": queue, "status": "queued",
             "message": f"Task {name} queued successfully"}
    if retry_of is not None:
        reply["retry_of"] = retry_of
    return reply


def _parse_revoke(body: Any) -> tuple[bool, str]:
    if body is None:
        return False, "SIGTERM"
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    terminate = body.get("terminate", False)
    if not isinstance(terminate, bool):
        raise InvalidRequest("terminate must be true or false")
    name = str(body.get("signal") or "SIGTERM").upper()
    name = name if name.startswith("SIG") else f"SIG{name}"
    if name not in SIGNALS:
        raise InvalidRequest(f"unknown signal {body.get('signal')!r}")
    return terminate, name


async def revoke(monitor: Monitor, task_id: str, body: Any) -> dict[str, Any]:
    """Revoke ``task_id`` everywhere: persisted (workers started later skip it), REVOKED stored if it has
    not started, and Celery's ``revoke`` broadcast so running workers (skqueue or Celery) act now."""
    check_task_id(task_id)
    terminate, signame = _parse_revoke(body)
    await monitor.revoked.add([task_id])
    if monitor.results is not None:
        meta = results.revoked(task_id, "revoked").to_json()
        await monitor.results.store_if_pending([MetaWrite(task_id, meta, monitor.settings.result_expires)],
                                               REVOCABLE_STATES)
    await broadcast(monitor.mailbox, "revoke", {"task_id": [task_id], "terminate": terminate, "signal": signame},
                    reply=False)
    stored = await monitor.results.get(task_id) if monitor.results is not None else None
    return {"task_id": task_id, "revoked": True, "terminate": terminate, "signal": signame,
            "status": (stored or {}).get("status", states.PENDING), "message": f"Revoked '{task_id}'"}


async def retry(monitor: Monitor, task_id: str) -> dict[str, Any]:
    """Send a FAILURE task again, as a new task, with its original name and arguments."""
    check_task_id(task_id)
    if monitor.results is None:
        raise Conflict("no result backend is configured: cannot tell whether the task failed")
    meta = await monitor.results.get(task_id)
    if meta is None:
        raise NotFound(f"no result is stored for task {task_id}")
    status = meta.get("status")
    if status != states.FAILURE:
        raise Conflict(f"task {task_id} is {status}: only FAILURE tasks can be retried")
    original = await original_call(monitor, task_id, meta)
    if original is None:
        raise Conflict(f"the original arguments of task {task_id} are unknown: it was not sent through this "
                       "API and the workers do not store them (set result_extended=True to keep them)")
    name, args, kwargs = original
    if name not in monitor.app.tasks:
        raise Conflict(f"task {name} is not registered in this app: it cannot be sent from here")
    return await enqueue(monitor, name, args, kwargs, retry_of=task_id)


async def original_call(monitor: Monitor, task_id: str,
                        meta: dict[str, Any]) -> tuple[str, list[Any], dict[str, Any]] | None:
    """``(name, args, kwargs)`` the task was sent with, if known (see the module docstring)."""
    if meta.get("name") and isinstance(meta.get("args"), list) and isinstance(meta.get("kwargs"), dict):
        return str(meta["name"]), list(meta["args"]), dict(meta["kwargs"])
    submitted = await monitor.submissions.get(task_id)
    if submitted is not None:
        return submitted.name, list(submitted.args), dict(submitted.kwargs)
    for letter in await monitor.dead_letters.list(0, DEAD_LETTER_SCAN):
        if letter.task_id != task_id or not letter.payload:
            continue
        try:
            message = decode_task(letter.payload.encode(), monitor.settings.tz())
        except ProtocolError:
            continue
        return message.task, list(message.args), dict(message.kwargs)
    return None

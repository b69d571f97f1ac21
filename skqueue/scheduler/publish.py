"""The task message of one firing: what Celery beat's ``send_task``/``apply_async`` would publish."""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta

from skqueue.app import App
from skqueue.broker.schedules import Firing, utc_iso
from skqueue.protocol.message import Outgoing, clamp_priority, encode_task
from skqueue.scheduler.entries import Entry

# Custom headers on every scheduled message. ``celery_beat_task`` is what Celery 5.7's beat adds; the
# skqueue ones say which entry and firing sent it (a Celery worker ignores them).
BEAT_HEADER = "celery_beat_task"
ENTRY_HEADER = "skqueue_schedule"
FIRE_TIME_HEADER = "skqueue_fire_time"


def client_origin() -> str:
    """``gen<pid>@<host>``: how a Celery client names itself in ``headers.origin``."""
    return f"gen{os.getpid()}@{socket.gethostname()}"


def outgoing(app: App, entry: Entry, fire_time: datetime, now: datetime, origin: str) -> Outgoing:
    """The message for ``entry`` firing at ``fire_time``, sent at ``now``. Routing is the app's, as for
    any Celery client: the entry's ``queue`` option, else the task's route, else the default queue."""
    opts = entry.options
    task = app.tasks.get(entry.task)
    priority = opts.priority if opts.priority is not None else app.conf.task_default_priority
    ignore_result = opts.ignore_result
    if ignore_result is None and task is not None:
        ignore_result = task.ignore_result
    headers = {**opts.headers, BEAT_HEADER: True, ENTRY_HEADER: entry.name, FIRE_TIME_HEADER: utc_iso(fire_time)}
    return Outgoing(
        task=entry.task, args=list(entry.args), kwargs=dict(entry.kwargs),
        queue=opts.queue or app.queue_for(entry.task), priority=clamp_priority(priority or 0),
        expires=now + timedelta(seconds=opts.expires) if opts.expires is not None else None,
        timelimit=(opts.time_limit, opts.soft_time_limit), shadow=opts.shadow, ignore_result=ignore_result,
        origin=origin, extra_headers=headers,
    )


def firing(app: App, entry: Entry, fire_time: datetime, now: datetime, origin: str, *,
           next_run: datetime | None = None, missed: int = 0) -> Firing:
    """A :class:`Firing` ready for the store: the encoded message and where it goes."""
    out = outgoing(app, entry, fire_time, now, origin)
    expiration = int(entry.options.expires * 1000) if entry.options.expires is not None else None
    return Firing(entry.name, fire_time, out.queue, out.priority, encode_task(out, expiration_ms=expiration),
                  out.id, next_run, missed)

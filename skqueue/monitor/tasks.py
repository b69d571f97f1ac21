"""Task queries: recent attempts (from the telemetry stream, newest first) and everything known about one
task (its attempts, its stored result or exception, its arguments when known).

The stream is read in pages with ``XREVRANGE ... COUNT``; a filtered listing stops after scanning
``SCAN_LIMIT`` entries and hands back a cursor to go on from, so no request reads the whole stream.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from skqueue.broker.inspect import Entry
from skqueue.broker.telemetry import TaskRecord
from skqueue.errors import InvalidRequest
from skqueue.monitor.base import Monitor, check_task_id, iso
from skqueue.monitor.cluster import live_workers
from skqueue.protocol import states

MAX_LIMIT = 500
PAGE = 500
SCAN_LIMIT = 10_000
HISTORY_SCAN = 10_000
DONE_MARGIN = 60.0
STATES = frozenset({states.SUCCESS, states.FAILURE, states.RETRY, states.REVOKED, states.REJECTED})
_CURSOR = re.compile(r"\d{1,20}-\d{1,20}")


@dataclass(frozen=True, slots=True)
class TaskQuery:
    """A validated task listing request."""

    limit: int = 50
    cursor: str | None = None
    state: str | None = None
    name: str | None = None
    queue: str | None = None

    def matches(self, record: TaskRecord) -> bool:
        return ((self.state is None or record.state == self.state)
                and (self.name is None or record.name == self.name)
                and (self.queue is None or record.queue == self.queue))

    @property
    def filtered(self) -> bool:
        return self.state is not None or self.name is not None or self.queue is not None


def parse_query(params: dict[str, str]) -> TaskQuery:
    """Build a :class:`TaskQuery` from query parameters; raises :class:`InvalidRequest` on bad values."""
    raw_limit = params.get("limit", "50")
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LIMIT:
        raise InvalidRequest(f"limit must be an integer from 1 to {MAX_LIMIT}")
    cursor = params.get("cursor") or None
    if cursor is not None and not _CURSOR.fullmatch(cursor):
        raise InvalidRequest("cursor must be a next_cursor value from an earlier page")
    state = (params.get("state") or "").upper() or None
    if state is not None and state not in STATES:
        raise InvalidRequest(f"state must be one of {', '.join(sorted(STATES))}")
    return TaskQuery(int(raw_limit), cursor, state, params.get("name") or None, params.get("queue") or None)


def attempt(record: TaskRecord) -> dict[str, Any]:
    """One finished attempt as the API shows it."""
    return {
        "task_id": record.task_id, "name": record.name, "status": record.state, "queue": record.queue,
        "worker": record.worker, "retries": record.retries, "duration": round(record.runtime, 6),
        "received_at": iso(record.received), "started_at": iso(record.started),
        "completed_at": iso(record.completed), "exception": record.exception or None,
    }


async def list_tasks(monitor: Monitor, query: TaskQuery) -> dict[str, Any]:
    found: list[Entry] = []
    scanned = 0
    before = query.cursor
    exhausted = False
    while len(found) < query.limit and scanned < SCAN_LIMIT:
        want = PAGE if query.filtered else query.limit - len(found)
        page = await monitor.telemetry.page(min(want, SCAN_LIMIT - scanned), before)
        if not page:
            exhausted = True
            break
        for entry in page:
            scanned += 1
            before = entry.id
            if query.matches(entry.record):
                found.append(entry)
                if len(found) == query.limit:
                    break
    tasks = [attempt(entry.record) for entry in found]
    return {"tasks": tasks, "count": len(tasks), "next_cursor": None if exhausted else before,
            "scanned": scanned, "timestamp": monitor.now_iso()}


def _scan_start(meta: dict[str, Any] | None) -> str | None:
    """Where a history search starts: shortly after the stored ``date_done`` (no attempt of the task was
    recorded later), else at the newest entry."""
    done = (meta or {}).get("date_done")
    try:
        stamp = datetime.fromisoformat(str(done)).timestamp() if done else None
    except ValueError:
        stamp = None
    return None if stamp is None else f"{int((stamp + DONE_MARGIN) * 1000)}-0"


async def attempts_of(monitor: Monitor, task_id: str, before: str | None = None) -> tuple[list[TaskRecord], bool]:
    """The task's attempts, oldest first, and whether the search reached its first attempt (or the start
    of the stream) within ``HISTORY_SCAN`` entries older than the entry id ``before``."""
    found: list[TaskRecord] = []
    scanned = 0
    while scanned < HISTORY_SCAN:
        page = await monitor.telemetry.page(PAGE * 4, before)
        if not page:
            return found[::-1], True
        for entry in page:
            scanned += 1
            before = entry.id
            if entry.record.task_id == task_id:
                found.append(entry.record)
                if entry.record.retries == 0:
                    return found[::-1], True
    return found[::-1], False


async def _running_on(monitor: Monitor, task_id: str) -> str | None:
    for record in await live_workers(monitor):
        if task_id in record.active:
            return record.node
    return None


async def task_detail(monitor: Monitor, task_id: str) -> dict[str, Any]:
    check_task_id(task_id)
    meta = await monitor.results.get(task_id) if monitor.results is not None else None
    history, complete = await attempts_of(monitor, task_id, _scan_start(meta))
    running_on = await _running_on(monitor, task_id)
    submitted = await monitor.submissions.get(task_id)
    last = history[-1] if history else None
    status = _status(meta, last, running_on)
    known = meta or {}
    detail: dict[str, Any] = {
        "task_id": task_id, "status": status,
        "name": known.get("name") or (last.name if last else None) or (submitted.name if submitted else None),
        "queue": known.get("queue") or (last.queue if last else None) or (submitted.queue if submitted else None),
        "worker": known.get("worker") or (last.worker if last else None), "running_on": running_on,
        "retries": last.retries if last else known.get("retries", 0),
        "attempts": [attempt(r) for r in history], "history_complete": complete,
    }
    detail.update(_arguments(monitor, meta, submitted))
    detail.update(_outcome(monitor, meta))
    detail["timestamp"] = monitor.now_iso()
    return detail


def _status(meta: dict[str, Any] | None, last: TaskRecord | None, running_on: str | None) -> str:
    if meta is not None and meta.get("status"):
        return str(meta["status"])
    if running_on is not None:
        return states.STARTED
    return last.state if last is not None else states.PENDING


def _arguments(monitor: Monitor, meta: dict[str, Any] | None, submitted: Any) -> dict[str, Any]:
    if meta is not None and "args" in meta:
        return {"args": monitor.clip(meta.get("args")), "kwargs": monitor.clip(meta.get("kwargs"))}
    if submitted is not None:
        return {"args": monitor.clip(submitted.args), "kwargs": monitor.clip(submitted.kwargs)}
    return {"args": None, "kwargs": None}


def _outcome(monitor: Monitor, meta: dict[str, Any] | None) -> dict[str, Any]:
    """Result or exception and traceback, from the result backend."""
    if meta is None:
        return {"result": None, "exception": None, "traceback": None, "date_done": None, "children": []}
    status = meta.get("status")
    value = meta.get("result")
    exception = None
    if status in states.EXCEPTION_STATES and isinstance(value, dict) and "exc_type" in value:
        exception = {"type": value.get("exc_type"), "module": value.get("exc_module"),
                     "message": monitor.clip(value.get("exc_message"))}
        value = None
    return {"result": monitor.clip(value), "exception": exception, "traceback": monitor.clip(meta.get("traceback")),
            "date_done": meta.get("date_done"), "children": monitor.clip(meta.get("children") or []),
            "parent_id": meta.get("parent_id"), "group_id": meta.get("group_id")}

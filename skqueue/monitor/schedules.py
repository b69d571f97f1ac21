"""The schedule as the API shows it: list entries, pause, resume and trigger one.

The entries themselves (parsed from ``beat_schedule``, with their cron math and how a firing's message is
built) belong to :mod:`skqueue.scheduler`, which the API must not import. So the API is *given* a
:class:`ScheduleBook` (``skqueue.wiring`` adapts the scheduler's service functions to it) and hands it
the Redis-level :class:`~skqueue.broker.schedules.ScheduleStore` it opened.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from skqueue.broker.lease import Lease
from skqueue.broker.results import ResultStore
from skqueue.broker.schedules import ScheduleStore
from skqueue.errors import NotFound
from skqueue.monitor.base import Monitor

LEASE_SECONDS = 30.0  # only used to build the reader; the holder is read, never taken


@dataclass(frozen=True, slots=True)
class ScheduleView:
    """One entry with its state (times are aware UTC datetimes, ``None`` for never)."""

    name: str
    task: str
    queue: str
    schedule: str
    timezone: str
    next_run: datetime | None
    scheduled: bool  # False until a scheduler has seen the entry (next_run is then the computed one)
    last_run: datetime | None
    last_status: str | None
    last_task_id: str | None
    last_result: str | None
    run_count: int
    missed: int
    skipped: int
    paused: bool
    catch_up: str
    overlap: str


class ScheduleBook(Protocol):
    """The app's schedule entries and the commands on them. Unknown names raise :class:`NotFound`."""

    async def list(self, store: ScheduleStore, results: ResultStore | None, now: datetime) -> list[ScheduleView]:
        ...

    async def pause(self, store: ScheduleStore, name: str) -> None: ...

    async def resume(self, store: ScheduleStore, name: str, now: datetime) -> None: ...

    async def trigger(self, store: ScheduleStore, name: str, now: datetime) -> str: ...


def _book(monitor: Monitor) -> ScheduleBook:
    if monitor.schedules is None:
        raise NotFound("this API was started without the app's schedule")
    book: ScheduleBook = monitor.schedules
    return book


def _store(monitor: Monitor) -> ScheduleStore:
    return ScheduleStore(monitor.broker.client, monitor.broker.keys)


def _now(monitor: Monitor) -> datetime:
    return datetime.fromtimestamp(monitor.clock(), UTC)


def view(entry: ScheduleView) -> dict[str, Any]:
    shown = asdict(entry)
    for name in ("next_run", "last_run"):
        moment = shown[name]
        shown[name] = moment.astimezone(UTC).isoformat() if moment is not None else None
    return shown


async def _find(monitor: Monitor, name: str) -> dict[str, Any]:
    for entry in await _book(monitor).list(_store(monitor), monitor.results, _now(monitor)):
        if entry.name == name:
            return view(entry)
    raise NotFound(f"no schedule entry named {name!r}")


async def list_schedules(monitor: Monitor) -> dict[str, Any]:
    entries = await _book(monitor).list(_store(monitor), monitor.results, _now(monitor))
    lease = Lease(monitor.broker.client, monitor.broker.keys.scheduler_lease, LEASE_SECONDS)
    return {"schedules": [view(entry) for entry in entries], "count": len(entries),
            "leader": await lease.holder(), "timestamp": monitor.now_iso()}


async def pause(monitor: Monitor, name: str) -> dict[str, Any]:
    await _book(monitor).pause(_store(monitor), name)
    return {"schedule": await _find(monitor, name), "message": f"Schedule {name} paused"}


async def resume(monitor: Monitor, name: str) -> dict[str, Any]:
    await _book(monitor).resume(_store(monitor), name, _now(monitor))
    return {"schedule": await _find(monitor, name), "message": f"Schedule {name} resumed"}


async def trigger(monitor: Monitor, name: str) -> dict[str, Any]:
    task_id = await _book(monitor).trigger(_store(monitor), name, _now(monitor))
    entry = await _find(monitor, name)
    return {"schedule": entry, "task_id": task_id, "task_name": entry["task"], "queue": entry["queue"],
            "status": "queued", "message": f"Schedule {name} triggered"}

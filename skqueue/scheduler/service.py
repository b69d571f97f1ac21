"""Operator commands on the schedule: list, pause, resume, trigger.

The async functions take open stores, so the monitoring API can call them on its own connections; the
CLI calls :func:`run_schedule_command`, which opens the connections from the app's settings.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from skqueue.app import App
from skqueue.broker.connections import open_connections, release_urls, resolve_urls
from skqueue.broker.lease import Lease
from skqueue.broker.results import ResultStore
from skqueue.broker.schedules import EntryState, ScheduleStore
from skqueue.errors import ConfigError
from skqueue.scheduler import publish
from skqueue.scheduler.beat import DEFAULT_LEASE_SECONDS, utcnow
from skqueue.scheduler.entries import Entry, schedule_of

ACTIONS = ("list", "pause", "resume", "trigger")


@dataclass(frozen=True, slots=True)
class EntryView:
    """An entry with its state. ``next_run`` is the stored one, or, before any scheduler has seen the entry
    (``scheduled`` false), the one it will get. ``last_result``: the Celery state of its latest task."""

    entry: Entry
    state: EntryState
    next_run: datetime
    scheduled: bool
    last_result: str | None = None


def find(entries: Sequence[Entry], name: str) -> Entry:
    """The entry called ``name``; :class:`ConfigError` if there is none."""
    for entry in entries:
        if entry.name == name:
            return entry
    known = ", ".join(entry.name for entry in entries) or "none"
    raise ConfigError(f"no schedule entry named {name!r} (entries: {known})")


async def list_entries(store: ScheduleStore, entries: Sequence[Entry], now: datetime,
                       results: ResultStore | None = None) -> list[EntryView]:
    """Every entry with its state and next fire time."""
    found = await store.states([entry.name for entry in entries])
    views: list[EntryView] = []
    for entry in entries:
        state = found[entry.name]
        scheduled = state.next_run is not None and state.schedule == entry.schedule.describe()
        next_run = state.next_run if scheduled and state.next_run else entry.schedule.next_after(now)
        result = None
        if results is not None and state.last_task_id:
            meta = await results.get(state.last_task_id)
            result = str((meta or {}).get("status") or "PENDING")
        views.append(EntryView(entry, state, next_run, scheduled, result))
    return views


async def pause(store: ScheduleStore, entries: Sequence[Entry], name: str) -> EntryState:
    """Stop sending ``name``'s firings (they are counted as skipped) until it is resumed."""
    find(entries, name)
    await store.advance(name, "", paused=True)
    return (await store.states([name]))[name]


async def resume(store: ScheduleStore, entries: Sequence[Entry], name: str, now: datetime) -> EntryState:
    """Send ``name``'s firings again, from its next fire time after ``now`` (no catch-up of the pause)."""
    entry = find(entries, name)
    await store.advance(name, "", paused=False, next_run=entry.schedule.next_after(now))
    return (await store.states([name]))[name]


async def trigger(store: ScheduleStore, app: App, entries: Sequence[Entry], name: str, *, now: datetime,
                  origin: str | None = None) -> str:
    """Send ``name``'s task now, outside its schedule (paused or not); returns the task id."""
    entry = find(entries, name)
    item = publish.firing(app, entry, now, now, origin or publish.client_origin())
    await store.trigger(item, now)
    return item.task_id


def _when(moment: datetime | None, entry: Entry) -> str:
    return moment.astimezone(entry.tz).strftime("%Y-%m-%d %H:%M:%S %Z") if moment else "never"


def format_view(view: EntryView, app: App) -> list[str]:
    """Three lines describing one entry, for ``skqueue schedule list``."""
    entry, state = view.entry, view.state
    queue = entry.options.queue or app.queue_for(entry.task)
    status = ", ".join(part for part in (state.last_status, view.last_result) if part) or "-"
    pending = "" if view.scheduled else " (not scheduled yet)"
    return [
        f"{entry.name}  {entry.task} -> {queue}  [{entry.schedule.describe()}]",
        f"    next: {_when(view.next_run, entry)}{pending}   last: {_when(state.last_run, entry)} ({status})",
        f"    runs: {state.run_count}  missed: {state.missed}  skipped: {state.skipped}  "
        f"paused: {'yes' if state.paused else 'no'}  catch-up: {entry.catch_up}  overlap: {entry.overlap}",
    ]


async def _command(app: App, entries: Sequence[Entry], action: str, name: str | None) -> list[str]:
    urls = resolve_urls(app.conf)
    try:
        async with open_connections(app.conf, urls, name="skqueue-schedule") as conns:
            store = ScheduleStore(conns.broker.client, conns.broker.keys)
            now = utcnow()
            if action == "list":
                views = await list_entries(store, entries, now, conns.results)
                lease = Lease(conns.broker.client, conns.broker.keys.scheduler_lease, DEFAULT_LEASE_SECONDS)
                lines = [line for view in views for line in format_view(view, app)]
                return [*lines, f"{len(views)} entr{'y' if len(views) == 1 else 'ies'}; "
                                f"leader: {await lease.holder() or 'none'}"]
            assert name is not None
            if action == "trigger":
                return [f"{name}: sent {find(entries, name).task}[{await trigger(store, app, entries, name, now=now)}]"]
            state = await (pause(store, entries, name) if action == "pause" else resume(store, entries, name, now))
            return [f"{name}: {'paused' if state.paused else 'resumed'}"]
    finally:
        release_urls(urls)


def run_schedule_command(app: App, action: str, name: str | None = None) -> tuple[int, list[str]]:
    """``skqueue schedule list|pause|resume|trigger``: (exit status, lines to print)."""
    if action not in ACTIONS:
        raise ConfigError(f"unknown schedule action {action!r}; use one of {', '.join(ACTIONS)}")
    if action != "list" and not name:
        raise ConfigError(f"schedule {action} needs an entry name")
    entries = schedule_of(app)
    if name is not None and action != "list":
        find(entries, name)
    return 0, asyncio.run(_command(app, entries, action, name))

"""Hands the monitoring API the app's schedule: the one module that imports both sides.

:mod:`skqueue.api` and :mod:`skqueue.monitor` never import :mod:`skqueue.scheduler`; the CLI builds a
:class:`~skqueue.monitor.schedules.ScheduleBook` here from the scheduler's own service functions and
passes it to ``create_app``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from skqueue.app import App
from skqueue.broker.results import ResultStore
from skqueue.broker.schedules import ScheduleStore
from skqueue.errors import ConfigError, NotFound
from skqueue.monitor.schedules import ScheduleBook, ScheduleView
from skqueue.scheduler import service
from skqueue.scheduler.entries import Entry, schedule_of


class ServiceSchedules:
    """:class:`ScheduleBook` over :mod:`skqueue.scheduler.service`."""

    def __init__(self, app: App, entries: Sequence[Entry]) -> None:
        self.app = app
        self.entries = list(entries)

    def _entry(self, name: str) -> Entry:
        try:
            return service.find(self.entries, name)
        except ConfigError:
            raise NotFound(f"no schedule entry named {name!r}") from None

    async def list(self, store: ScheduleStore, results: ResultStore | None, now: datetime) -> list[ScheduleView]:
        views = await service.list_entries(store, self.entries, now, results)
        return [self._view(item) for item in views]

    def _view(self, item: service.EntryView) -> ScheduleView:
        entry, state = item.entry, item.state
        return ScheduleView(
            name=entry.name, task=entry.task, queue=entry.options.queue or self.app.queue_for(entry.task),
            schedule=entry.schedule.describe(), timezone=str(entry.tz), next_run=item.next_run,
            scheduled=item.scheduled, last_run=state.last_run, last_status=state.last_status,
            last_task_id=state.last_task_id, last_result=item.last_result, run_count=state.run_count,
            missed=state.missed, skipped=state.skipped, paused=state.paused, catch_up=entry.catch_up,
            overlap=entry.overlap,
        )

    async def pause(self, store: ScheduleStore, name: str) -> None:
        self._entry(name)
        await service.pause(store, self.entries, name)

    async def resume(self, store: ScheduleStore, name: str, now: datetime) -> None:
        self._entry(name)
        await service.resume(store, self.entries, name, now)

    async def trigger(self, store: ScheduleStore, name: str, now: datetime) -> str:
        self._entry(name)
        return await service.trigger(store, self.app, self.entries, name, now=now, origin="skqueue-api")


def schedule_book(app: App) -> ScheduleBook:
    """The app's schedule (its ``beat_schedule``) for the API."""
    return ServiceSchedules(app, schedule_of(app))

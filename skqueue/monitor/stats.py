"""The figures the Prometheus endpoint exports, read from Redis at scrape time (never counted by it)."""

from __future__ import annotations

from dataclasses import dataclass

from skqueue.broker.inspect import Stats
from skqueue.monitor.base import Monitor
from skqueue.monitor.cluster import Backlog, backlogs, live_workers


@dataclass(frozen=True, slots=True)
class Snapshot:
    stats: Stats
    workers: int
    backlog: dict[str, Backlog]
    dead_letters: int


async def snapshot(monitor: Monitor) -> Snapshot:
    found = await live_workers(monitor)
    return Snapshot(await monitor.telemetry.stats(), len(found), await backlogs(monitor, found),
                    await monitor.dead_letters.count())

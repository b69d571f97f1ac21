"""performance_analysis: how the tasks behave, from the telemetry every worker records in Redis.

It reads the attempts of the last ``window`` seconds from the ``skqueue.task_events`` stream (runtimes,
states, retries), the all-time counters, the queue backlogs, the live workers and the dashboard cache's
hit ratio, adds recommendations, and stores the report as a row of ``dashboard_performancereport`` (the
JSON document in column ``report``).
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from skqueue.broker import history
from skqueue.broker.telemetry import TaskRecord
from skqueue.broker.workers import WorkerRegistry
from skqueue.dashboard.runtime import Runtime

WINDOW = 86_400.0
SLOW_P95 = 60.0
ERROR_RATE = 0.05
RETRY_RATE = 0.2
BACKLOG = 100
CACHE_RATIO = 0.7


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..1) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


@dataclass
class TaskFigures:
    runtimes: list[float] = field(default_factory=list)
    states: Counter[str] = field(default_factory=Counter)
    exceptions: Counter[str] = field(default_factory=Counter)

    def add(self, record: TaskRecord) -> None:
        self.states[record.state] += 1
        if record.started:
            self.runtimes.append(record.runtime)
        if record.exception and record.state != "RETRY":
            self.exceptions[record.exception] += 1

    def summary(self) -> dict[str, Any]:
        finished = self.states["SUCCESS"] + self.states["FAILURE"]
        p50, p95 = percentile(self.runtimes, 0.5), percentile(self.runtimes, 0.95)
        return {"attempts": sum(self.states.values()), "succeeded": self.states["SUCCESS"],
                "failed": self.states["FAILURE"], "retries": self.states["RETRY"],
                "revoked": self.states["REVOKED"],
                "error_rate": round(self.states["FAILURE"] / finished, 4) if finished else None,
                "p50_seconds": None if p50 is None else round(p50, 6),
                "p95_seconds": None if p95 is None else round(p95, 6),
                "max_seconds": round(max(self.runtimes), 6) if self.runtimes else None,
                "exceptions": dict(self.exceptions.most_common(5))}


def per_task(records: Sequence[TaskRecord]) -> dict[str, dict[str, Any]]:
    figures: defaultdict[str, TaskFigures] = defaultdict(TaskFigures)
    for record in records:
        figures[record.name].add(record)
    return {name: figures[name].summary() for name in sorted(figures)}


def recommend(tasks: dict[str, dict[str, Any]], backlogs: dict[str, int], cache_ratio: float | None,
              cache_reads: int, workers: int) -> list[str]:
    advice: list[str] = []
    if workers == 0:
        advice.append("No worker is beating a heartbeat: start `skqueue worker` (every queue is consumed by "
                      "default).")
    if not tasks:
        advice.append("No task finished in the window: check that workers consume every routed queue.")
    for name, t in tasks.items():
        finished = t["succeeded"] + t["failed"]
        if t["error_rate"] is not None and finished >= 5 and t["error_rate"] > ERROR_RATE:
            top = next(iter(t["exceptions"]), "an error")
            advice.append(f"{name} fails {t['error_rate']:.0%} of the time (mostly {top}): look at its tracebacks.")
        if t["p95_seconds"] is not None and t["p95_seconds"] > SLOW_P95:
            advice.append(f"{name} is slow (p95 {t['p95_seconds']:.1f} s): give it a time limit or split the work.")
        if t["attempts"] >= 5 and t["retries"] / t["attempts"] > RETRY_RATE:
            advice.append(f"{name} retries often ({t['retries']} of {t['attempts']} attempts): check what it "
                          "depends on (database, SMTP).")
    for queue, size in backlogs.items():
        if size > BACKLOG:
            advice.append(f"Queue {queue} has {size} messages waiting: add workers or concurrency for it.")
    if cache_ratio is not None and cache_reads >= 20 and cache_ratio < CACHE_RATIO:
        advice.append(f"Dashboard cache hit ratio is {cache_ratio:.0%}: warm the cache more often or raise "
                      "dashboard_cache_ttl.")
    return advice


def status_of(tasks: dict[str, dict[str, Any]], workers: int, advice: list[str]) -> str:
    if workers == 0 or any((t["error_rate"] or 0) > 0.25 and t["failed"] >= 5 for t in tasks.values()):
        return "critical"
    return "warning" if advice else "healthy"


async def analyse(rt: Runtime, queues: Sequence[str], window: float = WINDOW) -> dict[str, Any]:
    """The report (also stored): per-task runtimes and rates, backlogs, cache ratio, recommendations."""
    now = time.time()
    records = [r async for r in history.records_since(rt.redis, rt.keys, now - window)]
    counters = await history.counters(rt.redis, rt.keys)
    backlogs = await rt.broker.queue_sizes(queues)
    cache = await rt.cache.stats()
    workers = len(await WorkerRegistry(rt.redis, rt.keys).alive())
    tasks = per_task(records)
    advice = recommend(tasks, backlogs, cache.ratio, cache.hits + cache.misses, workers)
    totals: Counter[str] = Counter()
    for (_, _, state), count in counters.counts.items():
        totals[state] += count
    report_id = uuid.uuid4()
    report = {
        "report_id": str(report_id), "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "window_seconds": window, "status": status_of(tasks, workers, advice), "workers": workers,
        "attempts_in_window": len(records), "tasks": tasks, "all_time": dict(sorted(totals.items())),
        "queue_backlog": backlogs,
        "cache": {"hits": cache.hits, "misses": cache.misses,
                  "hit_ratio": None if cache.ratio is None else round(cache.ratio, 4)},
        "recommendations": advice,
    }
    store = await rt.store()
    await store.insert("reports", {"id": report_id, "created_at": datetime.now(UTC),
                                   "status": report["status"], "report": json.dumps(report)})
    return report

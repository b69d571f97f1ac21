"""The cluster as a whole: its health verdict, the live workers and the backlog of every queue.

**The status rule**, applied in this order:

1. no live worker (no heartbeat within ``worker_lost_timeout``) -> ``critical``;
2. the success rate is below 80 % -> ``warning``. The rate is SUCCESS / (SUCCESS + FAILURE) over the
   attempts that finished in the last hour (at most the newest 5,000 of them); an hour with no finished
   attempt has no rate (``null``), which is not a warning;
3. every worker slot is busy and messages are waiting (saturated) -> ``warning``;
4. otherwise ``healthy``.

**Backlog states** per queue: ``ready`` is what waits in the queue's lists (every priority band, as
Flower counts); ``scheduled`` and ``in_flight`` are deliveries workers hold (kombu's ``unacked``): held
for their ETA, or prefetched / running. skqueue workers report both per queue in their heartbeats.
Deliveries held by other consumers (Celery workers) cannot be attributed to a queue without reading
every held message, so they are counted as ``in_flight`` of the pseudo-queue ``unknown``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from skqueue.broker.workers import WorkerRecord
from skqueue.monitor.base import Monitor, iso
from skqueue.protocol import states

SUCCESS_WINDOW = 3600.0
SUCCESS_SAMPLE = 5000
MIN_SUCCESS_RATE = 80.0
UNKNOWN_QUEUE = "unknown"
RULE = ("critical: no live worker; warning: success rate below 80% over the last hour (if any task finished "
        "in it), or every worker slot busy with messages waiting; otherwise healthy")


@dataclass(slots=True)
class Backlog:
    ready: int = 0
    scheduled: int = 0
    in_flight: int = 0

    @property
    def total(self) -> int:
        return self.ready + self.scheduled + self.in_flight

    def as_dict(self) -> dict[str, int]:
        return {"ready": self.ready, "scheduled": self.scheduled, "in_flight": self.in_flight, "total": self.total}


@dataclass(frozen=True, slots=True)
class SuccessRate:
    succeeded: int
    failed: int
    sample_full: bool  # True when the sample cap was hit (the rate covers less than the window)

    @property
    def rate(self) -> float | None:
        finished = self.succeeded + self.failed
        return round(100.0 * self.succeeded / finished, 2) if finished else None


def verdict(worker_count: int, rate: float | None, saturated: bool) -> tuple[str, str]:
    """The status rule (see the module docstring): ``(status, message)``."""
    if worker_count == 0:
        return "critical", "No active workers"
    if rate is not None and rate < MIN_SUCCESS_RATE:
        return "warning", "Low task success rate"
    if saturated:
        return "warning", "Every worker slot is busy and messages are waiting"
    return "healthy", "System is operating normally"


async def live_workers(monitor: Monitor) -> list[WorkerRecord]:
    """One record per node (the newest, if a restarted node's old record has not expired yet)."""
    newest: dict[str, WorkerRecord] = {}
    for record in await monitor.workers.alive():
        seen = newest.get(record.node)
        if seen is None or record.beat_at > seen.beat_at:
            newest[record.node] = record
    return sorted(newest.values(), key=lambda r: r.node)


async def success_rate(monitor: Monitor) -> SuccessRate:
    entries = await monitor.telemetry.since(monitor.clock() - SUCCESS_WINDOW, SUCCESS_SAMPLE)
    succeeded = sum(1 for e in entries if e.record.state == states.SUCCESS)
    failed = sum(1 for e in entries if e.record.state == states.FAILURE)
    return SuccessRate(succeeded, failed, len(entries) >= SUCCESS_SAMPLE)


async def status(monitor: Monitor) -> dict[str, Any]:
    workers = await live_workers(monitor)
    active = sum(len(w.active) for w in workers)
    rate = await success_rate(monitor)
    backlog = await backlogs(monitor, workers)
    waiting = sum(b.ready for b in backlog.values())
    saturated = bool(workers) and active >= sum(w.concurrency for w in workers) and waiting > 0
    state, message = verdict(len(workers), rate.rate, saturated)
    return {
        "status": state, "message": message, "rule": RULE, "worker_count": len(workers), "active_tasks": active,
        "success_rate": rate.rate,
        "success_rate_window": {"seconds": SUCCESS_WINDOW, "succeeded": rate.succeeded, "failed": rate.failed,
                                "sample_limited": rate.sample_full},
        "ready_tasks": waiting, "timestamp": monitor.now_iso(),
    }


async def workers(monitor: Monitor) -> dict[str, Any]:
    found = await live_workers(monitor)
    now = monitor.clock()
    details = {w.node: {
        "active": list(w.active), "active_count": len(w.active), "queues": list(w.queues),
        "concurrency": w.concurrency, "processed": w.processed, "host": w.host, "pid": w.pid,
        "started_at": iso(w.started_at), "last_heartbeat": iso(w.beat_at), "supervisor_pid": w.supervisor_pid,
    } for w in found}
    stats = {w.node: {
        "total": dict(w.total), "pid": w.pid, "uptime": round(max(now - w.started_at, 0.0)),
        "pool": {"implementation": "skqueue", "max-concurrency": w.concurrency, "processes": [w.pid]},
    } for w in found}
    return {"workers": {"count": len(found), "details": details}, "stats": stats,
            "active_tasks": sum(len(w.active) for w in found), "timestamp": monitor.now_iso()}


def _queue_names(monitor: Monitor, found: list[WorkerRecord]) -> list[str]:
    names = list(monitor.app.known_queues())
    for record in found:
        for queue in (*record.queues, *record.scheduled, *record.reserved):
            if queue not in names:
                names.append(queue)
    return names


async def backlogs(monitor: Monitor, found: list[WorkerRecord]) -> dict[str, Backlog]:
    """Every known queue's backlog (see the module docstring), plus ``unknown`` when others hold some."""
    names = _queue_names(monitor, found)
    ready = await monitor.broker.queue_sizes(names)
    result = {name: Backlog(ready=ready.get(name, 0)) for name in names}
    for record in found:
        for queue, count in record.scheduled.items():
            result[queue].scheduled += count
        for queue, count in record.reserved.items():
            result[queue].in_flight += count
    # All of a node's processes, not only the newest record per node, own deliveries.
    ids = [record.worker_id for record in await monitor.workers.alive()]
    held, owned = await monitor.telemetry.held(ids)
    if held > owned:
        result[UNKNOWN_QUEUE] = Backlog(in_flight=held - owned)
    return result


async def queues(monitor: Monitor) -> dict[str, Any]:
    found = await live_workers(monitor)
    backlog = await backlogs(monitor, found)
    listing = {}
    for name, counts in backlog.items():
        consumers = [w.node for w in found if name in w.queues]
        listing[name] = {"name": name, "workers": consumers, "count": len(consumers), "backlog": counts.as_dict()}
    return {"queues": listing, "total_queues": len(listing), "timestamp": monitor.now_iso()}

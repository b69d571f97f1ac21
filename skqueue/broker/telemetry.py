"""Cluster-wide task telemetry in Redis, written in the same transaction as the acks of a batch.

* ``skqueue.task_events``: a stream with one entry per finished attempt, trimmed to about
  ``STREAM_LENGTH`` entries;
* ``skqueue.stats.counts``: ``queue|task|state`` -> count;
* ``skqueue.stats.durations``: cumulative histogram ``queue|task|<le>`` -> count, and ``queue|task|sum``;
* ``skqueue.stats.errors``: ``queue|task|exception type`` -> count.

Counters are aggregated per batch before they are sent, so a batch of a thousand no-op tasks adds a
handful of ``HINCRBY`` commands, not a thousand.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio.client import Pipeline

from skqueue.broker.keys import BrokerKeys

STREAM_LENGTH = 100_000
# Histogram bucket upper bounds in seconds, 5 ms to 1 h (the monitoring API exports these).
BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                              120.0, 300.0, 600.0, 1800.0, 3600.0)


@dataclass(frozen=True, slots=True)
class TaskRecord:
    """One finished attempt of one task."""

    task_id: str
    name: str
    queue: str
    state: str
    runtime: float
    received: float
    started: float
    completed: float
    worker: str
    retries: int
    exception: str = ""

    def fields(self) -> dict[Any, Any]:  # redis-py wants its own (invariant) field types
        return {
            "task_id": self.task_id, "name": self.name, "queue": self.queue, "state": self.state,
            "runtime": f"{self.runtime:.6f}", "received": f"{self.received:.6f}",
            "started": f"{self.started:.6f}", "completed": f"{self.completed:.6f}", "worker": self.worker,
            "retries": str(self.retries), "exception": self.exception,
        }


def bucket_label(bound: float) -> str:
    return f"{bound:g}"


def write(pipe: Pipeline, keys: BrokerKeys, records: Sequence[TaskRecord]) -> None:
    """Queue the telemetry of ``records`` on ``pipe`` (the ack transaction of the batch)."""
    counts: Counter[str] = Counter()
    durations: Counter[str] = Counter()
    sums: dict[str, float] = {}
    errors: Counter[str] = Counter()
    for record in records:
        pipe.xadd(keys.task_events, record.fields(), maxlen=STREAM_LENGTH, approximate=True)
        base = f"{record.queue}|{record.name}"
        counts[f"{base}|{record.state}"] += 1
        if record.exception:
            errors[f"{base}|{record.exception}"] += 1
        if record.started:
            sums[f"{base}|sum"] = sums.get(f"{base}|sum", 0.0) + record.runtime
            durations[f"{base}|+Inf"] += 1
            for bound in BUCKETS:
                if record.runtime <= bound:
                    durations[f"{base}|{bucket_label(bound)}"] += 1
    for field, amount in counts.items():
        pipe.hincrby(keys.task_counts, field, amount)
    for field, amount in durations.items():
        pipe.hincrby(keys.task_durations, field, amount)
    for field, seconds in sums.items():
        pipe.hincrbyfloat(keys.task_durations, field, seconds)
    for field, amount in errors.items():
        pipe.hincrby(keys.task_errors, field, amount)

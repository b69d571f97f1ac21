"""Cluster-wide task telemetry in Redis, written in the same transaction as the acks of a batch.

* ``skqueue.task_events``: a stream with one entry per finished attempt (JSON in field ``r``), trimmed
  to about ``STREAM_LENGTH`` entries;
* ``skqueue.stats.counts``: ``queue|task|state`` -> count;
* ``skqueue.stats.durations``: histogram ``queue|task|<le>`` -> attempts whose runtime fell in that bucket
  (above the previous bound, at most ``le``; ``+Inf`` past the last), and ``queue|task|sum`` -> seconds.
  Readers accumulate the buckets for Prometheus' cumulative ``le`` form;
* ``skqueue.stats.errors``: ``queue|task|exception type`` -> count.

Counters are aggregated per batch before they are sent, so a batch of a thousand no-op tasks adds a
handful of ``HINCRBY`` commands, not a thousand.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Sequence

import msgspec
from redis.asyncio.client import Pipeline

from skqueue.broker import scripts
from skqueue.broker.keys import BrokerKeys

STREAM_LENGTH = 100_000
# Histogram bucket upper bounds in seconds, 5 ms to 1 h (the monitoring API exports these).
BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                              120.0, 300.0, 600.0, 1800.0, 3600.0)
BUCKET_LABELS: tuple[str, ...] = tuple(f"{bound:g}" for bound in BUCKETS)


class TaskRecord(msgspec.Struct, frozen=True):
    """One finished attempt of one task (stored as JSON in the stream's field ``r``)."""

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


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(TaskRecord)


def decode_record(raw: bytes) -> TaskRecord:
    return _decoder.decode(raw)


def bucket_of(runtime: float) -> str:
    """The label of the smallest bucket holding ``runtime`` (``+Inf`` past the last bound)."""
    index = bisect.bisect_left(BUCKETS, runtime)
    return BUCKET_LABELS[index] if index < len(BUCKETS) else "+Inf"


def write(pipe: Pipeline, keys: BrokerKeys, records: Sequence[TaskRecord]) -> None:
    """Queue the telemetry of ``records`` on ``pipe`` (the ack transaction of the batch)."""
    # EVAL, not EVALSHA: inside the ack transaction a NOSCRIPT error could not be retried cleanly.
    pipe.eval(scripts.source("telemetry"), 1, keys.task_events, STREAM_LENGTH,
              *[_encoder.encode(record) for record in records])
    counts: Counter[str] = Counter()
    buckets: Counter[str] = Counter()
    sums: dict[str, float] = {}
    errors: Counter[str] = Counter()
    for record in records:
        base = f"{record.queue}|{record.name}"
        counts[f"{base}|{record.state}"] += 1
        if record.exception:
            errors[f"{base}|{record.exception}"] += 1
        if record.started:
            buckets[f"{base}|{bucket_of(record.runtime)}"] += 1
            sums[base] = sums.get(base, 0.0) + record.runtime
    for field, amount in counts.items():
        pipe.hincrby(keys.task_counts, field, amount)
    for field, amount in buckets.items():
        pipe.hincrby(keys.task_durations, field, amount)
    for base, seconds in sums.items():
        pipe.hincrbyfloat(keys.task_durations, f"{base}|sum", seconds)
    for field, amount in errors.items():
        pipe.hincrby(keys.task_errors, field, amount)

"""Read-only queries over the telemetry workers write (see :mod:`skqueue.broker.telemetry`), and the
probes the monitoring API's health check makes.

Every read is bounded: the attempt stream is only ever read a page at a time with ``XREVRANGE ...
COUNT``, never whole.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgspec
from redis.asyncio import Redis

from skqueue.broker.keys import BrokerKeys
from skqueue.broker.results import ResultStore
from skqueue.broker.telemetry import BUCKET_LABELS, TaskRecord, decode_record


@dataclass(frozen=True, slots=True)
class Entry:
    """One stream entry: its id (``<ms>-<seq>``, usable as a paging cursor) and the attempt."""

    id: str
    record: TaskRecord


@dataclass(frozen=True, slots=True)
class Histogram:
    """One ``queue|task`` runtime histogram: cumulative counts per bound (``+Inf`` last), and the sum."""

    queue: str
    task: str
    buckets: list[tuple[str, int]]
    total: float


@dataclass(frozen=True, slots=True)
class Stats:
    """The cluster-wide counters, keyed by their label tuples."""

    counts: dict[tuple[str, str, str], int]  # (queue, task, state)
    errors: dict[tuple[str, str, str], int]  # (queue, task, exception type)
    histograms: list[Histogram]


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _split(field: str) -> tuple[str, str, str]:
    """``queue|task|last`` (a task name may hold ``|``; the last part never does)."""
    queue, _, rest = field.partition("|")
    task, _, last = rest.rpartition("|")
    return queue, task, last


class TelemetryReader:
    """Pages of the attempt stream and the counters, for one broker database."""

    def __init__(self, client: Redis, keys: BrokerKeys) -> None:
        self.client = client
        self.keys = keys

    async def page(self, count: int, before: str | None = None) -> list[Entry]:
        """Up to ``count`` entries, newest first, strictly older than the entry id ``before``."""
        top = f"({before}" if before else "+"
        found = await self.client.xrevrange(self.keys.task_events, max=top, min="-", count=count)
        return list(self._decode(found))

    async def since(self, start: float, count: int) -> list[Entry]:
        """Up to ``count`` entries written at or after ``start`` (epoch seconds), newest first."""
        found = await self.client.xrevrange(self.keys.task_events, max="+", min=str(int(start * 1000)),
                                            count=count)
        return list(self._decode(found))

    @staticmethod
    def _decode(found: Any) -> Iterable[Entry]:
        for entry_id, fields in found or ():
            raw = (fields or {}).get(b"r") or (fields or {}).get("r")
            if raw is None:
                continue
            try:
                record = decode_record(raw if isinstance(raw, bytes) else str(raw).encode())
            except msgspec.DecodeError:
                continue  # written by a newer or older skqueue: skip rather than fail the page
            yield Entry(_text(entry_id), record)

    async def stats(self) -> Stats:
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.hgetall(self.keys.task_counts)
            pipe.hgetall(self.keys.task_errors)
            pipe.hgetall(self.keys.task_durations)
            counts, errors, durations = await pipe.execute()
        return Stats(_int_hash(counts), _int_hash(errors), _histograms(durations))

    async def held(self, worker_ids: Iterable[str]) -> tuple[int, int]:
        """Deliveries held by any worker, skqueue's or Celery's (kombu's ``unacked`` hash), and how many of
        them the given skqueue worker processes own; read in one transaction so the two agree."""
        ids = list(worker_ids)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hlen(self.keys.unacked)
            for worker_id in ids:
                pipe.scard(self.keys.owned(worker_id))
            total, *owned = await pipe.execute()
        return int(total), sum(int(n) for n in owned)


def _int_hash(raw: Any) -> dict[tuple[str, str, str], int]:
    return {_split(_text(k)): int(_text(v)) for k, v in raw.items()}


def _histograms(raw: Any) -> list[Histogram]:
    """The stored per-bucket counts accumulated into Prometheus' cumulative ``le`` form."""
    grouped: dict[tuple[str, str], dict[str, float]] = {}
    for key, value in raw.items():
        queue, task, label = _split(_text(key))
        grouped.setdefault((queue, task), {})[label] = float(_text(value))
    histograms = []
    for (queue, task), fields in sorted(grouped.items()):
        running = 0
        buckets = []
        for label in (*BUCKET_LABELS, "+Inf"):
            running += int(fields.get(label, 0))
            buckets.append((label, running))
        histograms.append(Histogram(queue, task, buckets, fields.get("sum", 0.0)))
    return histograms


async def ping(client: Redis) -> float:
    """Seconds one PING round trip took."""
    started = time.perf_counter()
    await client.ping()
    return time.perf_counter() - started


async def probe_results(store: ResultStore) -> float:
    """SET, GET and DEL a throw-away key on the result backend; seconds taken. Raises if the value read
    back differs."""
    key = store.keys.probe(uuid.uuid4().hex)
    token = uuid.uuid4().hex.encode()
    started = time.perf_counter()
    try:
        await store.client.set(key, token, ex=60)
        if await store.client.get(key) != token:
            raise RuntimeError("the result backend returned a different value than the one written")
    finally:
        await store.client.delete(key)
    return time.perf_counter() - started

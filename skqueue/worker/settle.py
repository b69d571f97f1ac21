"""Batching the Redis effects of finished work: whatever finished while the previous flush was in flight
goes out in the next one, so a busy worker makes a few round trips per batch instead of several per task.

Order inside a flush is the at-least-once contract, and Celery's order:

1. publishes (retry messages, callbacks, the next chain step, errbacks): a child exists before anyone can
   see its parent finished;
2. result writes, then chord bookkeeping (which may publish a chord body);
3. acks, with the telemetry of the batch in the same transaction.

A flush that fails (Redis gone) is retried with back-off from the stage that failed; nothing is dropped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio.client import Pipeline
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from skqueue.broker.pubsub import raise_if_cancelled
from skqueue.broker.results import MetaWrite, ResultStore
from skqueue.broker.transport import Publish, RedisBroker

log = logging.getLogger("skqueue.worker")

RETRYABLE = (RedisConnectionError, RedisTimeoutError, OSError)
# Every failure a Redis call can have (READONLY after a failover, OOM under maxmemory, ...): loops that
# must keep going log and back off on these.
REDIS_ERRORS = (RedisError, OSError)

# Chord bookkeeping hook: given the chord parts of a batch, record them and return the messages (chord
# bodies) that became due. Installed by the canvas support.
ChordHook = Callable[[Sequence[Any]], Awaitable[list[Publish]]]
# Called once what the chord hook returned is published (the canvas then releases its dispatch claims).
ChordsPublished = Callable[[], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Guarded:
    """Follow-ups of a redelivered task (callbacks, next chain step, chords to start): sent only if the
    task has not already succeeded, since an earlier copy that succeeded sent them already."""

    task_id: str
    publishes: list[Publish]
    chord_parts: list[Any]


@dataclass(slots=True)
class Settlement:
    """Everything one finished (or refused) delivery needs written to Redis."""

    publishes: list[Publish] = field(default_factory=list)
    writes: list[MetaWrite] = field(default_factory=list)
    chord_parts: list[Any] = field(default_factory=list)
    acks: list[str] = field(default_factory=list)
    telemetry: list[Any] = field(default_factory=list)
    guarded: list[Guarded] = field(default_factory=list)

    def extend(self, other: Settlement) -> None:
        self.guarded.extend(other.guarded)
        self.publishes.extend(other.publishes)
        self.writes.extend(other.writes)
        self.chord_parts.extend(other.chord_parts)
        self.acks.extend(other.acks)
        self.telemetry.extend(other.telemetry)

    def __bool__(self) -> bool:
        return bool(self.publishes or self.writes or self.chord_parts or self.acks or self.telemetry
                    or self.guarded)


class Settler:
    def __init__(self, broker: RedisBroker, results: ResultStore | None,
                 on_acked: Callable[[Sequence[str]], None], *,
                 telemetry: Callable[[Pipeline, Sequence[Any]], None] | None = None,
                 chords: ChordHook | None = None, chords_published: ChordsPublished | None = None,
                 on_broken: Callable[[Sequence[str]], None] | None = None) -> None:
        self.broker = broker
        self.results = results
        self.on_acked = on_acked
        self.telemetry = telemetry
        self.chords = chords
        self.chords_published = chords_published
        self.on_broken = on_broken
        self._pending = Settlement()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    def add(self, settlement: Settlement) -> None:
        if not settlement:
            return
        if self.results is None:
            settlement.writes.clear()
        self._pending.extend(settlement)
        self._idle.clear()
        self._wake.set()

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch, self._pending = self._pending, Settlement()
                try:
                    await self._flush(batch)
                except Exception:
                    # Not an outage (those are retried in _flush): Redis refused a write (OOM, READONLY)
                    # or a bug. Settling goes on for everything else, and this batch's deliveries go
                    # back to their queues to run again: at-least-once, never stranded.
                    log.exception("Settling a batch of %d ack(s) failed; requeueing them", len(batch.acks))
                    if self.on_broken is not None:
                        self.on_broken(batch.acks)
                raise_if_cancelled()
            self._idle.set()

    async def drain(self) -> None:
        """Wait until everything added so far is written and acked."""
        await self._idle.wait()

    async def _flush(self, batch: Settlement) -> None:
        delay = 0.05
        while True:
            try:
                await self._flush_once(batch)
                return
            except RETRYABLE as exc:
                log.warning("Redis unavailable while settling (%d publish, %d result, %d ack): %s; retrying in "
                            "%.1fs", len(batch.publishes), len(batch.writes), len(batch.acks), exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _flush_once(self, batch: Settlement) -> None:
        # Each stage clears what it has done, so a retry resumes where the failure happened.
        await self._open_guards(batch)
        await self._publish(batch)
        if batch.writes and self.results is not None:
            await self.results.store(batch.writes)
            batch.writes.clear()
        if batch.chord_parts and self.chords is not None:
            batch.publishes.extend(await self.chords(batch.chord_parts))
            batch.chord_parts.clear()
            await self._publish(batch)
        if self.chords_published is not None:
            await self.chords_published()
        if batch.acks or batch.telemetry:
            extra = self._telemetry_writer(batch.telemetry)
            await self.broker.ack(batch.acks, extra=extra)
            acked, batch.acks, batch.telemetry = batch.acks, [], []
            self.on_acked(acked)

    def _telemetry_writer(self, records: list[Any]) -> Callable[[Pipeline], None] | None:
        write = self.telemetry
        if write is None or not records:
            return None
        return lambda pipe: write(pipe, records)

    async def _open_guards(self, batch: Settlement) -> None:
        if not batch.guarded:
            return
        ids = [guard.task_id for guard in batch.guarded]
        done = await self.results.succeeded(ids) if self.results is not None else set()
        for guard in batch.guarded:
            if guard.task_id in done:
                log.info("Task %s had already succeeded: its callbacks are not sent again", guard.task_id)
                continue
            batch.publishes.extend(guard.publishes)
            batch.chord_parts.extend(guard.chord_parts)
        batch.guarded.clear()

    async def _publish(self, batch: Settlement) -> None:
        if batch.publishes:
            await self.broker.publish_many(batch.publishes)
            batch.publishes.clear()

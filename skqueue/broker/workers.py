"""Live skqueue worker processes, and returning the deliveries of dead ones.

Each worker process beats a JSON record (``skqueue.worker.<id>``, with a TTL) and its score in the
``skqueue.workers`` zset. Its reserved deliveries are in ``skqueue.owned.<id>``. A process that stops
beating is dead: whoever notices first (its supervisor at once, or any worker after the TTL) takes the
``skqueue.reaping.<id>`` lock and returns its deliveries to their queues.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import msgspec
from redis.asyncio import Redis

from skqueue.broker.keys import BrokerKeys
from skqueue.broker.transport import Held, RedisBroker

CRASH_COUNT_TTL = 86_400


class WorkerRecord(msgspec.Struct):
    """What a worker process publishes about itself (the monitoring API reads it)."""

    worker_id: str
    node: str
    host: str
    pid: int
    queues: list[str]
    concurrency: int
    active: list[str]
    processed: int
    started_at: float
    beat_at: float
    freq: float
    supervisor_pid: int | None = None
    # Per queue: deliveries held for their ETA, and the others held (prefetched, running, being acked).
    scheduled: dict[str, int] = {}
    reserved: dict[str, int] = {}
    total: dict[str, int] = {}  # task name -> runs (Celery's ``stats`` "total")


_record_decoder = msgspec.json.Decoder(WorkerRecord)


class WorkerRegistry:
    def __init__(self, client: Redis, keys: BrokerKeys, ttl: float = 30.0) -> None:
        self.client = client
        self.keys = keys
        self.ttl = ttl

    async def beat(self, record: WorkerRecord) -> None:
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.set(self.keys.worker(record.worker_id), msgspec.json.encode(record), px=int(self.ttl * 1000))
            pipe.zadd(self.keys.workers, {record.worker_id: record.beat_at})
            await pipe.execute()

    async def leave(self, worker_id: str) -> None:
        """A clean exit: the process holds nothing any more."""
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.delete(self.keys.worker(worker_id), self.keys.owned(worker_id))
            pipe.zrem(self.keys.workers, worker_id)
            await pipe.execute()

    async def alive(self) -> list[WorkerRecord]:
        ids = [_text(i) for i in await self.client.zrange(self.keys.workers, 0, -1)]
        if not ids:
            return []
        values = await self.client.mget([self.keys.worker(i) for i in ids])
        return [_record_decoder.decode(v) for v in values if v is not None]

    async def dead(self, now: float | None = None) -> list[str]:
        """Worker ids that stopped beating more than the TTL ago."""
        stamp = time.time() if now is None else now
        ids = [_text(i) for i in await self.client.zrangebyscore(self.keys.workers, "-inf", stamp - self.ttl)]
        if not ids:
            return []
        present = await self.client.mget([self.keys.worker(i) for i in ids])
        return [i for i, value in zip(ids, present, strict=True) if value is None]

    async def claim(self, worker_id: str, seconds: float = 60.0) -> bool:
        return bool(await self.client.set(self.keys.reaping(worker_id), b"1", nx=True, px=int(seconds * 1000)))

    async def owned(self, worker_id: str) -> list[str]:
        return sorted(_text(t) for t in await self.client.smembers(self.keys.owned(worker_id)))

    async def forget(self, worker_id: str) -> None:
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.delete(self.keys.worker(worker_id), self.keys.owned(worker_id), self.keys.reaping(worker_id))
            pipe.zrem(self.keys.workers, worker_id)
            await pipe.execute()

    async def count_crash(self, tags: Sequence[str]) -> dict[str, int]:
        """Add one to each tag's count of deliveries that died with their worker; return the counts."""
        if not tags:
            return {}
        async with self.client.pipeline(transaction=True) as pipe:
            for tag in tags:
                pipe.hincrby(self.keys.crash_counts, tag, 1)
            pipe.expire(self.keys.crash_counts, CRASH_COUNT_TTL)
            counts = await pipe.execute()
        return {tag: int(count) for tag, count in zip(tags, counts[:-1], strict=True)}


async def return_deliveries(broker: RedisBroker, registry: WorkerRegistry, worker_id: str,
                            running: set[str]) -> tuple[int, list[Held]]:
    """Put a dead worker's deliveries that were not running back at the head of their queues. Returns
    how many moved, and the running ones (their fate depends on the task: the caller decides)."""
    tags = await registry.owned(worker_id)
    held = await broker.load_held(tags)
    waiting = [h for h in held if h.tag not in running]
    moved = await broker.requeue(waiting, head=True, owner=worker_id) if waiting else 0
    return moved, [h for h in held if h.tag in running]


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)

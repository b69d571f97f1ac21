"""Celery's Redis result backend: ``celery-task-meta-<id>`` written with SET EX + PUBLISH."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from skqueue.broker import scripts
from skqueue.broker.keys import ResultKeys
from skqueue.protocol import states
from skqueue.protocol.results import decode_meta, status_of


@dataclass(frozen=True, slots=True)
class MetaWrite:
    task_id: str
    meta: bytes
    ttl: float | None


class ResultStore:
    """Writes and reads task results exactly as Celery's ``RedisBackend`` does."""

    def __init__(self, client: Redis, keys: ResultKeys) -> None:
        self.client = client
        self.keys = keys

    async def store(self, writes: Sequence[MetaWrite]) -> int:
        """Write many metas in one atomic script call. A stored SUCCESS is never overwritten, and every
        write is published on the key's channel so clients blocked in ``.get()`` wake up."""
        return await self._store(writes, guard="")

    async def store_if_pending(self, writes: Sequence[MetaWrite], allowed: Sequence[str]) -> int:
        """Write each meta only if the task's stored state is missing or one of ``allowed``."""
        return await self._store(writes, guard=",".join(allowed))

    async def _store(self, writes: Sequence[MetaWrite], guard: str) -> int:
        if not writes:
            return 0
        keys = [self.keys.task(w.task_id) for w in writes]
        args: list[Any] = [guard]
        for w in writes:
            args.extend([int(w.ttl) if w.ttl and w.ttl > 0 else 0, w.meta])
        return int(await scripts.call(self.client, "store_results", keys, args))

    async def succeeded(self, task_ids: Sequence[str]) -> set[str]:
        """Those of ``task_ids`` whose stored state is SUCCESS."""
        if not task_ids:
            return set()
        values = await self.client.mget([self.keys.task(task_id) for task_id in task_ids])
        raws = [raw if raw is None or isinstance(raw, bytes) else str(raw).encode() for raw in values]
        return {task_id for task_id, raw in zip(task_ids, raws, strict=True)
                if raw is not None and status_of(raw) == states.SUCCESS}

    async def get(self, task_id: str) -> dict[str, Any] | None:
        return decode_meta(await self.client.get(self.keys.task(task_id)))

    async def get_raw(self, task_id: str) -> bytes | None:
        value = await self.client.get(self.keys.task(task_id))
        if value is None:
            return None
        return value if isinstance(value, bytes) else str(value).encode()

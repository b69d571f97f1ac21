"""Revoked task ids kept in Redis, so a revoke survives worker restarts and reaches workers that were
down when the (fire-and-forget) broadcast went out."""

from __future__ import annotations

import time
from collections.abc import Iterable

from redis.asyncio import Redis

from skqueue.broker.keys import BrokerKeys

# Celery's limits for its in-memory revoked set (celery/worker/state.py).
REVOKES_MAX = 50_000
REVOKE_EXPIRES = 10_800.0


class RevokedStore:
    def __init__(self, client: Redis, keys: BrokerKeys, *, expires: float = REVOKE_EXPIRES,
                 limit: int = REVOKES_MAX) -> None:
        self.client = client
        self.keys = keys
        self.expires = expires
        self.limit = limit

    async def add(self, task_ids: Iterable[str], now: float | None = None) -> None:
        ids = list(task_ids)
        if not ids:
            return
        stamp = time.time() if now is None else now
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.zadd(self.keys.revoked, dict.fromkeys(ids, stamp))
            pipe.zremrangebyscore(self.keys.revoked, "-inf", stamp - self.expires)
            pipe.zremrangebyrank(self.keys.revoked, 0, -(self.limit + 1))
            await pipe.execute()

    async def load(self, now: float | None = None) -> set[str]:
        stamp = time.time() if now is None else now
        found = await self.client.zrangebyscore(self.keys.revoked, stamp - self.expires, "+inf")
        return {item.decode() if isinstance(item, bytes) else str(item) for item in found}

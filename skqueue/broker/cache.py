"""The SenangKira dashboard cache in Redis: shared by every process (web and workers alike).

* Entries are JSON documents with a TTL, one per user, period type and period start
  (:meth:`BrokerKeys.dashboard_entry`).
* Invalidation needs no SCAN: each user has a generation counter that is part of every entry name, so
  ``INCR`` on it makes all of that user's entries unreachable at once (they expire on their own).
* Stampede protection: whoever computes a missing entry first takes a ``SET NX PX`` lock on it; the others
  wait for the value instead of computing it again.
* Reads are counted (``hits`` / ``misses``) cluster-wide for the performance report.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from redis.asyncio import Redis

from skqueue.broker import scripts
from skqueue.broker.keys import BrokerKeys

LOCK_SECONDS = 30.0
WAIT_INTERVAL = 0.05


@dataclass(frozen=True, slots=True)
class Slot:
    """Where one computed dashboard lives: ``period`` type starting on ``start`` (ISO date)."""

    user: str
    period: str
    start: str


@dataclass(frozen=True, slots=True)
class CacheStats:
    hits: int
    misses: int

    @property
    def ratio(self) -> float | None:
        """Hits per read, or None before the first read (no data is not 0 %)."""
        total = self.hits + self.misses
        return self.hits / total if total else None


class DashboardCache:
    """Get, put, lock and invalidate dashboard entries."""

    def __init__(self, client: Redis, keys: BrokerKeys) -> None:
        self.client = client
        self.keys = keys

    async def generation(self, user: str) -> int:
        value = await self.client.get(self.keys.dashboard_generation(user))
        return int(value or 0)

    async def invalidate(self, user: str) -> int:
        """Make every entry of ``user`` unreachable; returns the new generation."""
        return int(await self.client.incr(self.keys.dashboard_generation(user)))

    async def _entry(self, slot: Slot) -> str:
        return self.keys.dashboard_entry(slot.user, await self.generation(slot.user), slot.period, slot.start)

    async def get(self, slot: Slot) -> bytes | None:
        """The entry, counting the read as a hit or a miss."""
        value = await self.client.get(await self._entry(slot))
        await self.client.hincrby(self.keys.dashboard_cache_stats, "hits" if value is not None else "misses", 1)
        return _bytes(value)

    async def remaining(self, slots: Sequence[Slot]) -> list[float | None]:
        """Seconds each entry has left (None if missing). Not counted as reads."""
        if not slots:
            return []
        names = [await self._entry(slot) for slot in slots]
        async with self.client.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.pttl(name)
            found = await pipe.execute()
        return [ms / 1000 if ms >= 0 else (None if ms == -2 else float("inf")) for ms in found]

    async def put(self, slot: Slot, value: bytes, ttl: float) -> None:
        await self.client.set(await self._entry(slot), value, px=max(1, int(ttl * 1000)))

    async def try_lock(self, slot: Slot, seconds: float = LOCK_SECONDS) -> str | None:
        """A token if this caller now holds the slot's computation lock, else None."""
        token = uuid.uuid4().hex
        name = self.keys.dashboard_lock(slot.user, slot.period, slot.start)
        taken = await self.client.set(name, token, nx=True, px=int(seconds * 1000))
        return token if taken else None

    async def unlock(self, slot: Slot, token: str) -> None:
        name = self.keys.dashboard_lock(slot.user, slot.period, slot.start)
        await scripts.call(self.client, "release_lock", [name], [token])

    async def get_or_compute(self, slot: Slot, compute: Callable[[], Awaitable[bytes]], ttl: float, *,
                             wait: float = 10.0) -> tuple[bytes, bool]:
        """The cached entry, or ``compute()`` stored for ``ttl`` seconds; True if it was a hit.

        One caller computes a cold entry while the others poll for it; after ``wait`` seconds a waiter
        computes it itself but does not store it (the lock holder's value wins)."""
        value = await self.get(slot)
        if value is not None:
            return value, True
        deadline = time.monotonic() + wait
        while True:
            token = await self.try_lock(slot)
            if token is not None:
                try:
                    value = await compute()
                    await self.put(slot, value, ttl)
                    return value, False
                finally:
                    await self.unlock(slot, token)
            await asyncio.sleep(WAIT_INTERVAL)
            found = _bytes(await self.client.get(await self._entry(slot)))
            if found is not None:
                return found, False
            if time.monotonic() > deadline:
                return await compute(), False

    async def stats(self) -> CacheStats:
        values = await self.client.hmget(self.keys.dashboard_cache_stats, ["hits", "misses"])
        return CacheStats(int(values[0] or 0), int(values[1] or 0))


def _bytes(value: object) -> bytes | None:
    if value is None:
        return None
    return value if isinstance(value, bytes) else str(value).encode()

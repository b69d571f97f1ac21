"""skqueue.broker.cache on a real Redis: stampede protection, generations, hit/miss counts."""

from __future__ import annotations

import asyncio
from typing import Any

from skqueue.broker.cache import DashboardCache, Slot
from skqueue.broker.client import aclose, connect
from skqueue.broker.keys import BrokerKeys
from skqueue.config import TransportOptions

SLOT = Slot("u1", "monthly", "2026-11-01")


def _run(server: Any, body: Any) -> Any:
    async def main() -> Any:
        client = connect(server.url(0))
        try:
            return await body(DashboardCache(client, BrokerKeys(TransportOptions())))
        finally:
            await aclose(client)

    return asyncio.run(main())


def test_a_cold_entry_is_computed_once_by_concurrent_readers(server: Any) -> None:
    calls: list[int] = []

    async def compute() -> bytes:
        calls.append(1)
        await asyncio.sleep(0.3)
        return b'{"revenue": "1.00"}'

    async def body(cache: DashboardCache) -> list[tuple[bytes, bool]]:
        return list(await asyncio.gather(*(cache.get_or_compute(SLOT, compute, 60) for _ in range(10))))

    results = _run(server, body)
    assert len(calls) == 1
    assert {value for value, _ in results} == {b'{"revenue": "1.00"}'}
    assert not any(hit for _, hit in results)
    assert not server.client(0).exists("skqueue.dashboard.lock.u1.monthly.2026-11-01")
    assert 0 < server.client(0).pttl("skqueue.dashboard.u1.0.monthly.2026-11-01") <= 60_000


def test_generations_invalidate_one_user_only_and_reads_are_counted(server: Any) -> None:
    other = Slot("u2", "monthly", "2026-11-01")

    async def body(cache: DashboardCache) -> dict[str, Any]:
        await cache.put(SLOT, b"a", 60)
        await cache.put(other, b"b", 60)
        before = (await cache.get(SLOT), await cache.get(other))
        generation = await cache.invalidate("u1")
        after = (await cache.get(SLOT), await cache.get(other))
        left = await cache.remaining([SLOT, other])
        return {"before": before, "after": after, "generation": generation, "left": left,
                "stats": await cache.stats()}

    found = _run(server, body)
    assert found["before"] == (b"a", b"b") and found["after"] == (None, b"b") and found["generation"] == 1
    assert found["left"][0] is None and 0 < found["left"][1] <= 60
    assert (found["stats"].hits, found["stats"].misses, found["stats"].ratio) == (3, 1, 0.75)


def test_a_lock_is_only_released_by_its_holder(server: Any) -> None:
    async def body(cache: DashboardCache) -> tuple[str | None, str | None, str | None]:
        first = await cache.try_lock(SLOT, 5)
        second = await cache.try_lock(SLOT, 5)
        await cache.unlock(SLOT, "not-the-token")
        still = await cache.try_lock(SLOT, 5)
        assert first is not None
        await cache.unlock(SLOT, first)
        return second, still, await cache.try_lock(SLOT, 5)

    second, still, third = _run(server, body)
    assert second is None and still is None and third is not None

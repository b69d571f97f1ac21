"""Reading and trimming the task telemetry the worker records (see :mod:`skqueue.broker.telemetry`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

import msgspec
from redis.asyncio import Redis

from skqueue.broker.keys import BrokerKeys
from skqueue.broker.telemetry import TaskRecord, decode_record

PAGE = 1000


@dataclass(frozen=True, slots=True)
class Counters:
    """The cluster-wide counters: ``(queue, task, state) -> n`` and ``(queue, task, exception) -> n``."""

    counts: dict[tuple[str, str, str], int]
    errors: dict[tuple[str, str, str], int]


async def records_since(client: Redis, keys: BrokerKeys, since: float, limit: int = 100_000
                        ) -> AsyncIterator[TaskRecord]:
    """Finished attempts recorded at or after ``since`` (epoch seconds), oldest first. Entries that cannot
    be decoded are skipped."""
    start = f"{int(since * 1000)}-0"
    seen = 0
    while seen < limit:
        page = await client.xrange(keys.task_events, min=start, max="+", count=min(PAGE, limit - seen))
        if not page:
            return
        for _, fields in page:
            seen += 1
            raw = (fields or {}).get(b"r") or (fields or {}).get("r")
            if raw is None:
                continue
            try:
                yield decode_record(raw if isinstance(raw, bytes) else str(raw).encode())
            except msgspec.DecodeError:
                continue
        last = page[-1][0].decode() if isinstance(page[-1][0], bytes) else str(page[-1][0])
        start = f"({last}"


async def trim_before(client: Redis, keys: BrokerKeys, cutoff: float) -> int:
    """Delete the attempts recorded before ``cutoff`` (epoch seconds); returns how many went."""
    return int(await client.xtrim(keys.task_events, minid=f"{int(cutoff * 1000)}-0", approximate=False))


async def counters(client: Redis, keys: BrokerKeys) -> Counters:
    counts, errors = await client.hgetall(keys.task_counts), await client.hgetall(keys.task_errors)
    return Counters(_split(counts), _split(errors))


def _split(raw: Mapping[bytes | str, bytes | str]) -> dict[tuple[str, str, str], int]:
    found: dict[tuple[str, str, str], int] = {}
    for key, value in raw.items():
        text = key.decode() if isinstance(key, bytes) else str(key)
        queue, _, rest = text.partition("|")
        task, _, last = rest.rpartition("|")
        if task:
            found[(queue, task, last)] = int(value)
    return found

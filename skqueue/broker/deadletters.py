"""The dead-letter list: messages skqueue refused to run (malformed, pickle, poison) with the reason.

Each entry is a JSON record ``{"reason", "queue", "payload", "time", "worker"?, ...}``; ``payload`` is the
message exactly as it was on its queue, so requeueing it gives the original message back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
from redis.asyncio import Redis

from skqueue.broker import scripts
from skqueue.broker.keys import BrokerKeys
from skqueue.protocol.message import clamp_priority


@dataclass(frozen=True, slots=True)
class DeadLetter:
    index: int
    raw: bytes
    reason: str
    queue: str
    time: float
    payload: str
    task: str | None
    task_id: str | None
    priority: int


def _parse(index: int, raw: bytes) -> DeadLetter:
    try:
        record: dict[str, Any] = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        record = {"reason": "unreadable dead-letter record", "payload": raw.decode("utf-8", "replace")}
    payload = str(record.get("payload", ""))
    try:
        envelope = msgspec.json.decode(payload)
        headers = envelope.get("headers") or {}
        priority = clamp_priority((envelope.get("properties") or {}).get("priority"))
    except (msgspec.DecodeError, AttributeError):
        headers, priority = {}, 0
    return DeadLetter(index, raw, str(record.get("reason", "")), str(record.get("queue") or ""),
                      float(record.get("time") or 0), payload, headers.get("task"), headers.get("id"), priority)


class DeadLetters:
    def __init__(self, client: Redis, keys: BrokerKeys) -> None:
        self.client = client
        self.keys = keys

    async def count(self) -> int:
        return int(await self.client.llen(self.keys.dead_letters))

    async def list(self, start: int = 0, limit: int = 100) -> list[DeadLetter]:
        raws = await self.client.lrange(self.keys.dead_letters, start, start + limit - 1)
        return [_parse(start + offset, raw if isinstance(raw, bytes) else str(raw).encode())
                for offset, raw in enumerate(raws)]

    async def requeue(self, letters: Sequence[DeadLetter], queue: str | None = None) -> int:
        """Put letters back on their queue (or ``queue``); letters without a queue or payload stay."""
        movable = [letter for letter in letters if letter.payload and (queue or letter.queue)]
        if not movable:
            return 0
        keys = [self.keys.dead_letters]
        args: list[Any] = []
        for letter in movable:
            keys.append(self.keys.queue_for_priority(queue or letter.queue, letter.priority))
            args.extend([letter.raw, letter.payload])
        return int(await scripts.call(self.client, "dlq_requeue", keys, args))

    async def purge(self) -> int:
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.llen(self.keys.dead_letters)
            pipe.delete(self.keys.dead_letters)
            count, _ = await pipe.execute()
        return int(count)

"""Batching result writes and acks: whatever finished while the previous flush was in flight goes out in
the next one, so a busy worker makes a few round trips per batch instead of several per task.

Order inside a flush is the at-least-once contract: results are durable before their messages are acked.
A flush that fails (Redis gone) is retried with back-off; nothing is dropped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from skqueue.broker.results import MetaWrite, ResultStore
from skqueue.broker.transport import RedisBroker

log = logging.getLogger("skqueue.worker")

RETRYABLE = (RedisConnectionError, RedisTimeoutError, OSError)


class Settler:
    def __init__(self, broker: RedisBroker, results: ResultStore | None,
                 on_acked: Callable[[Sequence[str]], None]) -> None:
        self.broker = broker
        self.results = results
        self.on_acked = on_acked
        self._writes: list[MetaWrite] = []
        self._acks: list[str] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    def add(self, writes: Sequence[MetaWrite] = (), acks: Sequence[str] = ()) -> None:
        if self.results is not None:
            self._writes.extend(writes)
        self._acks.extend(acks)
        self._idle.clear()
        self._wake.set()

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._writes or self._acks:
                writes, acks = self._writes, self._acks
                self._writes, self._acks = [], []
                await self._flush(writes, acks)
            self._idle.set()

    async def drain(self) -> None:
        """Wait until everything added so far is written and acked."""
        await self._idle.wait()

    async def _flush(self, writes: list[MetaWrite], acks: list[str]) -> None:
        delay = 0.05
        while True:
            try:
                if writes and self.results is not None:
                    await self.results.store(writes)
                    writes = []
                if acks:
                    await self.broker.ack(acks)
                    self.on_acked(acks)
                return
            except RETRYABLE as exc:
                log.warning("Redis unavailable while settling %d result(s) and %d ack(s): %s; retrying in %.1fs",
                            len(writes), len(acks), exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

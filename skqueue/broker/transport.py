"""Queues on Redis the way kombu lays them out: reserve, ack, requeue, dead-letter, publish.

Every delivery is recorded in kombu's ``unacked`` hash and ``unacked_index`` zset, so Celery workers
sharing the queues recover skqueue's deliveries and skqueue recovers theirs. Reservation is one Lua call
that pops and records atomically: no message is ever only in this process's memory.
"""

from __future__ import annotations

import logging
import os
import re
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from skqueue.broker import scripts
from skqueue.broker.keys import BrokerKeys
from skqueue.protocol.message import clamp_priority, mark_redelivered

log = logging.getLogger("skqueue.broker")


@dataclass(frozen=True, slots=True)
class Reserved:
    """A message taken from ``queue``; ``dead`` means it was unusable and is already dead-lettered."""

    queue: str
    raw: bytes
    dead: bool = False


@dataclass(frozen=True, slots=True)
class Publish:
    """A message to push: to ``queue`` (the band comes from ``priority``)."""

    queue: str
    priority: int
    raw: bytes


@dataclass(frozen=True, slots=True)
class Held:
    """What a requeue needs to know about one delivery."""

    tag: str
    raw: bytes
    exchange: str
    routing_key: str
    priority: int


# skqueue's own hold on kombu's unacked_mutex: short, so a crashed skqueue never blocks Celery's restores
# for kombu's full 300 s.
MUTEX_MAX_HOLD = 30.0

_unacked_decoder = msgspec.json.Decoder(tuple[msgspec.Raw, Any, Any])
_props_decoder = msgspec.json.Decoder(dict[str, Any])


def new_worker_id(node: str) -> str:
    """A worker process id unique across restarts: node name, pid and start time."""
    return f"{node}:{os.getpid()}:{int(time.time() * 1000)}"


class RedisBroker:
    """kombu-compatible queue operations on one broker database, for one worker process (``worker_id``
    names the set of deliveries it holds)."""

    def __init__(self, client: Redis, keys: BrokerKeys, worker_id: str | None = None) -> None:
        self.client = client
        self.keys = keys
        self.worker_id = worker_id or new_worker_id("skqueue")
        self.owned = keys.owned(self.worker_id)

    async def declare(self, queues: Iterable[str]) -> None:
        """Bind each queue to its own direct exchange as Celery does, so named-exchange publishes and
        kombu restores can find it (and kombu 5.7's sweeper keeps the binding)."""
        async with self.client.pipeline(transaction=False) as pipe:
            for queue in queues:
                member = self.keys.binding_member(queue, queue)
                pipe.sadd(self.keys.binding(queue), member)
                pipe.sadd(self.keys.binding_permanent(queue), member)
            await pipe.execute()

    async def reserve(self, cycle: Sequence[str], count: int, now: float | None = None) -> list[Reserved]:
        """Take up to ``count`` messages, band-major, round robin over ``cycle`` inside a band."""
        if count <= 0 or not cycle:
            return []
        k = self.keys
        keys = [k.unacked, k.unacked_index, k.dead_letters, self.owned, *k.poll_order(list(cycle))]
        args: list[Any] = [repr(time.time() if now is None else now), count, len(cycle), *cycle]
        flat = await scripts.call(self.client, "reserve", keys, args)
        return [
            Reserved(cycle[int(flat[i]) - 1], flat[i + 1], flat[i + 2] == b"dead")
            for i in range(0, len(flat), 3)
        ]

    async def ack(self, tags: Sequence[str], extra: Callable[[Pipeline], None] | None = None,
                  owner: str | None = None) -> None:
        """Remove deliveries from ``unacked`` and ``unacked_index`` in one MULTI; ``extra`` may add
        commands (telemetry) to the same transaction. ``owner``: another (dead) worker's deliveries."""
        if not tags and extra is None:
            return
        async with self.client.pipeline(transaction=True) as pipe:
            if tags:
                # EVAL, not EVALSHA: inside MULTI a NOSCRIPT error could not be retried cleanly.
                owned = self.keys.owned(owner) if owner else self.owned
                pipe.eval(scripts.source("ack"), 3, self.keys.unacked, self.keys.unacked_index, owned, *tags)
            if extra is not None:
                extra(pipe)
            await pipe.execute()

    async def dead_letter(self, tag: str, record: bytes, owner: str | None = None) -> None:
        """Atomically drop a delivery from ``unacked`` and push ``record`` on the dead-letter list."""
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.zrem(self.keys.unacked_index, tag)
            pipe.hdel(self.keys.unacked, tag)
            pipe.srem(self.keys.owned(owner) if owner else self.owned, tag)
            pipe.lpush(self.keys.dead_letters, record)
            await pipe.execute()

    async def owned_tags(self) -> list[str]:
        """Delivery tags this worker process holds according to Redis (its ``owned`` set)."""
        return sorted(t.decode() if isinstance(t, bytes) else str(t) for t in await self.client.smembers(self.owned))

    async def refresh_leases(self, tags: Sequence[str], now: float | None = None) -> None:
        """Move held deliveries' ``unacked_index`` scores to now, so no visibility restore takes them.
        ``XX``: a tag somebody else already restored is not re-created."""
        if not tags:
            return
        stamp = time.time() if now is None else now
        await self.client.zadd(self.keys.unacked_index, dict.fromkeys(tags, stamp), xx=True)

    async def publish(self, queue: str, priority: int, raw: bytes) -> None:
        await self.client.lpush(self.keys.queue_for_priority(queue, clamp_priority(priority)), raw)

    async def publish_many(self, messages: Sequence[Publish]) -> None:
        """``LPUSH`` each message to its queue's band list, in order, in one round trip. One transaction:
        a connection lost half-way must not leave some pushed, as the retry would push those again."""
        async with self.client.pipeline(transaction=True) as pipe:
            for message in messages:
                pipe.lpush(self.keys.queue_for_priority(message.queue, clamp_priority(message.priority)),
                           message.raw)
            await pipe.execute()

    async def requeue(self, held: Sequence[Held], *, head: bool, ceiling: float | None = None,
                      owner: str | None = None, crashes: int | None = None) -> int:
        """Return deliveries to their queues marked redelivered, keeping their delivery tags: ``head``
        (restore, next to run) or tail (reject with requeue). With ``ceiling`` only deliveries whose
        lease is still older than it move. ``owner`` is the worker id whose owned set they leave (this
        worker's by default); ``crashes`` is recorded in the messages for poison detection. Returns how
        many moved."""
        owned = self.keys.owned(owner) if owner else self.owned
        moved = 0
        for start in range(0, len(held), 500):
            chunk = held[start:start + 500]
            dests: list[str] = []
            args: list[Any] = ["head" if head else "tail", "inf" if ceiling is None else repr(ceiling)]
            for item in chunk:
                if not item.raw:  # an orphaned index entry: nothing to push
                    dests.append(self.keys.dead_letters)
                    args.extend([item.tag, ""])
                    continue
                dests.append(await self._destination(item))
                args.extend([item.tag, mark_redelivered(item.raw, crashes)])
            keys = [self.keys.unacked, self.keys.unacked_index, owned, *dests]
            moved += int(await scripts.call(self.client, "requeue", keys, args))
        return moved

    async def _destination(self, item: Held) -> str:
        if not item.exchange:
            return self.keys.queue_for_priority(item.routing_key, item.priority)
        members = await self.client.smembers(self.keys.binding(item.exchange))
        for member in sorted(m.decode() if isinstance(m, bytes) else str(m) for m in members):
            routing_key, pattern, queue = [*member.split(self.keys.options.sep), "", "", ""][:3]
            if routing_key == item.routing_key or (pattern and re.fullmatch(pattern, item.routing_key)):
                return self.keys.queue_for_priority(queue, item.priority)
        # kombu drops such a message; skqueue keeps it where an operator will find it.
        log.error("No binding for exchange %r routing key %r: restoring delivery %s to the dead-letter list",
                  item.exchange, item.routing_key, item.tag)
        return self.keys.dead_letters

    async def restore_visible(self, visibility_timeout: float, now: float | None = None, limit: int = 1000) -> int:
        """Requeue (to the head) deliveries whose lease is older than ``visibility_timeout``: their worker
        is gone. Returns how many moved.

        Each move is atomic and conditional on the entry still being stale, so two restorers can never
        move one message twice and the restore needs no lock for correctness. kombu's ``unacked_mutex``
        is still taken when free, so Celery workers skip their own scan meanwhile; but a mutex left behind
        by a crashed worker (kombu holds it for 300 s) must not stall recovery, so a held mutex does not
        stop this restore."""
        token = uuid.uuid4().hex
        expire_ms = int(min(self.keys.options.unacked_mutex_expire, MUTEX_MAX_HOLD) * 1000)
        locked = await self.client.set(self.keys.unacked_mutex, token, nx=True, px=expire_ms)
        try:
            ceiling = (time.time() if now is None else now) - visibility_timeout
            found = await self.client.zrevrangebyscore(self.keys.unacked_index, ceiling, 0, start=0, num=limit)
            tags = [t.decode() if isinstance(t, bytes) else str(t) for t in found]
            held, missing = await self._load_for_restore(tags)
            orphans = [Held(tag, b"", "", "", 0) for tag in missing]
            moved = await self.requeue([*held, *orphans], head=True, ceiling=ceiling)
            if moved:
                log.warning("Restored %d unacknowledged message(s) older than the visibility timeout", moved)
            return moved
        finally:
            if locked:
                await scripts.call(self.client, "release_lock", [self.keys.unacked_mutex], [token])

    async def load_held(self, tags: Sequence[str]) -> list[Held]:
        """Read deliveries back from ``unacked`` (missing or unreadable entries are skipped)."""
        held, _ = await self._load_for_restore(tags)
        return held

    async def _load_for_restore(self, tags: Sequence[str]) -> tuple[list[Held], list[str]]:
        """Deliveries found in ``unacked``, and the tags whose hash field is missing."""
        if not tags:
            return [], []
        values = await self.client.hmget(self.keys.unacked, list(tags))
        held: list[Held] = []
        missing: list[str] = []
        for tag, value in zip(tags, values, strict=True):
            if value is None:
                missing.append(tag)
                continue
            try:
                payload, exchange, routing_key = _unacked_decoder.decode(value)
                props = _props_decoder.decode(payload).get("properties") or {}
            except (msgspec.DecodeError, AttributeError):
                log.error("Unreadable unacked entry %s left in place", tag)
                continue
            held.append(Held(tag, bytes(payload), str(exchange or ""), str(routing_key or ""),
                             clamp_priority(props.get("priority") if isinstance(props, dict) else 0)))
        return held, missing

    async def queue_sizes(self, queues: Iterable[str]) -> dict[str, int]:
        """Messages waiting per queue, summed over every priority band (what Flower shows)."""
        names = list(queues)
        async with self.client.pipeline(transaction=False) as pipe:
            for queue in names:
                for band in self.keys.bands(queue):
                    pipe.llen(band)
            counts = await pipe.execute()
        steps = len(self.keys.options.priority_steps)
        return {q: sum(counts[i * steps:(i + 1) * steps]) for i, q in enumerate(names)}

    async def purge(self, queues: Iterable[str]) -> int:
        sizes = await self.queue_sizes(queues)
        await self.client.delete(*[band for queue in sizes for band in self.keys.bands(queue)])
        return sum(sizes.values())

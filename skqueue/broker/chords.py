"""Chord bookkeeping in the result backend, as Celery's ``RedisBackend`` keeps it (spec §5.8).

Two protocols share the keys ``celery-taskset-meta-<group id>.{j,t,s}``:

* ``5.3`` (Celery 5.3-5.6): finished header tasks go into ``.j``; the one that makes ``.j`` as large as
  ``.s`` (+ ``.t``) reads the results and deletes the keys. Celery does this in a pipeline that two workers
  can both see complete; here it is one script, so only one caller ever does.
* ``5.7``: adds ``.d`` (each header task counted once, however often it is delivered) and ``.c`` (the
  dispatch claim, then a ``done`` marker), so exactly one body is published even across crashes. Celery
  claims with a random token and relies on the claim expiring before a redelivery; skqueue redelivers a
  dead worker's messages within seconds, so its token names the delivery (kombu keeps delivery tags on
  restore) and the redelivered completing message owns the claim again and publishes the body.
* ``auto`` (the default) is the 5.7 protocol, which works with clients of every version because all of them
  store the size in ``.s``: a 5.3 client's ``SETEX``+``PUBLISH`` and a 5.7 client's ``SET EX`` read alike.
  One difference from 5.7: a ``done`` marker is ignored while ``.s`` exists, because a Celery <= 5.6
  client re-applying a frozen chord (same group id) stores ``.s`` without clearing the marker.

Use ``5.3`` only when Celery <= 5.6 workers run header tasks of the same chords (a mixed fleet); ``5.7``
for a fleet with Celery 5.7 workers. Everything is batched: one script call per flush, whatever the number
of finished header tasks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from skqueue.broker import scripts
from skqueue.broker.keys import ResultKeys

PROTOCOLS = ("auto", "5.3", "5.7")
# How long a claim keeps other deliveries from publishing the body. It only needs to outlast a publish: the
# claiming delivery itself, redelivered after a crash, takes its claim back at once.
CLAIM_SECONDS = 60
# How long the "done" marker keeps late duplicates from firing a chord again (Celery: max(2 * claim, 300)).
DONE_SECONDS = 300
_CHUNK = 500


@dataclass(frozen=True, slots=True)
class PartReturn:
    """A finished header task: its chord, its position, its encoded ``[1, id, state, result]``, and the
    token it claims the chord with should it complete it (naming the delivery, see the script)."""

    group_id: str
    task_id: str
    group_index: int | None
    member: bytes
    token: str


@dataclass(frozen=True, slots=True)
class Claim:
    """A chord this worker claimed; released once its body is out."""

    group_id: str
    token: str


class ChordStore:
    """Counts finished header tasks and tells which call completed each chord."""

    def __init__(self, client: Redis, keys: ResultKeys, *, protocol: str = "auto", ordered: bool = True,
                 expires: float | None = 86400.0, group_expires: float | None = 86400.0) -> None:
        if protocol not in PROTOCOLS:
            raise ValueError(f"chord protocol must be one of {', '.join(PROTOCOLS)}, not {protocol!r}")
        self.client = client
        self.keys = keys
        self.protocol = protocol
        self.ordered = ordered
        self.expires = int(expires) if expires and expires > 0 else 0
        self.group_expires = int(group_expires) if group_expires and group_expires > 0 else 0

    @property
    def claims(self) -> bool:
        """True when completed chords must be released after their body is published."""
        return self.protocol != "5.3"

    async def record(self, parts: Sequence[PartReturn]) -> list[list[bytes] | None]:
        """Count ``parts``; for each, the chord's results if it completed (and claimed) its chord."""
        completed: list[list[bytes] | None] = []
        for start in range(0, len(parts), _CHUNK):
            chunk = parts[start:start + _CHUNK]
            if self.claims:
                replies = await self._record_claiming(chunk)
            else:
                replies = await self._record_legacy(chunk)
            completed.extend(list(reply[1:]) if reply and int(reply[0]) == 1 else None for reply in replies)
        return completed

    async def _record_claiming(self, parts: Sequence[PartReturn]) -> list[Any]:
        k = self.keys
        keys: list[str] = []
        args: list[Any] = ["1" if self.ordered else "0", self.expires, self.group_expires, CLAIM_SECONDS,
                           "1" if self.protocol == "auto" else "0"]
        for part in parts:
            gid = part.group_id
            keys += [k.chord_results(gid), k.chord_extra(gid), k.chord_size(gid), k.chord_seen(gid), k.group(gid),
                     k.chord_claim(gid)]
            args += [part.task_id, part.member, _score(part.group_index), part.token]
        return list(await scripts.call(self.client, "chord_part_return", keys, args))

    async def _record_legacy(self, parts: Sequence[PartReturn]) -> list[Any]:
        k = self.keys
        keys: list[str] = []
        args: list[Any] = ["1" if self.ordered else "0", self.expires]
        for part in parts:
            gid = part.group_id
            keys += [k.chord_results(gid), k.chord_extra(gid), k.chord_size(gid)]
            args += [part.task_id, part.member, _score(part.group_index)]
        return list(await scripts.call(self.client, "chord_part_return_legacy", keys, args))

    async def release(self, claims: Sequence[Claim]) -> int:
        """Delete the bookkeeping of chords whose body is out and mark them done (where still ours)."""
        if not claims or not self.claims:
            return 0
        k = self.keys
        keys: list[str] = []
        args: list[Any] = [DONE_SECONDS]
        for claim in claims:
            gid = claim.group_id
            keys += [k.chord_claim(gid), k.chord_results(gid), k.chord_extra(gid), k.chord_size(gid),
                     k.chord_seen(gid)]
            args.append(claim.token)
        return int(await scripts.call(self.client, "chord_release", keys, args))

    async def set_sizes(self, sizes: Sequence[tuple[str, int]]) -> None:
        """Store the size of chords this worker starts, before their header tasks are published, as the
        client of the configured version would (5.7: clear the claim, ``SET EX``; 5.3: ``SET EX`` and
        ``PUBLISH``)."""
        if not sizes:
            return
        async with self.client.pipeline(transaction=True) as pipe:
            for group_id, size in sizes:
                key = self.keys.chord_size(group_id)
                if self.claims:
                    pipe.delete(self.keys.chord_claim(group_id))
                pipe.set(key, size, ex=self.expires or None)
                if not self.claims:
                    pipe.publish(key, size)
            await pipe.execute()


def _score(group_index: int | None) -> str:
    return "+inf" if group_index is None else str(int(group_index))

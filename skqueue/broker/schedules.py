"""Schedule state in Redis and the atomic publish of one firing (see ``scripts/schedule_*.lua``).

Each entry has a hash ``skqueue.schedule.<entry>``; times in it are UTC epoch seconds. A firing claims
``skqueue.fired.<entry>.<UTC ISO time>`` in the same script that checks the leader lease, pushes the message
and moves the state on, so a firing is published once or not at all, whoever runs the script.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis

from skqueue.broker import scripts
from skqueue.broker.keys import BrokerKeys
from skqueue.protocol.message import clamp_priority

SENT = "sent"
TRIGGERED = "triggered"
SKIPPED_OVERLAP = "skipped (still running)"


def utc_iso(moment: datetime) -> str:
    """``2026-03-29T01:00:00Z``; milliseconds only when there are some (sub-second intervals)."""
    moment = moment.astimezone(UTC)
    spec = "milliseconds" if moment.microsecond else "seconds"
    return moment.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


def _epoch(moment: datetime | None) -> str:
    return "" if moment is None else repr(moment.timestamp())


def _time(value: Any) -> datetime | None:
    if value in (None, b"", ""):
        return None
    return datetime.fromtimestamp(float(value), UTC)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True, slots=True)
class EntryState:
    """What Redis knows about one entry. ``next_run`` is ``None`` until a scheduler has seen the entry."""

    next_run: datetime | None = None
    last_run: datetime | None = None
    last_sent: datetime | None = None
    last_status: str | None = None
    last_task_id: str | None = None
    run_count: int = 0
    missed: int = 0
    skipped: int = 0
    paused: bool = False
    schedule: str | None = None

    @classmethod
    def from_hash(cls, data: dict[Any, Any]) -> EntryState:
        fields = {_text(k): v for k, v in data.items()}
        return cls(
            next_run=_time(fields.get("next_run")), last_run=_time(fields.get("last_run")),
            last_sent=_time(fields.get("last_sent")), last_status=_text(fields.get("last_status")),
            last_task_id=_text(fields.get("last_task_id")), run_count=int(fields.get("run_count") or 0),
            missed=int(fields.get("missed") or 0), skipped=int(fields.get("skipped") or 0),
            paused=_text(fields.get("paused")) == "1", schedule=_text(fields.get("schedule")),
        )


@dataclass(frozen=True, slots=True)
class Firing:
    """One message to publish for ``entry`` at the nominal UTC ``fire_time``."""

    entry: str
    fire_time: datetime
    queue: str
    priority: int
    raw: bytes
    task_id: str
    next_run: datetime | None = None
    missed: int = 0


class FireResult(enum.IntEnum):
    """What ``schedule_fire.lua`` did."""

    SENT = 1
    ALREADY_FIRED = 0
    NOT_LEADER = -1
    PAUSED = -2


class ScheduleStore:
    """Reads and moves schedule entries' state; publishes firings."""

    def __init__(self, client: Redis, keys: BrokerKeys) -> None:
        self.client = client
        self.keys = keys

    async def states(self, names: Sequence[str]) -> dict[str, EntryState]:
        async with self.client.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hgetall(self.keys.schedule_state(name))
            found = await pipe.execute()
        return {name: EntryState.from_hash(data or {}) for name, data in zip(names, found, strict=True)}

    async def fire(self, firing: Firing, token: str, fired_ttl: float, now: datetime) -> FireResult:
        """Publish ``firing`` if ``token`` holds the lease, the entry is not paused and the firing is new."""
        return FireResult(await self._fire(firing, token, math.ceil(max(fired_ttl, 1)), SENT, now))

    async def trigger(self, firing: Firing, now: datetime) -> None:
        """Publish ``firing`` now, outside the schedule (an operator's ``trigger``)."""
        await self._fire(firing, "", 1, TRIGGERED, now)

    async def _fire(self, firing: Firing, token: str, ttl: int, status: str, now: datetime) -> int:
        keys = [self.keys.scheduler_lease, self.keys.fired(firing.entry, utc_iso(firing.fire_time)),
                self.keys.queue_for_priority(firing.queue, clamp_priority(firing.priority)),
                self.keys.schedule_state(firing.entry)]
        args: list[Any] = [token, ttl, firing.raw, firing.task_id, _epoch(firing.fire_time),
                           _epoch(firing.next_run), firing.missed, status, _epoch(now)]
        return int(await scripts.call(self.client, "schedule_fire", keys, args))

    async def advance(self, entry: str, token: str, *, next_run: datetime | None = None, missed: int = 0,
                      skipped: int = 0, status: str = "", schedule: str = "", paused: bool | None = None) -> bool:
        """Move ``entry`` on without publishing; ``False`` if ``token`` does not hold the lease. An empty
        ``token`` is an operator command (no lease needed). A new ``schedule`` restarts at ``next_run``."""
        keys = [self.keys.scheduler_lease, self.keys.schedule_state(entry)]
        flag = "" if paused is None else ("1" if paused else "0")
        args: list[Any] = [token, _epoch(next_run), missed, skipped, status, schedule, flag]
        return int(await scripts.call(self.client, "schedule_advance", keys, args)) == 1

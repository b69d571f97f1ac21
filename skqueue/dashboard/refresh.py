"""Refresh and warm the dashboard cache, for one user or for every user in batches.

* refresh recomputes every period type (daily to yearly, as of today), replaces the cache entries and
  writes the day's ``dashboard_dashboardsnapshot`` rows;
* warm computes only the entries that are missing or expire within ``dashboard_cache_refresh_ahead``
  seconds, each under the entry's lock, so concurrent warmers never compute the same entry twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import date, datetime
from typing import Any

from skqueue.broker.cache import Slot
from skqueue.dashboard import stats
from skqueue.dashboard.periods import PERIOD_TYPES, Period, period_of
from skqueue.dashboard.runtime import Runtime
from skqueue.dashboard.store import Store, UserId

log = logging.getLogger("skqueue.dashboard")

BATCH_SIZE = 8


def today_in(rt: Runtime) -> date:
    return datetime.now(rt.settings.tz()).date()


def encode(data: dict[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


async def compute(rt: Runtime, store: Store, owner: UserId, period: Period, today: date) -> dict[str, Any]:
    async with store.connect() as conn:
        return await stats.compute(conn, store.tables, owner, period, today=today, tz=rt.settings.tz())


def slot(owner: UserId, period: Period) -> Slot:
    return Slot(str(owner), period.kind, period.start.isoformat())


async def cached(rt: Runtime, store: Store, owner: UserId, period: Period, today: date) -> tuple[dict[str, Any], bool]:
    """The dashboard from the cache, computed once (under the entry's lock) on a miss; True on a hit."""

    async def fresh() -> bytes:
        return encode(await compute(rt, store, owner, period, today))

    raw, hit = await rt.cache.get_or_compute(slot(owner, period), fresh, rt.settings.dashboard_cache_ttl)
    return json.loads(raw), hit


def headline(data: dict[str, Any]) -> dict[str, Any]:
    """The figures a task result shows for one period (the full dashboard is in the cache)."""
    return {"start": data["period"]["start"], "end": data["period"]["end"], "revenue": data["revenue"],
            "expenses": data["expenses"]["total"], "net_profit": data["net_profit"],
            "outstanding": data["outstanding"]["amount"], "overdue": data["overdue"]["amount"]}


async def refresh_user(rt: Runtime, user_id: Any, today: date | None = None) -> dict[str, Any]:
    store = await rt.store()
    user = await store.user(user_id)
    day = today or today_in(rt)
    computed: dict[str, dict[str, Any]] = {}
    for kind in PERIOD_TYPES:
        period = period_of(kind, day)
        computed[kind] = await compute(rt, store, user.id, period, day)
        await rt.cache.put(slot(user.id, period), encode(computed[kind]), rt.settings.dashboard_cache_ttl)
    await store.replace_snapshots(user.id, day, [stats.snapshot_row(data) for data in computed.values()])
    return {"user_id": str(user.id), "as_of": day.isoformat(), "cached": len(computed),
            "snapshots": len(computed), "periods": {kind: headline(data) for kind, data in computed.items()}}


async def warm_user(rt: Runtime, user_id: Any, today: date | None = None) -> dict[str, Any]:
    store = await rt.store()
    user = await store.user(user_id)
    day = today or today_in(rt)
    periods = [period_of(kind, day) for kind in PERIOD_TYPES]
    left = await rt.cache.remaining([slot(user.id, period) for period in periods])
    done: dict[str, list[str]] = {"filled": [], "fresh": [], "busy": []}
    for period, remaining in zip(periods, left, strict=True):
        if remaining is not None and remaining > rt.settings.dashboard_cache_refresh_ahead:
            done["fresh"].append(period.kind)
            continue
        token = await rt.cache.try_lock(slot(user.id, period))
        if token is None:  # another process is computing it right now
            done["busy"].append(period.kind)
            continue
        try:
            data = await compute(rt, store, user.id, period, day)
            await rt.cache.put(slot(user.id, period), encode(data), rt.settings.dashboard_cache_ttl)
        finally:
            await rt.cache.unlock(slot(user.id, period), token)
        done["filled"].append(period.kind)
    return {"user_id": str(user.id), "as_of": day.isoformat(), **done}


Action = Callable[[Runtime, Any], Awaitable[dict[str, Any]]]


async def every_user(rt: Runtime, action: Action, label: str) -> dict[str, Any]:
    """Run ``action`` for every active user, ``BATCH_SIZE`` at a time, logging progress after each batch.

    A user's failure is reported in the result and does not stop the others; only when every user failed
    (the database is down, say) is the first error raised, so the task's retry policy applies."""
    store = await rt.store()
    ids = await store.user_ids()
    failed: list[dict[str, str]] = []
    errors: list[Exception] = []
    for start in range(0, len(ids), BATCH_SIZE):
        batch = ids[start:start + BATCH_SIZE]
        outcomes = await asyncio.gather(*(action(rt, user_id) for user_id in batch), return_exceptions=True)
        for user_id, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, Exception):
                errors.append(outcome)
                failed.append({"user_id": str(user_id), "error": f"{type(outcome).__name__}: {outcome}"})
            elif isinstance(outcome, BaseException):
                raise outcome
        log.info("%s: %d/%d users done, %d failed", label, start + len(batch), len(ids), len(failed))
    if errors and len(errors) == len(ids):
        raise errors[0]
    return {"users": len(ids), "succeeded": len(ids) - len(failed), "failed": failed,
            "batches": -(-len(ids) // BATCH_SIZE)}

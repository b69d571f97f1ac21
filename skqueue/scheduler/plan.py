"""Which firings of an entry are due at ``now``, once its catch-up policy is applied. Pure: the clock is
an argument, so tests step through days of schedule without sleeping.

A firing is *on time* when it is due at most :data:`GRACE` ago; on-time firings are always sent. Older
ones were missed (the scheduler was down, or handing over): ``catch_up`` decides what happens to them.

* ``skip``: none is sent.
* ``latest`` (default): the most recent is sent once, unless an on-time firing supersedes it.
* ``all``: every one is sent, oldest first, at most :data:`BATCH_LIMIT` per tick.

Firings due more than ``catch_up_window`` ago are never sent. Every firing not sent is counted as missed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from skqueue.broker.schedules import EntryState, utc_iso
from skqueue.scheduler.entries import Entry

# How late a firing may be sent and still count as on time: the loop wakes at the due time, so more than
# this means no scheduler was leading (down, or handing over); small enough to tell that apart, large
# enough that a busy host's late wake-up never drops a firing (APScheduler's 1 s default famously does).
GRACE = timedelta(seconds=10)
BATCH_LIMIT = 1000
_TICK = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class Plan:
    """What to do for one entry now: send ``fire`` (nominal UTC times, oldest first), count ``missed``,
    and wait for ``next_run``. ``restart``: the entry is new or its schedule changed, so it starts over."""

    fire: tuple[datetime, ...]
    missed: int
    next_run: datetime
    restart: bool = False


def jitter_of(entry: Entry, fire_time: datetime) -> timedelta:
    """The random delay of one firing, in ``[0, entry.jitter]``: seeded by the entry and the fire time,
    so every scheduler process (and the next leader) computes the same delay."""
    if not entry.jitter:
        return timedelta(0)
    rng = random.Random(f"{entry.name}|{utc_iso(fire_time)}")
    return timedelta(seconds=rng.uniform(0, entry.jitter))


def due_at(entry: Entry, fire_time: datetime) -> datetime:
    """When the firing at ``fire_time`` is sent: its nominal time plus its jitter."""
    return fire_time + jitter_of(entry, fire_time)


def _is_current(entry: Entry, state: EntryState) -> bool:
    return state.next_run is not None and state.schedule == entry.schedule.describe()


def due(entry: Entry, state: EntryState, now: datetime) -> Plan:
    """The firings of ``entry`` to send at ``now``, given its stored ``state``."""
    if not _is_current(entry, state) or state.next_run is None:
        return Plan((), 0, entry.schedule.next_after(now), restart=True)
    cursor, stale = state.next_run, 0
    horizon = now - timedelta(seconds=entry.catch_up_window)
    if cursor < horizon:
        stale = entry.schedule.count(cursor, horizon)
        cursor = entry.schedule.next_after(horizon - _TICK)
    keep_all = entry.catch_up == "all"
    chosen: list[datetime] = []
    count, last = 0, None
    while due_at(entry, cursor) <= now and not (keep_all and count == BATCH_LIMIT):
        if keep_all or now - due_at(entry, cursor) <= GRACE:
            chosen.append(cursor)
        count, last = count + 1, cursor
        cursor = entry.schedule.next_after(cursor)
    if entry.catch_up == "latest" and not chosen and last is not None:
        chosen.append(last)
    return Plan(tuple(chosen), stale + count - len(chosen), cursor)


def first_due(entry: Entry, plan: Plan) -> datetime:
    """When this entry next needs the scheduler: its next firing plus jitter."""
    return due_at(entry, plan.next_run)

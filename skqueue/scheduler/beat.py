"""The scheduler process (``skqueue scheduler``, alias ``beat``): any number may run; one leads.

Each process loops over :meth:`Scheduler.step`: hold (or try to take) the leader lease, and as leader
:meth:`Scheduler.tick`. Every firing goes through one Lua script that checks the lease token, claims the
firing key ``(entry, UTC fire time)``, pushes the Celery message and moves the entry's state on, so a
firing is published exactly once whoever leads, however leadership changes hands. A killed leader's
lease expires after ``lease_seconds``; a standby takes over and catches up by each entry's policy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from redis.exceptions import RedisError

from skqueue.app import App
from skqueue.broker.connections import open_connections, release_urls, resolve_urls
from skqueue.broker.lease import Lease
from skqueue.broker.results import ResultStore
from skqueue.broker.schedules import SKIPPED_OVERLAP, EntryState, FireResult, ScheduleStore
from skqueue.broker.transport import RedisBroker
from skqueue.errors import ConfigError
from skqueue.protocol import states
from skqueue.scheduler import publish
from skqueue.scheduler.entries import Entry, schedule_of
from skqueue.scheduler.plan import GRACE, Plan, due, first_due

log = logging.getLogger("skqueue.scheduler")

DEFAULT_LEASE_SECONDS = 15.0
# A firing key outlives the catch-up window by this much, so no late leader can send the firing again.
FIRED_TTL_MARGIN = 300.0


class LostLease(Exception):
    """The lease token no longer matches: another scheduler leads now."""


def utcnow() -> datetime:
    return datetime.now(UTC)


class Scheduler:
    """Publishes the firings of ``entries`` while it holds ``lease``."""

    def __init__(self, app: App, entries: Sequence[Entry], store: ScheduleStore, lease: Lease, *,
                 results: ResultStore | None = None, broker: RedisBroker | None = None,
                 clock: Callable[[], datetime] = utcnow, origin: str | None = None) -> None:
        self.app = app
        self.entries = list(entries)
        self.store = store
        self.lease = lease
        self.results = results
        self.broker = broker
        self.clock = clock
        self.origin = origin or publish.client_origin()
        self.leader = False
        self.renew_every = lease.ttl / 3
        # standbys ask often (one SET NX): a leader that stops cleanly is replaced within this time
        self.poll_every = min(self.renew_every, 1.0)
        self._renew_at = 0.0
        if results is None and any(entry.overlap == "skip" for entry in self.entries):
            log.warning("Scheduler: no result backend, so overlap 'skip' cannot see running tasks: ignored")

    # ------------------------------------------------------------------ the loop
    async def run(self, stop: asyncio.Event) -> None:
        """Step until ``stop`` is set; then give the lease up, so a standby takes over at once."""
        try:
            while not stop.is_set():
                delay = await self.step()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=delay)
        finally:
            if self.leader:
                with contextlib.suppress(RedisError, OSError):
                    await self.lease.release()
                self.leader = False

    async def step(self) -> float:
        """Hold the lease and, as leader, tick. Returns how long to wait before the next step."""
        try:
            if not await self._hold_lease():
                return self.poll_every
            wait = await self.tick()
        except LostLease:
            self._step_down("another scheduler holds the lease now")
            return self.poll_every
        except (RedisError, OSError) as exc:
            # never fall through to scheduling on an error: leadership must be proven again
            log.error("Scheduler: Redis error: %r", exc)
            self._step_down("Redis error")
            return self.poll_every
        return max(min(wait, self._renew_at - time.monotonic()), 0.0)

    async def _hold_lease(self) -> bool:
        now = time.monotonic()
        if self.leader and now < self._renew_at:
            return True
        held = await (self.lease.renew() if self.leader else self.lease.acquire())
        if not held:
            if self.leader:
                self._step_down("the lease expired")
            return False
        self._renew_at = now + self.renew_every
        if not self.leader:
            self.leader = True
            log.info("Scheduler: leading (lease %s, %g s)", self.lease.token, self.lease.ttl)
            await self._declare()
        return True

    async def _declare(self) -> None:
        """Declare the target queues, as a Celery client does on its first publish to each."""
        if self.broker is not None:
            queues = {entry.options.queue or self.app.queue_for(entry.task) for entry in self.entries}
            await self.broker.declare(sorted(queues))

    def _step_down(self, reason: str) -> None:
        if self.leader:
            log.warning("Scheduler: no longer leading: %s", reason)
        self.leader = False
        self._renew_at = 0.0

    # ------------------------------------------------------------------ one tick
    async def tick(self, now: datetime | None = None) -> float:
        """Send every firing due at ``now`` (default: the clock); seconds until the next one is due.
        Raises :class:`LostLease` if this process turns out not to hold the lease."""
        now = now or self.clock()
        found = await self.store.states([entry.name for entry in self.entries])
        wake: datetime | None = None
        for entry in self.entries:
            next_due = await self._tick_entry(entry, found[entry.name], now)
            wake = next_due if wake is None else min(wake, next_due)
        return 3600.0 if wake is None else max((wake - now).total_seconds(), 0.0)

    async def _tick_entry(self, entry: Entry, state: EntryState, now: datetime) -> datetime:
        plan = due(entry, state, now)
        if plan.restart:
            await self._advance(entry, next_run=plan.next_run, schedule=entry.schedule.describe())
            log.info("Scheduler: %s (%s) first fires at %s", entry.name, entry.schedule.describe(),
                     plan.next_run.astimezone(entry.tz).isoformat())
        elif state.paused:
            if plan.fire or plan.missed:
                await self._advance(entry, next_run=plan.next_run, skipped=len(plan.fire) + plan.missed)
        else:
            await self._send(entry, plan, state.last_task_id, now)
        return first_due(entry, plan)

    async def _send(self, entry: Entry, plan: Plan, last_task_id: str | None, now: datetime) -> None:
        if plan.missed:
            log.warning("Scheduler: %s missed %d firing(s) (catch-up %r, window %g s)", entry.name, plan.missed,
                        entry.catch_up, entry.catch_up_window)
            if not plan.fire:
                await self._advance(entry, next_run=plan.next_run, missed=plan.missed)
        missed = plan.missed
        for index, fire_time in enumerate(plan.fire):
            after = plan.fire[index + 1] if index + 1 < len(plan.fire) else plan.next_run
            last_task_id = await self._fire(entry, fire_time, now, next_run=after, missed=missed,
                                            last_task_id=last_task_id)
            missed = 0

    async def _fire(self, entry: Entry, fire_time: datetime, now: datetime, *, next_run: datetime, missed: int,
                    last_task_id: str | None) -> str | None:
        """Send one firing (unless its previous run is unfinished and overlap is 'skip'); the id of the
        entry's latest task afterwards."""
        if entry.overlap == "skip" and last_task_id and await self._unfinished(last_task_id):
            log.info("Scheduler: Skipping %s (%s): its previous run %s has not finished", entry.name, entry.task,
                     last_task_id)
            await self._advance(entry, next_run=next_run, missed=missed, skipped=1, status=SKIPPED_OVERLAP)
            return last_task_id
        item = publish.firing(self.app, entry, fire_time, now, self.origin, next_run=next_run, missed=missed)
        ttl = entry.catch_up_window + entry.jitter + GRACE.total_seconds() + FIRED_TTL_MARGIN
        result = await self.store.fire(item, self.lease.token, ttl, now)
        if result is FireResult.NOT_LEADER:
            raise LostLease
        if result is FireResult.SENT:
            log.info("Scheduler: Sending due task %s (%s)", entry.name, entry.task)
            log.debug("%s sent. id->%s", entry.task, item.task_id)
            return item.task_id
        if result is FireResult.ALREADY_FIRED:
            log.warning("Scheduler: %s at %s was sent already; not sending it again", entry.name,
                        fire_time.isoformat())
        return last_task_id

    async def _unfinished(self, task_id: str) -> bool:
        if self.results is None:
            return False
        meta = await self.results.get(task_id)
        return (meta or {}).get("status", states.PENDING) not in states.READY_STATES

    async def _advance(self, entry: Entry, *, next_run: datetime, missed: int = 0, skipped: int = 0,
                       status: str = "", schedule: str = "") -> None:
        moved = await self.store.advance(entry.name, self.lease.token, next_run=next_run, missed=missed,
                                         skipped=skipped, status=status, schedule=schedule)
        if not moved:
            raise LostLease


# ---------------------------------------------------------------------- composition root
async def serve(app: App, entries: Sequence[Entry], *, lease_seconds: float = DEFAULT_LEASE_SECONDS,
                stop: asyncio.Event | None = None) -> None:
    """Run a scheduler process until SIGTERM/SIGINT (or ``stop``)."""
    urls = resolve_urls(app.conf)
    stop = stop or asyncio.Event()
    try:
        async with open_connections(app.conf, urls, name="skqueue-beat") as conns:
            keys = conns.broker.keys
            lease = Lease(conns.broker.client, keys.scheduler_lease, lease_seconds)
            scheduler = Scheduler(app, entries, ScheduleStore(conns.broker.client, keys), lease,
                                  results=conns.results, broker=conns.broker)
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
            log.info("beat: Starting... %d entr%s, lease %g s", len(entries), "y" if len(entries) == 1 else "ies",
                     lease_seconds)
            try:
                await scheduler.run(stop)
            finally:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(sig)
    finally:
        release_urls(urls)


def run_scheduler(app: App, *, lease_seconds: float | None = None) -> int:
    """``skqueue scheduler``: run the app's schedule (lease: the argument, else ``beat_lease_seconds``);
    returns the exit status."""
    lease_seconds = app.conf.beat_lease_seconds if lease_seconds is None else lease_seconds
    if lease_seconds <= 0:
        raise ConfigError(f"the scheduler lease must be a positive number of seconds, not {lease_seconds!r}")
    entries = schedule_of(app)
    if not entries:
        raise ConfigError(f"no beat_schedule in the settings of app {app.main!r}: nothing to schedule")
    asyncio.run(serve(app, entries, lease_seconds=lease_seconds))
    return 0

"""The worker: reserve -> execute -> settle, with warm and cold shutdown.

Every message this worker holds (waiting for a slot, waiting for its ETA, running, or finished but not
yet acked) stays in kombu's ``unacked`` structures with a lease refreshed well within the visibility
timeout. Shutdown puts whatever was not acked back at the head of its queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import msgspec
from redis.exceptions import RedisError

from skqueue.app import App
from skqueue.broker.results import MetaWrite, ResultStore
from skqueue.broker.transport import Held, RedisBroker, Reserved
from skqueue.broker.wakeup import Doorbell
from skqueue.errors import NotRegistered, ProtocolError
from skqueue.protocol.message import TaskMessage, decode_task
from skqueue.worker.execute import build_context, run_task
from skqueue.worker.outcomes import MetaFactory, log_outcome
from skqueue.worker.settle import RETRYABLE, Settler
from skqueue.worker.threads import ThreadPool

log = logging.getLogger("skqueue.worker")


@dataclass(slots=True)
class WorkerOptions:
    queues: list[str]
    concurrency: int = 8
    prefetch_multiplier: int = 4
    hostname: str = "skqueue@localhost"
    shutdown_timeout: float = 30.0
    burst: bool = False


@dataclass(slots=True)
class Stats:
    received: int = 0
    succeeded: int = 0
    failed: int = 0
    revoked: int = 0
    dead_lettered: int = 0
    by_task: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True, eq=False)
class Delivery:
    message: TaskMessage
    queue: str
    handle: asyncio.TimerHandle | None = None
    runner: asyncio.Task[None] | None = None

    def held(self) -> Held:
        m = self.message
        return Held(m.delivery_tag, m.raw, m.exchange, m.routing_key or self.queue, m.priority)


class Worker:
    def __init__(self, app: App, broker: RedisBroker, results: ResultStore | None, doorbell: Doorbell,
                 options: WorkerOptions) -> None:
        self.app = app
        self.broker = broker
        self.doorbell = doorbell
        self.options = options
        self.settings = app.conf
        self.tz = app.conf.tz()
        self.metas = MetaFactory(app.conf, options.hostname)
        self.settler = Settler(broker, results, self._forget)
        self.stats = Stats()
        self.cycle = self._initial_cycle(options.queues)
        self.threads = ThreadPool(options.concurrency)
        self.holding: dict[str, Delivery] = {}
        self.ready: deque[Delivery] = deque()
        self.scheduled: dict[str, Delivery] = {}
        self.running: dict[str, Delivery] = {}
        self.inflight = 0
        self.max_inflight = max(options.concurrency * options.prefetch_multiplier, 1)
        self._credit = asyncio.Event()
        self._stop = asyncio.Event()
        self._cold = False
        self._background: set[asyncio.Task[None]] = set()

    def _initial_cycle(self, queues: Sequence[str]) -> list[str]:
        ordered = sorted(queues) if self.settings.broker_transport_options.queue_order_strategy == "sorted" else queues
        return list(dict.fromkeys(ordered))

    # ------------------------------------------------------------------ lifecycle
    def request_stop(self) -> None:
        """First call: warm shutdown. Second call: cold shutdown (still loses nothing)."""
        if self._stop.is_set():
            if not self._cold:
                log.warning("Cold shutdown (second signal): cancelling running tasks, requeueing them")
            self._cold = True
            for delivery in list(self.running.values()):
                if delivery.runner is not None:
                    delivery.runner.cancel()
        else:
            log.warning("Warm shutdown: no new tasks; finishing running ones (up to %.0fs)",
                        self.options.shutdown_timeout)
        self._stop.set()
        self._credit.set()

    async def run(self) -> None:
        await self.broker.declare(self.cycle)
        await self._restore_visible()
        background = [
            asyncio.create_task(self.settler.run(), name="settle"),
            asyncio.create_task(self._maintain(), name="maintain"),
        ]
        consumer = asyncio.create_task(self._consume(), name="consume")
        try:
            await self._stop.wait()
        finally:
            consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consumer
            await self._shutdown()
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await self.doorbell.close()
            self.threads.shutdown()

    async def _shutdown(self) -> None:
        for delivery in self.scheduled.values():
            if delivery.handle is not None:
                delivery.handle.cancel()
        self.ready.clear()
        self.scheduled.clear()
        await self._wait_running()
        await self.settler.drain()
        if self.holding:
            moved = await self._requeue_safely([d.held() for d in self.holding.values()])
            log.warning("Restoring %d unacknowledged message(s)", moved)
        self.holding.clear()

    async def _wait_running(self) -> None:
        runners = [d.runner for d in self.running.values() if d.runner is not None]
        if not runners:
            return
        grace = 0.0 if self._cold else self.options.shutdown_timeout
        _, pending = await asyncio.wait(runners, timeout=grace) if grace else (set(), set(runners))
        for runner in pending:
            runner.cancel()
        if pending:
            log.warning("%d task(s) still running after the grace period: requeueing them", len(pending))
            await asyncio.wait(pending, timeout=1.0)

    async def _requeue_safely(self, held: list[Held]) -> int:
        delay = 0.1
        for _ in range(20):
            try:
                return await self.broker.requeue(held, head=True)
            except RETRYABLE as exc:
                log.warning("Redis unavailable while requeueing (%s); retrying", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
        log.error("Could not requeue %d message(s); they return after the visibility timeout", len(held))
        return 0

    # ------------------------------------------------------------------ consuming
    async def _consume(self) -> None:
        delay = 0.05
        while not self._stop.is_set():
            try:
                await self._consume_once()
                delay = 0.05
            except RETRYABLE as exc:
                log.warning("Broker connection lost: %s; retrying in %.1fs", exc, delay)
                await self.doorbell.close()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _consume_once(self) -> None:
        credit = self.max_inflight - self.inflight
        if credit <= 0:
            self._credit.clear()
            await self._credit.wait()
            return
        batch = await self.broker.reserve(self.cycle, credit)
        if not batch:
            if self.options.burst and not self.holding:
                self.request_stop()
                return
            # Subscribing takes a moment: look once more afterwards, or a push in between is missed.
            if await self.doorbell.arm(self.broker.keys.poll_order(self.cycle)):
                batch = await self.broker.reserve(self.cycle, credit)
            if not batch:
                await self.doorbell.wait(self.settings.broker_transport_options.polling_interval)
                return
        self.doorbell.busy()
        if len(batch) >= credit:
            await self.doorbell.close()
        self._rotate(batch)
        for reserved in batch:
            self._accept(reserved)

    def _rotate(self, batch: list[Reserved]) -> None:
        if self.settings.broker_transport_options.queue_order_strategy != "round_robin":
            return
        for reserved in batch:
            if self.cycle[-1] != reserved.queue:
                self.cycle.remove(reserved.queue)
                self.cycle.append(reserved.queue)

    def _accept(self, reserved: Reserved) -> None:
        if reserved.dead:
            self.stats.dead_lettered += 1
            log.error("Dead-lettered a message from %r that cannot be tracked (no delivery tag)", reserved.queue)
            return
        try:
            message = decode_task(reserved.raw, self.tz)
        except ProtocolError as exc:
            self._dead_letter(reserved, str(exc))
            return
        except Exception as exc:  # a decoder bug must not stop consumption: keep the message aside
            log.exception("Unexpected error decoding a message from %r", reserved.queue)
            self._dead_letter(reserved, f"undecodable: {type(exc).__name__}: {exc}")
            return
        delivery = Delivery(message, reserved.queue)
        self.holding[message.delivery_tag] = delivery
        self.stats.received += 1
        if log.isEnabledFor(logging.INFO):
            log.info("Task %s[%s] received", message.task, message.id)
        if self._expired(delivery):
            return
        if message.eta is not None and message.eta.timestamp() > time.time():
            self._schedule(delivery)
            return
        self.inflight += 1
        self.ready.append(delivery)
        self._dispatch()

    def _dead_letter(self, reserved: Reserved, reason: str) -> None:
        self.stats.dead_lettered += 1
        tag = _delivery_tag(reserved.raw)
        log.error("Dead-lettering malformed message from %r: %s", reserved.queue, reason)
        record = msgspec.json.encode({"reason": reason, "queue": reserved.queue, "worker": self.options.hostname,
                                      "time": time.time(), "payload": reserved.raw.decode("utf-8", "replace")})
        self._background.add(task := asyncio.create_task(self._dead_letter_async(tag, record)))
        task.add_done_callback(self._background.discard)

    async def _dead_letter_async(self, tag: str, record: bytes) -> None:
        try:
            await self.broker.dead_letter(tag, record)
        except RedisError as exc:
            log.error("Could not dead-letter %s (%s); it stays unacked and returns later", tag, exc)

    def _expired(self, delivery: Delivery) -> bool:
        message = delivery.message
        if message.expires is None or message.expires > datetime.now(UTC):
            return False
        log.info("Discarding expired task %s[%s]", message.task, message.id)
        self.stats.revoked += 1
        self.settler.add([self.metas.revoked(message, delivery.queue, "expired")], [message.delivery_tag])
        return True

    def _schedule(self, delivery: Delivery) -> None:
        assert delivery.message.eta is not None
        delay = max(delivery.message.eta.timestamp() - time.time(), 0.0)
        loop = asyncio.get_running_loop()
        delivery.handle = loop.call_later(delay, self._eta_due, delivery)
        self.scheduled[delivery.message.delivery_tag] = delivery

    def _eta_due(self, delivery: Delivery) -> None:
        self.scheduled.pop(delivery.message.delivery_tag, None)
        if self._stop.is_set() or self._expired(delivery):
            return
        self.inflight += 1
        self.ready.append(delivery)
        self._dispatch()

    # ------------------------------------------------------------------ executing
    def _dispatch(self) -> None:
        while self.ready and len(self.running) < self.options.concurrency and not self._stop.is_set():
            delivery = self.ready.popleft()
            self.running[delivery.message.delivery_tag] = delivery
            delivery.runner = asyncio.create_task(self._execute(delivery))

    async def _execute(self, delivery: Delivery) -> None:
        message, queue = delivery.message, delivery.queue
        try:
            await self._execute_inner(message, queue)
        except asyncio.CancelledError:
            log.warning("Task %s[%s] interrupted by shutdown; it will be requeued", message.task, message.id)
        finally:
            self.running.pop(message.delivery_tag, None)
            self.inflight -= 1
            self._dispatch()
            self._credit.set()

    async def _execute_inner(self, message: TaskMessage, queue: str) -> None:
        tag = message.delivery_tag
        try:
            task = self.app.get_task(message.task)
        except NotRegistered:
            log.error("Received unregistered task of type %r. The message has been acknowledged and a "
                      "NotRegistered FAILURE stored (id %s)", message.task, message.id)
            self.stats.failed += 1
            self.settler.add([self.metas.not_registered(message, queue)], [tag])
            return
        if self._expired(Delivery(message, queue)):
            return
        # Celery <= 5.6 clients send ignore_result=false for every send_task(), so only an explicit true
        # overrides the task's own setting (a 5.3 worker looks at the task alone; 5.7 lets true win too).
        ignore = bool(message.ignore_result) or task.ignore_result
        late = task.acks_late
        early: list[str] = [] if late else [tag]
        started: list[MetaWrite] = [] if ignore or not task.track_started else [self.metas.started(message, queue)]
        if early or started:
            self.settler.add(started, early)
        ctx = build_context(message, queue, self.options.hostname) if task.options.bind else None
        outcome = await run_task(task, message, ctx, self.threads)
        writes = [] if ignore else [self.metas.finished(message, queue, outcome)]
        self.stats.by_task[task.name] = self.stats.by_task.get(task.name, 0) + 1
        if outcome.exc is None:
            self.stats.succeeded += 1
        else:
            self.stats.failed += 1
        log_outcome(task, message, outcome)
        self.settler.add(writes, [tag] if late else [])

    def _forget(self, tags: Sequence[str]) -> None:
        for tag in tags:
            self.holding.pop(tag, None)

    # ------------------------------------------------------------------ upkeep
    async def _maintain(self) -> None:
        """Refresh the leases of everything held, and restore deliveries of dead workers."""
        vt = self.settings.broker_transport_options.visibility_timeout
        refresh_every = max(min(vt / 4, 60.0), 0.05)
        restore_every = max(min(vt / 2, 100.0), 0.1)
        last_restore = time.monotonic()
        while True:
            await asyncio.sleep(refresh_every)
            try:
                await self.broker.refresh_leases(list(self.holding))
                if time.monotonic() - last_restore >= restore_every:
                    last_restore = time.monotonic()
                    await self._restore_visible()
            except RETRYABLE as exc:
                log.warning("Lease refresh failed: %s", exc)

    async def _restore_visible(self) -> None:
        vt = self.settings.broker_transport_options.visibility_timeout
        with contextlib.suppress(*RETRYABLE):
            await self.broker.restore_visible(vt)


def _delivery_tag(raw: bytes) -> str:
    try:
        envelope = msgspec.json.decode(raw)
        return str(envelope["properties"]["delivery_tag"])
    except (msgspec.DecodeError, KeyError, TypeError):
        return ""

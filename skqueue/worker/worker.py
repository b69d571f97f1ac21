"""The worker: reserve -> execute -> settle, with warm and cold shutdown.

Every message this worker holds (waiting for a slot, waiting for its ETA, running, or finished but not
yet acked) stays in kombu's ``unacked`` structures with a lease refreshed well within the visibility
timeout. Shutdown puts whatever was not acked back at the head of its queue.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from skqueue.app import App, Task
from skqueue.broker import telemetry
from skqueue.broker.results import ResultStore
from skqueue.broker.revoked import RevokedStore
from skqueue.broker.transport import RedisBroker, Reserved
from skqueue.broker.wakeup import Doorbell
from skqueue.errors import NotRegistered, ProtocolError
from skqueue.protocol import states
from skqueue.protocol.message import decode_task
from skqueue.worker import revoking, shutdown, upkeep
from skqueue.worker.consumer import Consumer
from skqueue.worker.deadletter import dead_letter
from skqueue.worker.execute import Outcome, Running, build_context, run_task
from skqueue.worker.finish import Canvas, Finisher
from skqueue.worker.observer import Observers
from skqueue.worker.outcomes import MetaFactory, log_outcome
from skqueue.worker.settle import Settlement, Settler
from skqueue.worker.slots import RunningSlots
from skqueue.worker.state import Delivery, Stats, WorkerOptions
from skqueue.worker.threads import ThreadPool

__all__ = ["Delivery", "Stats", "Worker", "WorkerOptions"]

log = logging.getLogger("skqueue.worker")


class Component(Protocol):
    """Something that runs beside the worker (remote control, events, heartbeats) until cancelled."""

    async def run(self, worker: Worker) -> None: ...


class Worker:
    def __init__(self, app: App, broker: RedisBroker, results: ResultStore | None, doorbell: Doorbell,
                 options: WorkerOptions, *, canvas: Canvas | None = None,
                 components: Sequence[Component] = (), clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 rng: random.Random | None = None, slots: RunningSlots | None = None) -> None:
        self.app = app
        self.broker = broker
        self.results = results
        self.options = options
        self.settings = app.conf
        self.tz = app.conf.tz()
        self.metas = MetaFactory(app.conf, options.hostname)
        self.finisher = Finisher(self.metas, options.hostname, canvas, clock)
        self.settler = Settler(broker, results, self._forget,
                               telemetry=lambda pipe, records: telemetry.write(pipe, broker.keys, records),
                               chords=getattr(canvas, "record_chord_parts", None),
                               chords_published=getattr(canvas, "chords_published", None),
                               on_broken=self._settle_failed)
        transport = app.conf.broker_transport_options
        self.consumer = Consumer(broker, doorbell, options.queues, transport.queue_order_strategy,
                                 transport.polling_interval)
        self.revoked_store = RevokedStore(broker.client, broker.keys)
        self.observers = Observers()
        self.components = list(components)
        self.rng = rng or random.Random()
        self.slots = slots
        self.stats = Stats()
        self.started_at = time.time()
        self.threads = ThreadPool(options.concurrency)
        self.holding: dict[str, Delivery] = {}
        self.ready: deque[Delivery] = deque()
        self.scheduled: dict[str, Delivery] = {}
        self.running: dict[str, Delivery] = {}
        self.revoked: set[str] = set()
        self.inflight = 0
        self.max_inflight = max(options.concurrency * options.prefetch_multiplier, 1)
        self._stop = asyncio.Event()
        self.cold = False
        self._quarantine: str | None = None
        self.background_tasks: set[asyncio.Task[Any]] = set()

    @property
    def queues(self) -> list[str]:
        return list(self.options.queues)

    # ------------------------------------------------------------------ lifecycle
    def request_stop(self) -> None:
        """First call: warm shutdown. Second call: cold shutdown (still loses nothing)."""
        if self._stop.is_set():
            if not self.cold:
                log.warning("Cold shutdown (second signal): cancelling running tasks, requeueing them")
            self.cold = True
            for delivery in list(self.running.values()):
                if delivery.runner is not None:
                    delivery.runner.cancel()
        else:
            log.warning("Warm shutdown: no new tasks; finishing running ones (up to %.0fs)",
                        self.options.shutdown_timeout)
        self._stop.set()
        self.consumer.stop()

    async def run(self) -> None:
        await self.broker.declare(self.consumer.cycle)
        await upkeep.load_revoked(self)
        await upkeep.restore_visible(self)
        background = [
            asyncio.create_task(self.settler.run(), name="settle"),
            asyncio.create_task(upkeep.maintain(self), name="maintain"),
            *(asyncio.create_task(component.run(self), name=type(component).__name__)
              for component in self.components),
        ]
        consumer = asyncio.create_task(self.consumer.run(self._credit, self._accept_batch, self._on_empty))
        for task in (consumer, *background):
            task.add_done_callback(self._on_loop_exit)
        try:
            await self._stop.wait()
        finally:
            # Let the consumer finish its current round trip rather than cancel it mid-reservation.
            self.consumer.stop()
            _, busy = await asyncio.wait({consumer}, timeout=2.0)
            if busy:
                consumer.cancel()
                await asyncio.wait({consumer}, timeout=5.0)
            await shutdown.shutdown(self)
            for task in background:
                task.cancel()
            # Bounded: a cancel swallowed inside a client library must not hang the shutdown.
            await asyncio.wait(background, timeout=5.0)
            await self.consumer.close()
            self.threads.shutdown()

    def _on_loop_exit(self, task: asyncio.Task[Any]) -> None:
        """A loop that ends while the worker runs is a bug: stop (a supervisor restarts the process)
        rather than look alive while consuming or settling nothing."""
        if self._stop.is_set() or task.cancelled():
            return
        exc = task.exception()
        log.critical("Worker loop %r stopped unexpectedly (%r): shutting down", task.get_name(), exc,
                     exc_info=exc)
        self.request_stop()

    def _on_empty(self) -> bool:
        if self.options.burst and not self.holding:
            log.info("Queues are empty (burst mode): stopping")
            self._stop.set()
            self.consumer.stop()
            return True
        return False

    def _credit(self) -> int:
        return 0 if self._stop.is_set() else self.max_inflight - self.inflight

    # ------------------------------------------------------------------ receiving
    def _accept_batch(self, batch: list[Reserved]) -> None:
        for reserved in batch:
            self._accept(reserved)

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
        self.observers.task_received(delivery)
        if self.refuse(delivery):
            return
        if message.eta is not None and message.eta.timestamp() > time.time():
            self._schedule(delivery)
            return
        self.inflight += 1
        self.ready.append(delivery)
        self._dispatch()

    def _dead_letter(self, reserved: Reserved, reason: str) -> None:
        self.stats.dead_lettered += 1
        log.error("Dead-lettering malformed message from %r: %s", reserved.queue, reason)
        self._spawn(dead_letter(self.broker, reserved, reason, self.options.hostname))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self.background_tasks.add(task)
        task.add_done_callback(self.background_tasks.discard)

    def refuse(self, delivery: Delivery) -> bool:
        """Settle a delivery that must not run (revoked, or expired) as REVOKED. True if refused."""
        message = delivery.message
        if message.id in self.revoked:
            reason, expired = "revoked", False
        elif message.expires is not None and message.expires <= datetime.now(UTC):
            reason, expired = "expired", True
        else:
            return False
        log.info("Discarding %s task %s[%s]", reason, message.task, message.id)
        self.stats.revoked += 1
        record = self.finisher.record(message, delivery.queue, states.REVOKED, received=delivery.received)
        self.settler.add(self.finisher.revoked(message, delivery.queue, reason, record=record))
        self.observers.task_revoked(delivery, reason, expired=expired, terminated=False)
        return True

    def _schedule(self, delivery: Delivery) -> None:
        assert delivery.message.eta is not None
        delay = max(delivery.message.eta.timestamp() - time.time(), 0.0)
        delivery.timer = asyncio.get_running_loop().call_later(delay, self._eta_due, delivery)
        self.scheduled[delivery.tag] = delivery

    def _eta_due(self, delivery: Delivery) -> None:
        self.scheduled.pop(delivery.tag, None)
        if self._stop.is_set() or self.refuse(delivery):
            return
        self.inflight += 1
        self.ready.append(delivery)
        self._dispatch()

    # ------------------------------------------------------------------ executing
    def _dispatch(self) -> None:
        """Start ready deliveries while there are free slots. A message that was running when a worker
        died (a suspect) runs alone, so if it kills this process too, no bystander is blamed."""
        while self.ready and len(self.running) < self.options.concurrency and not self._stop.is_set():
            if self._quarantine is not None:
                return
            delivery = self.ready[0]
            if delivery.message.crashes:
                if self.running:
                    return
                self._quarantine = delivery.tag
            self.ready.popleft()
            self.running[delivery.tag] = delivery
            delivery.runner = asyncio.create_task(self._execute(delivery))

    async def _execute(self, delivery: Delivery) -> None:
        delivery.running = Running(asyncio.current_task())
        try:
            settlement = await self._run_delivery(delivery)
        except asyncio.CancelledError:
            settlement = self._interrupted(delivery)
        except Exception as exc:  # a bug after the task ran: fail the task rather than strand the message
            log.exception("Settling task %s[%s] failed", delivery.message.task, delivery.message.id)
            settlement = self._broken(delivery, exc)
        finally:
            self.running.pop(delivery.tag, None)
            if self._quarantine == delivery.tag:
                self._quarantine = None
            if self.slots is not None:
                self.slots.release(delivery.slot)
            self.inflight -= 1
            self._dispatch()
            self.consumer.credit_changed.set()
        self.settler.add(settlement)
        self._maybe_recycle()

    def _maybe_recycle(self) -> None:
        limit = self.options.max_tasks_per_child
        if limit and self.stats.processed >= limit and not self._stop.is_set():
            log.warning("Processed %d tasks (--max-tasks-per-child %d): restarting this process",
                        self.stats.processed, limit)
            self.request_stop()

    def _broken(self, delivery: Delivery, exc: Exception) -> Settlement:
        message = delivery.message
        self.stats.failed += 1
        outcome = Outcome(states.FAILURE, None, exc, None, time.time() - (delivery.started or delivery.received))
        write = self.metas.finished(message, delivery.queue, outcome)
        return Settlement(writes=[write], acks=[message.delivery_tag] if message.delivery_tag in self.holding else [])

    def _interrupted(self, delivery: Delivery) -> Settlement:
        message = delivery.message
        if delivery.running is not None and delivery.running.terminated:
            outcome = Outcome(states.REVOKED, runtime=time.time() - delivery.started)
            self.stats.revoked += 1
            self.stats.by_task[message.task] = self.stats.by_task.get(message.task, 0) + 1
            log.warning("Task %s[%s] terminated (revoked)", message.task, message.id)
            self.observers.task_finished(delivery, outcome)
            record = self.finisher.record(message, delivery.queue, states.REVOKED, received=delivery.received,
                                          started=delivery.started, runtime=outcome.runtime)
            return self.finisher.revoked(message, delivery.queue, "terminated",
                                         ack=message.delivery_tag in self.holding, record=record)
        log.warning("Task %s[%s] interrupted by shutdown; it will be requeued", message.task, message.id)
        return Settlement()

    async def _run_delivery(self, delivery: Delivery) -> Settlement:
        message, queue = delivery.message, delivery.queue
        try:
            task = self.app.get_task(message.task)
        except NotRegistered:
            log.error("Received unregistered task of type %r. The message has been acknowledged and a "
                      "NotRegistered FAILURE stored (id %s)", message.task, message.id)
            self.stats.failed += 1
            return self.finisher.not_registered(message, queue, delivery.received)
        if self._refuse_now(delivery):
            return Settlement()
        # Celery <= 5.6 clients send ignore_result=false for every send_task(), so only an explicit true
        # overrides the task's own setting (a 5.3 worker looks at the task alone; 5.7 lets true win too).
        ignore = bool(message.ignore_result) or task.ignore_result
        self._before_run(delivery, task, ignore)
        outcome = await self._run(delivery, task)
        # Settle first: a return value that cannot be stored turns the outcome into a FAILURE there, and
        # the counters, the log and the observers must report what was stored.
        settlement = self.finisher.finished(message, queue, task, outcome, ignore=ignore, ack=task.acks_late)
        settlement.telemetry.append(self.finisher.record(
            message, queue, outcome.state, received=delivery.received, started=delivery.started,
            runtime=outcome.runtime, exc=outcome.exc))
        self._count(task, outcome)
        log_outcome(task, message, outcome)
        self.observers.task_finished(delivery, outcome)
        return settlement

    def _refuse_now(self, delivery: Delivery) -> bool:
        """The last check before running: revoked or expired while it waited for a slot."""
        message = delivery.message
        if message.id in self.revoked or (message.expires is not None and message.expires <= datetime.now(UTC)):
            return self.refuse(delivery)
        return False

    def _before_run(self, delivery: Delivery, task: Task, ignore: bool) -> None:
        message = delivery.message
        early = Settlement()
        if not task.acks_late:
            early.acks.append(message.delivery_tag)
        if task.track_started and not ignore:
            early.writes.append(self.metas.started(message, delivery.queue))
        self.settler.add(early)
        if self.slots is not None:
            delivery.slot = self.slots.acquire(message.delivery_tag)
        delivery.started = time.time()
        self.observers.task_started(delivery)

    async def _run(self, delivery: Delivery, task: Task) -> Outcome:
        message = delivery.message
        needs_ctx = task.options.bind or bool(task.options.autoretry_for)
        ctx = build_context(task, message, delivery.queue, self.options.hostname) if needs_ctx else None
        return await run_task(task, message, ctx, self.threads, running=delivery.running, rng=self.rng)

    def _count(self, task: Task, outcome: Outcome) -> None:
        self.stats.by_task[task.name] = self.stats.by_task.get(task.name, 0) + 1
        if outcome.state == states.SUCCESS:
            self.stats.succeeded += 1
        elif outcome.state == states.RETRY:
            self.stats.retried += 1
        elif outcome.state == states.REVOKED:
            self.stats.revoked += 1
        else:
            self.stats.failed += 1

    def _settle_failed(self, tags: Sequence[str]) -> None:
        held = [self.holding.pop(tag).held() for tag in tags if tag in self.holding]
        if held:
            self._spawn(shutdown.requeue_safely(self.broker, held))

    def _forget(self, tags: Sequence[str]) -> None:
        for tag in tags:
            self.holding.pop(tag, None)

    # ------------------------------------------------------------------ revoking
    async def revoke(self, task_ids: Iterable[str], *, terminate: bool = False) -> list[str]:
        """Revoke ``task_ids``: remember them (in Redis too), settle held ones that have not started as
        REVOKED, stop running ones when ``terminate``, and store REVOKED for tasks that have not run yet
        anywhere (as Celery >= 5.6 does). Returns the ids this worker acted on."""
        ids = [i for i in dict.fromkeys(task_ids) if i]
        self.revoked.update(ids)
        await self.revoked_store.add(ids)
        # As Celery: a task running here is left to finish (or to record its own termination), so a
        # waiting client never sees a "revoked" that a "terminated" or a result then replaces.
        running = {d.message.id for d in self.running.values()}
        acted = [d.message.id for d in revoking.revoke_held(self, set(ids), terminate)]
        await revoking.store_revoked_pending(self, [i for i in ids if i not in running])
        return acted

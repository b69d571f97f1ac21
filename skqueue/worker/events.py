"""Celery events from an skqueue worker: what Flower, celery-exporter and ``celery events`` watch.

Worker events (``worker-online``, ``worker-heartbeat`` every ``freq`` seconds, ``worker-offline``) are
always sent unless heartbeats are turned off. Task events are sent only when enabled (``-E``,
``worker_send_task_events`` or the ``enable_events`` control command); they are buffered and published
once per event-loop tick as ``task.multi`` messages of at most 24 events, in one pipeline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import platform
import signal
from collections import deque
from typing import TYPE_CHECKING, Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from skqueue import __version__
from skqueue.broker.keys import EVENT_EXCHANGE, BrokerKeys
from skqueue.broker.pubsub import publish_many, raise_if_cancelled
from skqueue.protocol import states
from skqueue.protocol.clock import LamportClock
from skqueue.protocol.events import (
    BUFFER_LIMIT,
    SW_IDENT,
    Event,
    batches,
    encode_event,
    make_event,
    routing_key,
    safe_repr,
    task_received_fields,
)

if TYPE_CHECKING:
    from skqueue.worker.execute import Outcome
    from skqueue.worker.state import Delivery
    from skqueue.worker.worker import Worker

log = logging.getLogger("skqueue.events")

MAX_BUFFERED = 10_000
CLOSE_TIMEOUT = 2.0
REDIS_ERRORS = (RedisError, OSError)
SOFTWARE = {"sw_ident": SW_IDENT, "sw_ver": __version__, "sw_sys": platform.system()}


class EventDispatcher:
    """Stamps events (hostname, pid, Lamport clock) and publishes them on the event exchange."""

    def __init__(self, hostname: str, clock: LamportClock, *, task_events: bool = False,
                 exchange: str = EVENT_EXCHANGE, buffer_limit: int = BUFFER_LIMIT) -> None:
        self.hostname = hostname
        self.clock = clock
        self.task_events = task_events
        self.exchange = exchange
        self.buffer_limit = buffer_limit
        self.pid = os.getpid()
        self.client: Redis | None = None
        self.keys: BrokerKeys | None = None
        # Bounded: if publishing stalls, the oldest task events are dropped rather than memory growing.
        self._buffer: deque[Event] = deque(maxlen=MAX_BUFFERED)
        self._wake = asyncio.Event()
        self._closing = False

    def connect(self, client: Redis, keys: BrokerKeys) -> None:
        """Where to publish (the worker's broker); until then events are built but not sent."""
        self.client, self.keys = client, keys

    def event(self, event_type: str, **fields: Any) -> Event:
        """A stamped event (this forwards the Lamport clock)."""
        return make_event(event_type, hostname=self.hostname, pid=self.pid, clock=self.clock.forward(), **fields)

    def send_task(self, event_type: str, **fields: Any) -> None:
        """Buffer a task event; the flusher publishes it on the next loop tick. Never blocks."""
        self._buffer.append(self.event(event_type, **fields))
        self._wake.set()

    async def send(self, event_type: str, **fields: Any) -> None:
        """Publish one event now (worker events are never buffered)."""
        await self._publish([(routing_key(event_type), self.event(event_type, **fields))])

    async def flush(self) -> None:
        """Publish everything buffered as ``task.multi`` batches, in one round trip."""
        if not self._buffer:
            return
        events = list(self._buffer)
        self._buffer.clear()
        await self._publish([("task.multi", batch) for batch in batches(events, self.buffer_limit)])

    async def _publish(self, items: list[tuple[str, Event | list[Event]]]) -> None:
        if self.client is None or self.keys is None:
            return
        messages = [(self.keys.event_channel(key, self.exchange),
                     encode_event(body, hostname=self.hostname, exchange=self.exchange, key=key))
                    for key, body in items]
        await publish_many(self.client, messages)

    async def run_flusher(self) -> None:
        """Flush whenever events were buffered; returns after :meth:`close` once the buffer is empty."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self.flush()
            except REDIS_ERRORS as exc:
                log.warning("Could not publish task events (%s); they were dropped", exc)
            if self._closing:
                return
            raise_if_cancelled()

    def close(self) -> None:
        """Ask the flusher to publish what is left and stop."""
        self._closing = True
        self._wake.set()


class TaskEvents:
    """The worker observer that turns delivery milestones into ``task-*`` events."""

    def __init__(self, dispatcher: EventDispatcher) -> None:
        self.dispatcher = dispatcher

    def task_received(self, delivery: Delivery) -> None:
        if self.dispatcher.task_events:
            self.dispatcher.send_task("task-received", **task_received_fields(delivery.message))

    def task_started(self, delivery: Delivery) -> None:
        if self.dispatcher.task_events:
            self.dispatcher.send_task("task-started", uuid=delivery.message.id)

    def task_finished(self, delivery: Delivery, outcome: Outcome) -> None:
        if not self.dispatcher.task_events:
            return
        uuid = delivery.message.id
        if outcome.state == states.SUCCESS:
            self.dispatcher.send_task("task-succeeded", uuid=uuid, result=safe_repr(outcome.value),
                                      runtime=outcome.runtime)
        elif outcome.state == states.REVOKED:
            self.dispatcher.send_task("task-revoked", uuid=uuid, terminated=True, signum=int(signal.SIGTERM),
                                      expired=False)
        else:
            kind = "task-retried" if outcome.state == states.RETRY else "task-failed"
            self.dispatcher.send_task(kind, uuid=uuid, exception=safe_repr(outcome.exc),
                                      traceback=outcome.traceback or "")

    def task_revoked(self, delivery: Delivery, reason: str, *, expired: bool, terminated: bool) -> None:
        if self.dispatcher.task_events:
            self.dispatcher.send_task("task-revoked", uuid=delivery.message.id, terminated=terminated,
                                      signum=None, expired=expired)

    def task_rejected(self, delivery: Delivery, *, requeue: bool) -> None:
        if self.dispatcher.task_events:
            self.dispatcher.send_task("task-rejected", uuid=delivery.message.id, requeue=requeue)


def loadavg() -> list[float]:
    """The 1, 5 and 15 minute load averages (zeros where the platform has none)."""
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return [0.0, 0.0, 0.0]


class WorkerEvents:
    """A worker component: registers :class:`TaskEvents`, runs the task-event flusher, and (unless
    ``heartbeat`` is off) sends ``worker-online``, a ``worker-heartbeat`` every ``interval`` seconds and
    ``worker-offline`` at shutdown."""

    def __init__(self, dispatcher: EventDispatcher, *, heartbeat: bool = True, interval: float = 2.0) -> None:
        self.dispatcher = dispatcher
        self.heartbeat = heartbeat
        self.interval = interval
        self.ready = False
        self._beat_now = asyncio.Event()

    def beat_now(self) -> None:
        """Send a heartbeat at once (the ``heartbeat`` control command, sent by event receivers)."""
        self._beat_now.set()

    async def run(self, worker: Worker) -> None:
        self.dispatcher.connect(worker.broker.client, worker.broker.keys)
        worker.observers.add(TaskEvents(self.dispatcher))
        flusher = asyncio.create_task(self.dispatcher.run_flusher(), name="event-flusher")
        try:
            if self.heartbeat:
                await self._send(worker, "worker-online")
            self.ready = True
            await self._beat(worker)
        finally:
            await self._close(worker, flusher)

    async def _beat(self, worker: Worker) -> None:
        while True:
            raise_if_cancelled()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._beat_now.wait(), self.interval)
            self._beat_now.clear()
            if self.heartbeat:
                await self._send(worker, "worker-heartbeat")

    async def _close(self, worker: Worker, flusher: asyncio.Task[None]) -> None:
        self.dispatcher.close()
        _, pending = await asyncio.wait({flusher}, timeout=CLOSE_TIMEOUT)
        for task in pending:
            task.cancel()
        if self.heartbeat:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._send(worker, "worker-offline"), CLOSE_TIMEOUT)

    async def _send(self, worker: Worker, event_type: str) -> None:
        try:
            await self.dispatcher.send(event_type, freq=self.interval, active=len(worker.running),
                                       processed=worker.stats.processed, loadavg=loadavg(), **SOFTWARE)
        except REDIS_ERRORS as exc:
            log.debug("Could not send %s (%s)", event_type, exc)

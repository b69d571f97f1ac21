"""From what happened to a delivery to the Redis effects Celery clients and workers expect.

The canvas (callbacks, chains, errbacks, chords) plugs in through :class:`Canvas`; without one, none of
those are followed up. A canvas may also have the settlement's chord stage hooks: ``async
record_chord_parts(items) -> list[Publish]`` and ``async chords_published()`` (see :mod:`.settle`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from skqueue.app import Task
from skqueue.broker.results import MetaWrite
from skqueue.broker.telemetry import TaskRecord
from skqueue.broker.transport import Publish
from skqueue.errors import Retry
from skqueue.protocol import states
from skqueue.protocol.message import TaskMessage
from skqueue.protocol.results import child_tuple
from skqueue.worker.execute import Outcome
from skqueue.worker.outcomes import MetaFactory
from skqueue.worker.retry import retry_message
from skqueue.worker.settle import Guarded, Settlement

log = logging.getLogger("skqueue.worker")


class Canvas(Protocol):
    """Workflow follow-ups of a finished task."""

    def on_success(self, message: TaskMessage, queue: str,
                   value: Any) -> tuple[list[Publish], list[Any], list[Any]]:
        """Messages to publish (callbacks, the next chain step), the ``children`` they make, and work for
        the chord stage (chords to start). Raises ``TypeError`` if ``value`` cannot be sent as JSON."""

    def on_failure(self, message: TaskMessage, queue: str, failure: MetaWrite,
                   exc: BaseException) -> tuple[list[Publish], list[MetaWrite]]:
        """Errback messages to publish and extra metas to store (the rest of a failed chain)."""

    def chord_part(self, message: TaskMessage, state: str, result: Any) -> Any | None:
        """The chord bookkeeping for a finished header task, or None if it is not in a chord."""


class NoCanvas:
    def on_success(self, message: TaskMessage, queue: str,
                   value: Any) -> tuple[list[Publish], list[Any], list[Any]]:
        return [], [], []

    def on_failure(self, message: TaskMessage, queue: str, failure: MetaWrite,
                   exc: BaseException) -> tuple[list[Publish], list[MetaWrite]]:
        return [], []

    def chord_part(self, message: TaskMessage, state: str, result: Any) -> Any | None:
        return None


class Finisher:
    """Builds the :class:`Settlement` of a delivery. ``clock`` is injectable for retry timings."""

    def __init__(self, metas: MetaFactory, hostname: str, canvas: Canvas | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.metas = metas
        self.hostname = hostname
        self.canvas: Canvas = canvas or NoCanvas()
        self.clock = clock

    def record(self, message: TaskMessage, queue: str, state: str, *, received: float, started: float = 0.0,
               runtime: float = 0.0, exc: BaseException | None = None) -> TaskRecord:
        return TaskRecord(message.id, message.task, message.routing_key or queue, state, runtime, received, started,
                          time.time(), self.hostname, message.retries, type(exc).__name__ if exc else "")

    def finished(self, message: TaskMessage, queue: str, task: Task, outcome: Outcome, *, ignore: bool,
                 ack: bool, record: TaskRecord | None = None) -> Settlement:
        acks = [message.delivery_tag] if ack else []
        if outcome.state == states.RETRY:
            settlement = self._retry(message, queue, outcome, ignore)
        elif outcome.state == states.SUCCESS:
            settlement = self._success(message, queue, outcome, ignore)
        elif outcome.state == states.REVOKED:
            settlement = self.revoked(message, queue, "terminated", ack=False, record=None)
        else:
            settlement = self._failure(message, queue, outcome, ignore)
        settlement.acks.extend(acks)
        if record is not None:
            settlement.telemetry.append(record)
        return settlement

    def _success(self, message: TaskMessage, queue: str, outcome: Outcome, ignore: bool) -> Settlement:
        try:
            publishes, children, chord_work = self.canvas.on_success(message, queue, outcome.value)
        except TypeError as exc:  # the value cannot be sent on as JSON: the task fails with that
            outcome.state, outcome.exc, outcome.traceback = states.FAILURE, exc, None
            return self._failure(message, queue, outcome, ignore)
        settlement = Settlement()
        if not ignore:
            write = self.metas.finished(message, queue, outcome, children=children)
            if outcome.state != states.SUCCESS:  # the value could not be stored: metas turned it into FAILURE
                return self._failure(message, queue, outcome, ignore)
            settlement.writes.append(write)
        if message.redelivered:  # an earlier copy may have succeeded, and then its follow-ups went out
            settlement.guarded.append(Guarded(message.id, publishes, chord_work))
        else:
            settlement.publishes.extend(publishes)
            settlement.chord_parts.extend(chord_work)
        part = self.canvas.chord_part(message, states.SUCCESS, outcome.value)
        if part is not None:
            settlement.chord_parts.append(part)
        return settlement

    def _failure(self, message: TaskMessage, queue: str, outcome: Outcome, ignore: bool) -> Settlement:
        assert outcome.exc is not None
        write = self.metas.finished(message, queue, outcome)
        publishes, chain_writes = self.canvas.on_failure(message, queue, write, outcome.exc)
        settlement = Settlement(publishes=publishes, writes=([] if ignore else [write]) + chain_writes)
        part = self.canvas.chord_part(message, states.FAILURE, outcome.exc)
        if part is not None:
            settlement.chord_parts.append(part)
        return settlement

    def _retry(self, message: TaskMessage, queue: str, outcome: Outcome, ignore: bool) -> Settlement:
        retry = outcome.exc
        assert isinstance(retry, Retry)
        publish = retry_message(message, queue, retry, self.clock(), self.hostname)
        settlement = Settlement(publishes=[publish])
        if not ignore:
            settlement.writes.append(self.metas.retry(message, queue, retry, outcome.traceback,
                                                      children=[child_tuple(message.id)]))
        return settlement

    def not_registered(self, message: TaskMessage, queue: str, received: float) -> Settlement:
        record = self.record(message, queue, states.FAILURE, received=received)
        return Settlement(writes=[self.metas.not_registered(message, queue)], acks=[message.delivery_tag],
                          telemetry=[record])

    def revoked(self, message: TaskMessage, queue: str, reason: str, *, ack: bool = True,
                record: TaskRecord | None = None) -> Settlement:
        settlement = Settlement(writes=[self.metas.revoked(message, queue, reason)])
        part = self.canvas.chord_part(message, states.REVOKED, reason)
        if part is not None:
            settlement.chord_parts.append(part)
        if ack:
            settlement.acks.append(message.delivery_tag)
        if record is not None:
            settlement.telemetry.append(record)
        return settlement

"""Celery's canvas on the worker side: the :class:`~skqueue.worker.finish.Canvas` the worker runs with.

* success: link callbacks and the next chain step are published (before the SUCCESS meta is stored, so its
  ``children`` can list them), with the result as first argument;
* failure: errbacks are run inline (tasks of this app taking ``(request, exc, traceback)``) or published as
  a group with the failed task's id as first argument; the rest of the chain is stored as failed;
* chords: every finished header task reports to its chord (see :mod:`skqueue.broker.chords`); the report
  that completes the chord publishes the body with the header results, or stores the body's FAILURE
  (``ChordError``) if a header task failed. Chords applied by the worker (a chord in a chain or a callback)
  get their size stored before their header tasks are published.

Follow-ups inherit the finished task's priority unless their signature sets one.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec

from skqueue.app import App, Task
from skqueue.broker.chords import ChordStore, Claim, PartReturn
from skqueue.broker.results import MetaWrite, ResultStore
from skqueue.broker.transport import Publish
from skqueue.config import Settings
from skqueue.errors import ChordError, ProtocolError
from skqueue.protocol import results, states
from skqueue.protocol.canvas import Applied, ChordStart, apply, apply_group, chain_steps, failed_chain
from skqueue.protocol.message import Outgoing, TaskMessage, encode_task
from skqueue.protocol.signature import (
    CHAIN,
    GROUP,
    Lineage,
    Signature,
    chord_member,
    chord_results,
    new_id,
    signatures,
)
from skqueue.worker.context import TaskContext
from skqueue.worker.execute import build_context
from skqueue.worker.settle import RETRYABLE

log = logging.getLogger("skqueue.worker")


@dataclass(slots=True, eq=False)
class ChordPart:
    """A finished header task reporting to its chord. ``members`` remembers what recording it returned,
    so a settlement retried after a failure does not count it twice or lose a completion."""

    part: PartReturn
    body: Signature
    lineage: Lineage
    recorded: bool = False
    members: list[bytes] | None = None


@dataclass(frozen=True, slots=True)
class ChordLaunch:
    """A chord the worker applies: its size is stored before its header messages are published."""

    group_id: str
    size: int
    headers: list[Publish]


def chord_store(settings: Settings, results_store: ResultStore) -> ChordStore:
    """The chord bookkeeping for ``settings`` (protocol, ordering and expiry as the clients use them)."""
    expires = settings.result_expires
    chord_expires = settings.result_chord_expires or expires
    group_expires = max(chord_expires, expires) if chord_expires and expires else 0
    ordered = bool(settings.result_backend_transport_options.get("result_chord_ordered", True))
    return ChordStore(results_store.client, results_store.keys, ordered=ordered, expires=chord_expires,
                      group_expires=group_expires,
                      protocol=settings.skqueue_chord_protocol)


class CeleryCanvas:
    """Callbacks, chains, errbacks and chords for a worker of ``app``; ``results`` None disables chords."""

    def __init__(self, app: App, results_store: ResultStore | None, hostname: str, *,
                 chords: ChordStore | None = None, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.app = app
        self.results = results_store
        self.hostname = hostname
        self.chords = chords or (chord_store(app.conf, results_store) if results_store is not None else None)
        self.clock = clock
        self._claims: list[Claim] = []
        self._inline: set[asyncio.Future[Any]] = set()

    # ------------------------------------------------------------------ success
    def on_success(self, message: TaskMessage, queue: str,
                   value: Any) -> tuple[list[Publish], list[Any], list[Any]]:
        """Callbacks and the next chain step; chords among them are returned for the chord stage.
        Raises ``TypeError`` if ``value`` cannot be sent as JSON."""
        try:
            applied = self._follow_ups(message, value)
        except (ValueError, TypeError) as exc:  # a malformed signature: there is nothing sensible to send
            log.error("Task %s[%s]: cannot apply its callbacks/chain: %r", message.task, message.id, exc)
            return [], [], []
        # Encoded here, chord headers included, so an unencodable value fails the task, not the settlement.
        return self._encoded(applied.messages), applied.children, self._launches(applied.chords)

    def _follow_ups(self, message: TaskMessage, value: Any) -> Applied:
        lineage = self.lineage(message)
        applied = Applied()
        callbacks = signatures(message.embed.callbacks)
        if len(callbacks) == 1:
            applied.extend(apply(callbacks[0], [value], lineage))
        elif callbacks:  # several: group signatures on their own, the others together as one group
            for group in (sig for sig in callbacks if sig.subtask_type == GROUP):
                applied.extend(apply(group, [value], lineage))
            tasks = [sig for sig in callbacks if sig.subtask_type != GROUP]
            if tasks:
                applied.extend(apply_group(tasks, [value], lineage))
        chain = signatures(message.embed.chain)
        if chain:
            rest = [sig.as_dict() for sig in chain[:-1]]
            applied.extend(apply(chain[-1], [value], lineage, {"chain": rest or None}))
        return applied

    def lineage(self, message: TaskMessage) -> Lineage:
        """Follow-ups of ``message``: it is their parent, its root is theirs."""
        return Lineage(message.id, message.root_id or message.id, message.priority, self.hostname, self.clock(),
                       self.app.queue_for)

    def _encoded(self, messages: Iterable[Outgoing]) -> list[Publish]:
        return [self._publish(out) for out in messages]

    def _launches(self, starts: Iterable[ChordStart]) -> list[ChordLaunch]:
        return [ChordLaunch(start.group_id, start.size, self._encoded(start.headers)) for start in starts]

    def _publish(self, out: Outgoing) -> Publish:
        expiration = None
        if out.expires is not None:
            expiration = int((out.expires - self.clock()).total_seconds() * 1000)
        return Publish(out.queue, out.priority, encode_task(out, expiration_ms=expiration))

    # ------------------------------------------------------------------ failure
    def on_failure(self, message: TaskMessage, queue: str, failure: MetaWrite,
                   exc: BaseException) -> tuple[list[Publish], list[MetaWrite]]:
        """Errbacks, and the same FAILURE for every remaining chain step (so waiting clients wake up)."""
        writes = [failed_copy(failure, step) for step in _safe(failed_chain, message.embed.chain)]
        errbacks = _safe(signatures, message.embed.errbacks)
        if not errbacks:
            return [], writes
        task = self.app.tasks.get(message.task)
        request = build_context(task, message, queue, self.hostname) if task is not None else None
        try:
            publishes = self.errbacks(errbacks, self.lineage(message), exc, _traceback_of(failure), request)
        except (ValueError, TypeError) as error:  # a malformed errback signature
            log.error("Task %s[%s]: cannot apply its errbacks: %r", message.task, message.id, error)
            publishes = []
        return publishes, writes

    def errbacks(self, errbacks: Sequence[Signature], lineage: Lineage, exc: BaseException,
                 traceback: str | None, request: TaskContext | None) -> list[Publish]:
        """Run the new-style errbacks this app owns; publish the others as one group with the failed
        task's id (``lineage.parent_id``) as first argument."""
        published = []
        for sig in errbacks:
            if not (request is not None and self._run_inline(sig, request, exc, traceback)):
                published.append(sig)
        if not published:
            return []
        applied = apply_group(published, [lineage.parent_id], lineage)
        return [self._publish(out) for out in applied.messages]

    def _run_inline(self, sig: Signature, request: TaskContext, exc: BaseException, traceback: str | None) -> bool:
        task = self.app.tasks.get(sig.task)
        if task is None or task.options.bind or not _takes_request(task, sig):
            return False
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        call = functools.partial(task.fn, request, exc, traceback, *sig.args, **sig.kwargs)
        future: asyncio.Future[Any] = (asyncio.ensure_future(call()) if task.is_async
                                       else loop.run_in_executor(None, call))
        self._inline.add(future)
        future.add_done_callback(functools.partial(self._inline_done, sig.task))
        return True

    def _inline_done(self, name: str, future: asyncio.Future[Any]) -> None:
        self._inline.discard(future)
        if not future.cancelled() and future.exception() is not None:
            log.error("Errback %s raised: %r", name, future.exception())

    # ------------------------------------------------------------------ chords
    def chord_part(self, message: TaskMessage, state: str, result: Any) -> Any | None:
        """The report of a finished header task, plus (on failure) those of chain steps that belonged to
        a chord and will now never run. None when there is nothing to report."""
        try:
            found = self._parts(message, state, result)
        except ValueError as exc:  # ProtocolError included: a malformed chord signature
            log.error("Task %s[%s]: cannot report to its chord: %s", message.task, message.id, exc)
            return None
        if found and self.chords is None:
            log.error("Task %s[%s] is part of a chord but no result backend is configured", message.task,
                      message.id)
            return None
        return found or None

    def _parts(self, message: TaskMessage, state: str, result: Any) -> list[ChordPart]:
        found: list[ChordPart] = []
        if message.embed.chord and message.group:
            found.append(self._part(message.id, state, result, group_id=message.group,
                                    index=message.group_index, body=message.embed.chord,
                                    lineage=self.lineage(message), delivery=message.delivery_tag))
        if state == states.FAILURE and message.embed.chain:
            lineage = self.lineage(message)
            for step in _safe(failed_chain, message.embed.chain):
                group_id, body = step.options.get("group_id"), step.options.get("chord")
                if group_id and body and step.id:
                    found.append(self._part(step.id, state, result, group_id=str(group_id),
                                            index=step.options.get("group_index"), body=body,
                                            lineage=lineage.child_of(step.id), delivery=message.delivery_tag))
        return found

    def _part(self, task_id: str, state: str, result: Any, *, group_id: str, index: Any, body: Any,
              lineage: Lineage, delivery: str) -> ChordPart:
        try:
            member = chord_member(task_id, state, _encoded(state, result))
        except TypeError as exc:  # the value was never storable: report it as the task's failure
            member = chord_member(task_id, states.FAILURE, _encoded(states.FAILURE, exc))
        # The claim names the delivery: redelivered after its worker died mid-publish, it owns the claim again.
        token = f"{delivery}:{task_id}" if delivery else new_id()
        part = PartReturn(group_id, task_id, None if index is None else int(index), member, token)
        return ChordPart(part, Signature.parse(body), lineage)

    async def record_chord_parts(self, items: Sequence[Any]) -> list[Publish]:
        """The chord stage of a settlement: start chords (store their size), count finished header tasks,
        and return the messages that became due (header tasks, chord bodies, errbacks)."""
        parts, starts = _split(items)
        publishes = await self._start(starts)
        todo = [part for part in parts if not part.recorded]
        if todo and self.chords is not None:
            completed = await self.chords.record([p.part for p in todo])
            for part, members in zip(todo, completed, strict=True):
                part.recorded, part.members = True, members
        for part in parts:
            if part.members is not None:
                publishes.extend(await self._complete_safely(part))
        return publishes

    async def _complete_safely(self, part: ChordPart) -> list[Publish]:
        try:
            return await self._complete(part)
        except RETRYABLE:
            raise
        except Exception:  # a bug must not stop the settlement of everything else
            log.exception("Chord %s: could not complete", part.part.group_id)
            return []

    async def chords_published(self) -> None:
        """Called once the messages :meth:`record_chord_parts` returned are published: release the claims
        of the chords they completed."""
        if self._claims and self.chords is not None:
            await self.chords.release(self._claims)
        self._claims.clear()

    async def _start(self, launches: Sequence[ChordLaunch]) -> list[Publish]:
        if not launches:
            return []
        if self.chords is None:
            log.error("Cannot start %d chord(s) without a result backend: their bodies will not run",
                      len(launches))
        else:
            await self.chords.set_sizes([(launch.group_id, launch.size) for launch in launches])
        return [publish for launch in launches for publish in launch.headers]

    async def _complete(self, part: ChordPart) -> list[Publish]:
        assert part.members is not None and self.chords is not None
        if self.chords.claims:
            self._claims.append(Claim(part.part.group_id, part.part.token))
        values, error = chord_results(part.members)
        body = part.body
        lineage = part.lineage.child_of(part.lineage.parent_id, body.options.get("root_id"))
        if error is not None:
            log.error("Chord %s: %s", part.part.group_id, error)
            return await self._chord_failed(body, error, lineage)
        try:
            applied = apply(body, [values], lineage)
            publishes, launches = self._encoded(applied.messages), self._launches(applied.chords)
        except (ValueError, TypeError) as exc:  # a malformed body: fail it as Celery does ("Callback error")
            return await self._chord_failed(body, f"Callback error: {exc!r}", lineage)
        return await self._start(launches) + publishes

    async def _chord_failed(self, body: Signature, error: str, lineage: Lineage) -> list[Publish]:
        """The body never runs: store its FAILURE (for each step of a chain body, and for the rest of an
        enclosing chain, so whoever waits on any of them wakes up), and call its errbacks."""
        exc = ChordError(error)
        targets = _failure_targets(body)
        first = targets[0]
        assert first.id is not None
        meta = results.failure(first.id, results.encode_exception(exc), f"celery.exceptions.ChordError: {error}\n")
        template = MetaWrite(first.id, meta.to_json(), self.app.conf.result_expires)
        if self.results is not None:
            await self.results.store([failed_copy(template, step) for step in targets])
        # Celery calls them with a made-up request for the body: its own id is the root.
        errback_lineage = lineage.child_of(first.id, str(body.options.get("root_id") or first.id))
        group_id = first.options.get("group_id")
        request = TaskContext(id=first.id, name=body.task, args=list(body.args), kwargs=dict(body.kwargs),
                              group=str(group_id) if group_id else None, hostname=self.hostname)
        return self.errbacks(_safe(signatures, body.options.get("link_error")), errback_lineage, exc, None, request)


def _failure_targets(body: Signature) -> list[Signature]:
    own = chain_steps(body) if body.subtask_type == CHAIN else [body.frozen()]
    return [step for step in own if step.id] + _safe(failed_chain, body.options.get("chain"))


def failed_copy(failure: MetaWrite, step: Signature) -> MetaWrite:
    """``failure``'s meta stored for a chain step that will never run (its id, its group)."""
    assert step.id is not None
    meta = msgspec.json.decode(failure.meta)
    copy: dict[str, Any] = {key: meta.get(key) for key in ("status", "result", "traceback")}
    copy.update(children=[], date_done=meta.get("date_done"))
    if step.options.get("group_id"):
        copy["group_id"] = step.options["group_id"]
    copy["task_id"] = step.id
    return MetaWrite(step.id, msgspec.json.encode(copy), failure.ttl)


def _traceback_of(failure: MetaWrite) -> str | None:
    value = msgspec.json.decode(failure.meta).get("traceback")
    return value if isinstance(value, str) else None


def _encoded(state: str, result: Any) -> Any:
    """A header task's result as Celery's ``encode_result`` stores it in ``.j``."""
    if state == states.SUCCESS:
        return result
    if isinstance(result, BaseException):
        return results.encode_exception(result).as_dict()
    return results.EncodedException("TaskRevokedError", [str(result)], "celery.exceptions").as_dict()


def _takes_request(task: Task, sig: Signature) -> bool:
    """Celery's test for a new-style errback: more than one positional parameter left once the
    signature's own arguments are bound."""
    try:
        spec = inspect.getfullargspec(task.fn)
    except TypeError:
        return False
    if spec.varargs:
        return True
    free = [name for name in spec.args if name not in sig.kwargs]
    bound = 0 if sig.immutable else len(sig.args)
    return len(free) - bound > 1


def _split(items: Iterable[Any]) -> tuple[list[ChordPart], list[ChordLaunch]]:
    parts: list[ChordPart] = []
    launches: list[ChordLaunch] = []
    for item in items:
        for one in item if isinstance(item, list | tuple) else [item]:
            if isinstance(one, ChordPart):
                parts.append(one)
            elif isinstance(one, ChordLaunch):
                launches.append(one)
    return parts, launches


def _safe(read: Callable[[Any], list[Signature]], value: Any) -> list[Signature]:
    try:
        return read(value)
    except ProtocolError as exc:
        log.error("Ignoring a malformed canvas signature: %s", exc)
        return []

"""Answering Celery's remote control: ``celery inspect``/``control``/``status``, Flower, celery-exporter.

:class:`RemoteControl` is a worker component: it subscribes to the pidbox broadcast channel, runs the
commands addressed to this node one at a time, and pushes each reply to the client's reply queue.
Commands follow ``celery/worker/control.py``: same names, arguments and reply shapes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

from skqueue.broker.keys import CONTROL_EXCHANGE
from skqueue.broker.mailbox import Mailbox
from skqueue.broker.pubsub import Subscription, raise_if_cancelled
from skqueue.errors import ProtocolError
from skqueue.protocol.clock import LamportClock
from skqueue.protocol.control import ControlRequest, decode_request, encode_reply
from skqueue.worker import inspect

if TYPE_CHECKING:
    from skqueue.worker.events import WorkerEvents
    from skqueue.worker.worker import Worker

log = logging.getLogger("skqueue.control")

REDIS_ERRORS = (RedisError, OSError)
UNBIND_TIMEOUT = 2.0

# Celery commands that make no sense for skqueue (prefork pool, autoscaler, rate limits, consumer changes):
# answered with an error instead of kombu's bare KeyError.
UNSUPPORTED = frozenset({
    "rate_limit", "time_limit", "add_consumer", "cancel_consumer", "pool_grow", "pool_shrink", "pool_restart",
    "autoscale", "election", "memsample", "memdump", "objgraph", "revoke_by_stamped_headers",
})


@dataclass(slots=True)
class ControlContext:
    """What command handlers work on."""

    worker: Worker
    clock: LamportClock
    events: WorkerEvents | None = None
    after_reply: list[Callable[[], None]] = field(default_factory=list)


Handler = Callable[[ControlContext, dict[str, Any]], Awaitable[Any]]
COMMANDS: dict[str, Handler] = {}


def command(*names: str) -> Callable[[Handler], Handler]:
    """Register a handler under Celery's command name (and its aliases)."""

    def register(handler: Handler) -> Handler:
        for name in names:
            COMMANDS[name] = handler
        return handler

    return register


def ok(value: Any) -> dict[str, Any]:
    """A success reply, as Celery's ``celery.worker.control.ok``."""
    return {"ok": value}


def nok(value: Any) -> dict[str, Any]:
    """An error reply (``celery inspect`` prints it as ERROR)."""
    return {"error": value}


async def dispatch(ctx: ControlContext, request: ControlRequest) -> Any:
    """Run a command; failures become ``{"error": repr(exc)}`` replies as in kombu's ``Node.dispatch``."""
    handler = COMMANDS.get(request.method)
    if handler is None:
        if request.method in UNSUPPORTED:
            return nok(f"{request.method} is not supported by skqueue")
        return nok(repr(KeyError(request.method)))
    try:
        return await handler(ctx, request.arguments)
    except Exception as exc:
        log.exception("Remote control command %r failed", request.method)
        return nok(repr(exc))


# ---------------------------------------------------------------------------- inspect commands
@command("ping")
async def ping(ctx: ControlContext, args: dict[str, Any]) -> Any:
    """Ping worker(s)."""
    return ok("pong")


@command("stats")
async def stats(ctx: ControlContext, args: dict[str, Any]) -> Any:
    """Request worker statistics/information."""
    return inspect.stats(ctx.worker, ctx.clock)


@command("active", "dump_active")
async def active(ctx: ControlContext, args: dict[str, Any]) -> Any:
    """List of tasks currently being executed."""
    return inspect.active(ctx.worker)


@command("reserved", "dump_reserved")
async def reserved(ctx: ControlContext, args: dict[str, Any]) -> Any:
    """List of received tasks waiting for a free slot."""
    return inspect.reserved(ctx.worker)


@command("scheduled", "dump_schedule")
async def scheduled(ctx: ControlContext, args: dict[str, Any]) -> Any:
    """List of currently scheduled ETA/countdown tasks."""
    return inspect.scheduled(ctx.worker)


@command("registered", "dump_tasks")
async def registered(ctx: ControlContext, args: dict[str, Any]) -> Any:
    """List of registered tasks."""
    return inspect.registered(ctx.worker)


@command("active_queues")
async def active_queues(ctx: ControlContext, args: dict[str, Any]) -> Any:
    """List the task queues a worker is consuming from."""
    return inspect.active_queues(ctx.worker)


@command("revoked", "dump_revoked")
async def revoked(ctx: ControlContext, args: dict[str, Any]) -> Any:
    """List of revoked task-ids."""
    return sorted(ctx.worker.revoked)


@command("query_task")
async def query_task(ctx: ControlContext, args: dict[str, Any]) -> Any:
    """Query for task information by id."""
    return inspect.query(ctx.worker, _ids(args.get("ids")))


@command("conf", "dump_conf")
async def conf(ctx: ControlContext, args: dict[str, Any]) -> Any:
    """List configuration."""
    return inspect.conf(ctx.worker)


@command("report")
async def report(ctx: ControlContext, args: dict[str, Any]) -> Any:
    """Information about the worker for bug reports."""
    return ok(inspect.report(ctx.worker))


@command("clock")
async def clock(ctx: ControlContext, args: dict[str, Any]) -> Any:
    """Get current logical clock value."""
    return {"clock": ctx.clock.value}


@command("hello")
async def hello(ctx: ControlContext, args: dict[str, Any]) -> Any:
    """Mingle: a starting Celery worker shares its revoked ids and asks for ours (its own is ignored)."""
    if args.get("from_node") == ctx.worker.options.hostname:
        return None
    ctx.worker.revoked.update(_ids(args.get("revoked")))
    return {"revoked": sorted(ctx.worker.revoked), "clock": ctx.clock.forward()}


# ---------------------------------------------------------------------------- control commands
@command("revoke")
async def revoke(ctx: ControlContext, args: dict[str, Any]) -> Any:
    """Revoke task by task id (or list of ids); ``terminate`` also stops it if it is running."""
    ids = _ids(args.get("task_id"))
    terminate = bool(args.get("terminate"))
    acted = await ctx.worker.revoke(ids, terminate=terminate)
    if terminate:
        return ok(f"terminate: {', '.join(acted)}" if acted else "terminate: tasks unknown")
    log.info("Tasks flagged as revoked: %s", ", ".join(ids))
    return ok(f"tasks {set(ids)} flagged as revoked")


@command("terminate")
async def terminate(ctx: ControlContext, args: dict[str, Any]) -> Any:
    """Terminate task by task id (or list of ids)."""
    return await revoke(ctx, {**args, "terminate": True})


@command("enable_events")
async def enable_events(ctx: ControlContext, args: dict[str, Any]) -> Any:
    """Tell worker(s) to send task-related events."""
    if ctx.events is None:
        return nok("event dispatcher unavailable")
    if ctx.events.dispatcher.task_events:
        return ok("task events already enabled")
    ctx.events.dispatcher.task_events = True
    log.info("Events of group {task} enabled by remote.")
    return ok("task events enabled")


@command("disable_events")
async def disable_events(ctx: ControlContext, args: dict[str, Any]) -> Any:
    """Tell worker(s) to stop sending task-related events."""
    if ctx.events is None:
        return nok("event dispatcher unavailable")
    if not ctx.events.dispatcher.task_events:
        return ok("task events already disabled")
    ctx.events.dispatcher.task_events = False
    log.info("Events of group {task} disabled by remote.")
    return ok("task events disabled")


@command("heartbeat")
async def heartbeat(ctx: ControlContext, args: dict[str, Any]) -> Any:
    """Tell worker(s) to send an event heartbeat immediately."""
    if ctx.events is not None:
        ctx.events.beat_now()
    return None


@command("shutdown")
async def shutdown(ctx: ControlContext, args: dict[str, Any]) -> Any:
    """Shutdown worker(s)."""
    log.warning("%s", args.get("msg") or "Got shutdown from remote")
    # Only once the reply is out: stopping cancels this component.
    ctx.after_reply.append(ctx.worker.request_stop)
    return ok("shutting down")


def _ids(value: Any) -> list[str]:
    """A task id, a list of them, or Celery ≤ 5.6's ``{id: timestamp}`` mapping, as a list of ids."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(item) for item in value if item]


# ---------------------------------------------------------------------------- the component
class RemoteControl:
    """A worker component answering pidbox requests on the broker's broadcast channel."""

    def __init__(self, clock: LamportClock, events: WorkerEvents | None = None, *,
                 namespace: str = CONTROL_EXCHANGE) -> None:
        self.clock = clock
        self.events = events
        self.namespace = namespace
        self._subscription: Subscription | None = None

    @property
    def ready(self) -> bool:
        """True once requests published from now on will be seen."""
        return self._subscription is not None and self._subscription.subscribed

    async def run(self, worker: Worker) -> None:
        node = worker.options.hostname
        mailbox = Mailbox(worker.broker.client, worker.broker.keys, self.namespace)
        ctx = ControlContext(worker, self.clock, self.events)
        subscription = self._subscription = mailbox.subscription()
        try:
            await mailbox.bind(node)
        except REDIS_ERRORS as exc:
            log.warning("Could not register the pidbox binding of %s: %s", node, exc)
        try:
            async for raw in subscription.messages():
                await self.handle(ctx, mailbox, raw)
                raise_if_cancelled()
        finally:
            await subscription.close()
            with contextlib.suppress(TimeoutError, *REDIS_ERRORS):
                await asyncio.wait_for(mailbox.unbind(node), UNBIND_TIMEOUT)

    async def handle(self, ctx: ControlContext, mailbox: Mailbox, raw: bytes) -> None:
        """Decode, filter by address, run, reply."""
        try:
            request = decode_request(raw)
        except ProtocolError as exc:
            log.warning("Ignoring a malformed remote control message: %s", exc)
            return
        self.clock.adjust(request.clock)
        node = ctx.worker.options.hostname
        if not request.addressed_to(node):
            return
        log.debug("pidbox received method %s(%r) [reply_to:%s ticket:%s]", request.method, request.arguments,
                  request.reply_to, request.ticket)
        result = await dispatch(ctx, request)
        try:
            await self._reply(mailbox, request, node, result)
        finally:
            while ctx.after_reply:
                ctx.after_reply.pop(0)()

    async def _reply(self, mailbox: Mailbox, request: ControlRequest, node: str, result: Any) -> None:
        reply_to = request.reply_to
        if reply_to is None:
            return
        try:
            payload = encode_reply(node, result, ticket=request.ticket, clock=self.clock.forward(), reply_to=reply_to)
        except TypeError as exc:
            payload = encode_reply(node, nok(repr(exc)), ticket=request.ticket, clock=self.clock.value,
                                   reply_to=reply_to)
        try:
            await mailbox.reply(reply_to, payload)
        except REDIS_ERRORS as exc:
            log.warning("Could not reply to remote control command %r: %s", request.method, exc)

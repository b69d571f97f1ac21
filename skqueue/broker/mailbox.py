"""kombu's process mailbox ("pidbox") on Redis: the Redis side of ``celery inspect`` / ``celery control``.

Requests are published on the broadcast channel ``/<db>.celery.pidbox``. Replies go to the direct
exchange ``reply.celery.pidbox``: the replier looks the client's queue up in
``_kombu.binding.reply.celery.pidbox`` by routing key and ``LPUSH``es into it; the client ``BRPOP``s it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis

from skqueue.broker.keys import (
    CONTROL_EXCHANGE,
    BrokerKeys,
    pidbox_exchange,
    pidbox_queue,
    reply_exchange,
    reply_queue,
)
from skqueue.broker.pubsub import Subscription
from skqueue.errors import ProtocolError
from skqueue.protocol.clock import LamportClock
from skqueue.protocol.control import ControlRequest, ReplyTo, decode_reply, encode_request


class Mailbox:
    """Pidbox operations for one broker database and control namespace (Celery's ``control_exchange``)."""

    def __init__(self, client: Redis, keys: BrokerKeys, namespace: str = CONTROL_EXCHANGE) -> None:
        self.client = client
        self.keys = keys
        self.namespace = namespace
        self.exchange = pidbox_exchange(namespace)
        self.reply_exchange = reply_exchange(namespace)

    # ---------------------------------------------------------------- worker side
    def subscription(self) -> Subscription:
        """A subscription to the broadcast channel (each worker has its own)."""
        return Subscription(self.client, [self.keys.pidbox_channel(self.namespace)])

    async def bind(self, node: str) -> None:
        """Record the node's mailbox queue on the broadcast exchange, as a Celery worker does."""
        await self.client.sadd(self.keys.binding(self.exchange), self._node_member(node))

    async def unbind(self, node: str) -> None:
        """Remove the node's binding (at shutdown, as a Celery worker does)."""
        await self.client.srem(self.keys.binding(self.exchange), self._node_member(node))

    def _node_member(self, node: str) -> str:
        return self.keys.binding_member("", pidbox_queue(node, self.namespace))

    async def reply(self, reply_to: ReplyTo, payload: bytes) -> list[str]:
        """Route ``payload`` through ``reply_to``'s direct exchange; returns the queues it went to (none
        when the client already left: kombu drops such replies too)."""
        queues = await self._bound_queues(reply_to)
        if queues:
            async with self.client.pipeline(transaction=False) as pipe:
                for queue in queues:
                    pipe.lpush(self.keys.band(queue, 0), payload)
                await pipe.execute()
        return queues

    async def _bound_queues(self, reply_to: ReplyTo) -> list[str]:
        members = await self.client.smembers(self.keys.binding(reply_to.exchange))
        sep = self.keys.options.sep
        queues = []
        for member in members:
            text = member.decode() if isinstance(member, bytes) else str(member)
            routing_key, _, rest = text.partition(sep)
            queue = rest.partition(sep)[2]
            if routing_key == reply_to.routing_key and queue:
                queues.append(queue)
        return queues

    # ---------------------------------------------------------------- client side
    async def publish(self, payload: bytes) -> int:
        """Broadcast a request; returns how many subscribers (workers) got it."""
        return int(await self.client.publish(self.keys.pidbox_channel(self.namespace), payload))

    async def open_replies(self, oid: str) -> None:
        """Declare the client's reply queue (its binding on the reply exchange)."""
        member = self.keys.binding_member(oid, reply_queue(oid, self.reply_exchange))
        await self.client.sadd(self.keys.binding(self.reply_exchange), member)

    async def close_replies(self, oid: str) -> None:
        """Remove the reply queue's binding and lists, as kombu does after collecting."""
        queue = reply_queue(oid, self.reply_exchange)
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.srem(self.keys.binding(self.reply_exchange), self.keys.binding_member(oid, queue))
            pipe.delete(*self.keys.bands(queue))
            await pipe.execute()

    async def next_reply(self, oid: str, deadline: float) -> bytes | None:
        """The next raw reply in the client's queue, or None once ``deadline`` (monotonic) has passed."""
        bands = self.keys.bands(reply_queue(oid, self.reply_exchange))
        while (remaining := deadline - time.monotonic()) > 0:
            # BRPOP takes seconds with millisecond precision; 0 would mean "forever".
            found = await self.client.brpop(bands, timeout=max(round(remaining, 3), 0.001))
            if found is not None:
                value = found[1]
                return value if isinstance(value, bytes) else str(value).encode()
            await asyncio.sleep(0)
        return None


async def broadcast(mailbox: Mailbox, method: str, arguments: dict[str, Any] | None = None, *,
                    destination: Sequence[str] | None = None, timeout: float = 1.0, reply: bool = True,
                    clock: LamportClock | None = None) -> dict[str, Any]:
    """Send a command to every node (or those in ``destination``) and collect ``{node: reply}`` until
    ``timeout`` passes or every destination answered. With ``reply=False`` nothing is awaited."""
    clock = clock or LamportClock()
    oid = str(uuid.uuid4())
    ticket = str(uuid.uuid4()) if reply else None
    request = ControlRequest(
        method, dict(arguments or {}), list(destination) if destination else None, ticket=ticket,
        reply_to=ReplyTo(mailbox.reply_exchange, oid) if reply else None, clock=clock.forward(),
        expires=time.time() + timeout if reply else 0.0,
    )
    payload = encode_request(request, exchange=mailbox.exchange)
    if not reply:
        await mailbox.publish(payload)
        return {}
    await mailbox.open_replies(oid)
    try:
        await mailbox.publish(payload)
        limit = len(destination) if destination else None
        return await _collect(mailbox, oid, ticket, limit=limit, timeout=timeout, clock=clock)
    finally:
        await mailbox.close_replies(oid)


async def _collect(mailbox: Mailbox, oid: str, ticket: str | None, *, limit: int | None, timeout: float,
                   clock: LamportClock) -> dict[str, Any]:
    replies: dict[str, Any] = {}
    deadline = time.monotonic() + timeout
    while limit is None or len(replies) < limit:
        raw = await mailbox.next_reply(oid, deadline)
        if raw is None:
            break
        try:
            answer = decode_reply(raw)
        except ProtocolError:
            continue
        clock.adjust(answer.clock)
        if answer.ticket == ticket:
            replies.update(answer.body)
    return replies

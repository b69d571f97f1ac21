"""Pub/sub on the broker: what kombu's fanout exchanges (remote control, events) use on Redis."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from skqueue.broker.client import aclose

log = logging.getLogger("skqueue.broker")

RETRY_MIN = 0.1
RETRY_MAX = 5.0
LISTEN_TIMEOUT = 5.0


def raise_if_cancelled() -> None:
    """Re-raise a cancellation that redis-py swallowed: a command interrupted at the wrong moment can
    return normally with the task still marked as cancelling. Loops that talk to Redis call this after
    each round trip, so stopping them never depends on where the cancel landed."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def publish_many(client: Redis, messages: Sequence[tuple[str, bytes]]) -> None:
    """``PUBLISH`` each ``(channel, payload)`` in order, in one round trip."""
    if not messages:
        return
    async with client.pipeline(transaction=False) as pipe:
        for channel, payload in messages:
            pipe.publish(channel, payload)
        await pipe.execute()


class Subscription:
    """A ``PSUBSCRIBE`` on its own connection that resubscribes after the connection is lost.

    ``subscribed`` is true once the server has confirmed the subscription (publishes from then on are
    seen), and false again while reconnecting.
    """

    def __init__(self, client: Redis, patterns: Sequence[str]) -> None:
        self.client = client
        self.patterns = list(patterns)
        self.subscribed = False
        self._pubsub: PubSub | None = None

    async def messages(self) -> AsyncIterator[bytes]:
        """Yield each published payload, forever; connection errors are logged and retried."""
        delay = RETRY_MIN
        while True:
            try:
                async for payload in self._listen():
                    delay = RETRY_MIN
                    yield payload
            except (RedisError, OSError) as exc:
                log.warning("Subscription to %s lost (%s); resubscribing in %.1fs", self.patterns, exc, delay)
                await self.close()
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)

    async def _listen(self) -> AsyncIterator[bytes]:
        pubsub = self._pubsub = self.client.pubsub()
        await pubsub.psubscribe(*self.patterns)
        while True:
            # A bounded wait lets redis-py run its health checks on a quiet connection.
            message = await pubsub.get_message(timeout=LISTEN_TIMEOUT)
            raise_if_cancelled()
            if message is None:
                continue
            if message.get("type") == "psubscribe":
                self.subscribed = True
            elif message.get("type") == "pmessage":
                data = message.get("data")
                yield data if isinstance(data, bytes) else str(data).encode()

    async def close(self) -> None:
        """Drop the connection (the server forgets the subscription with it)."""
        self.subscribed = False
        if self._pubsub is not None:
            pubsub, self._pubsub = self._pubsub, None
            with contextlib.suppress(RedisError, OSError):
                await aclose(pubsub)

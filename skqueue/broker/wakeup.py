"""Waking an idle consumer when a message arrives, without popping it (which would open a loss window).

When the server publishes keyspace notifications for list commands (``notify-keyspace-events`` with
``K`` and ``l`` or ``A``; the embedded broker enables them), an idle consumer subscribes to its queue keys
and sleeps until a push. Otherwise it polls with a short exponential back-off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError, ResponseError

from skqueue.broker.client import aclose

log = logging.getLogger("skqueue.broker")

_PUSH_EVENTS = frozenset({b"lpush", b"rpush", b"linsert", b"lset", b"lmove", b"rpoplpush", b"lmpop"})
MIN_BACKOFF = 0.001
WAIT_SLICE = 0.1


async def notifications_enabled(client: Redis) -> bool:
    """True when the server publishes keyspace events for list commands."""
    try:
        reply = await client.config_get("notify-keyspace-events")
    except (ResponseError, RedisError):
        return False
    flags = str(reply.get("notify-keyspace-events", ""))
    return "K" in flags and ("l" in flags or "A" in flags)


class Doorbell:
    """``await wait(timeout)`` returns early when one of the watched lists receives a push."""

    def __init__(self, client: Redis, db: int, use_notifications: bool, max_poll: float) -> None:
        self.client = client
        self.db = db
        self.use_notifications = use_notifications
        self.max_poll = max_poll
        self._pubsub: PubSub | None = None
        self._channels: list[str] = []
        self._backoff = MIN_BACKOFF
        self._interrupted = False

    def interrupt(self) -> None:
        """Make the current and every later :meth:`wait` return promptly (the consumer is stopping)."""
        self._interrupted = True

    def busy(self) -> None:
        """Work was found: reset the polling back-off."""
        self._backoff = MIN_BACKOFF

    async def arm(self, keys: Sequence[str]) -> bool:
        """Subscribe to ``keys``. True when a new subscription was made: the caller must then check the
        queues once more, since a push that landed before the subscription produced no wake-up."""
        if not self.use_notifications:
            return False
        channels = [f"__keyspace@{self.db}__:{key}" for key in keys]
        if self._pubsub is not None and channels == self._channels:
            return False
        await self.close()
        self._pubsub = self.client.pubsub()
        await self._pubsub.subscribe(*channels)
        self._channels = channels
        return True

    async def wait(self, timeout: float) -> None:
        if self._interrupted:
            return
        if self._pubsub is None:
            delay = min(self._backoff, timeout, self.max_poll)
            self._backoff = min(self._backoff * 2, self.max_poll)
            await asyncio.sleep(delay)
            return
        try:
            await self._wait_push(self._pubsub, timeout)
        except (RedisError, OSError) as exc:
            log.debug("keyspace subscription lost (%s); resubscribing on next idle", exc)
            await self.close()
            await asyncio.sleep(min(timeout, 0.05))

    async def _wait_push(self, pubsub: PubSub, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (remaining := deadline - loop.time()) > 0 and not self._interrupted:
            # Short slices, so interrupt() is noticed within WAIT_SLICE.
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=min(remaining, WAIT_SLICE))
            if message is not None and message.get("data") in _PUSH_EVENTS:
                await self._drain(pubsub)
                return

    async def _drain(self, pubsub: PubSub) -> None:
        while await pubsub.get_message(ignore_subscribe_messages=True, timeout=0) is not None:
            pass

    async def close(self) -> None:
        if self._pubsub is not None:
            pubsub, self._pubsub, self._channels = self._pubsub, None, []
            with contextlib.suppress(RedisError, OSError):
                await aclose(pubsub)

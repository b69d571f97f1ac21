"""A leader lease in Redis: ``SET NX PX`` to take it, a token-checked script to renew or release it.

The lease alone cannot stop a holder that lost it (a long pause, an expired TTL) from acting: whatever
must be done by the leader only checks the token again atomically where it acts (``schedule_fire.lua``).
"""

from __future__ import annotations

import os
import socket
import uuid

from redis.asyncio import Redis

from skqueue.broker import scripts


def new_token() -> str:
    """``host:pid:random``: unique per holder, and says who holds the lease."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


class Lease:
    """One holder at a time for ``key``; lost unless renewed within ``ttl`` seconds."""

    def __init__(self, client: Redis, key: str, ttl: float, token: str | None = None) -> None:
        if ttl <= 0:
            raise ValueError("a lease needs a positive TTL")
        self.client = client
        self.key = key
        self.ttl = ttl
        self.token = token or new_token()

    @property
    def ttl_ms(self) -> int:
        return max(int(self.ttl * 1000), 1)

    async def acquire(self) -> bool:
        """Take the lease if nobody holds it (or extend it if we already do)."""
        if await self.client.set(self.key, self.token, nx=True, px=self.ttl_ms):
            return True
        return await self.renew()

    async def renew(self) -> bool:
        """Extend the lease; ``False`` if it expired or another holder has it now."""
        return int(await scripts.call(self.client, "lease_renew", [self.key], [self.token, self.ttl_ms])) == 1

    async def release(self) -> bool:
        """Give the lease up at once (a clean stop hands over without waiting for the TTL)."""
        return int(await scripts.call(self.client, "release_lock", [self.key], [self.token])) == 1

    async def holder(self) -> str | None:
        """The current holder's token, if any."""
        value = await self.client.get(self.key)
        if value is None:
            return None
        return value.decode() if isinstance(value, bytes) else str(value)

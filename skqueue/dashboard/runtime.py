"""What the dashboard tasks share within a process: the database engine and the Redis client.

Both are created on first use, one set per process and event loop (a worker process runs one loop; tests
and ``skqueue run-task --sync`` may run several in turn), from the app's settings:

* the database from ``database_url`` (see :mod:`skqueue.dashboard.store`);
* Redis from ``broker_url``, or the embedded broker when none is set. The dashboard cache lives in the
  broker's database next to the queues, so every worker process and the web app see the same entries;
  key names are in :mod:`skqueue.broker.keys`.

They are closed when their event loop shuts down: ``asyncio.run`` closes the async generators still open
before it closes the loop, and each runtime parks one whose ``finally`` disposes of the engine and the
client. Nothing here runs at import time.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncGenerator

from redis.asyncio import Redis

from skqueue.broker.cache import DashboardCache
from skqueue.broker.client import aclose, connect, db_of
from skqueue.broker.connections import Urls, release_urls, resolve_urls
from skqueue.broker.keys import BrokerKeys
from skqueue.broker.transport import RedisBroker
from skqueue.config import Settings
from skqueue.dashboard.store import Store, create_engine, database_url


class Runtime:
    """The lazily opened resources of one process and loop."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.database_url = database_url(settings)
        self._engine = create_engine(self.database_url)
        self._store: Store | None = None
        self._urls: Urls | None = None
        self._redis: Redis | None = None
        self._closer: AsyncGenerator[None, None] | None = None

    async def store(self) -> Store:
        if self._store is None:
            self._store = await Store.open(self._engine)
        return self._store

    @property
    def urls(self) -> Urls:
        if self._urls is None:
            self._urls = resolve_urls(self.settings)
        return self._urls

    @property
    def redis(self) -> Redis:
        if self._redis is None:
            self._redis = connect(self.urls.broker, name="skqueue-dashboard")
        return self._redis

    @property
    def keys(self) -> BrokerKeys:
        return BrokerKeys(self.settings.broker_transport_options, db_of(self.urls.broker))

    @property
    def cache(self) -> DashboardCache:
        return DashboardCache(self.redis, self.keys)

    @property
    def broker(self) -> RedisBroker:
        return RedisBroker(self.redis, self.keys, worker_id="skqueue-dashboard")

    async def aclose(self) -> None:
        await self._engine.dispose()
        if self._redis is not None:
            await aclose(self._redis)
            self._redis = None
        if self._urls is not None:
            release_urls(self._urls)
            self._urls = None


_runtimes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Runtime] = weakref.WeakKeyDictionary()


async def _close_with_loop(runtime: Runtime) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        await runtime.aclose()


async def runtime(settings: Settings) -> Runtime:
    """The runtime of the running loop for ``settings`` (a new one if the settings changed)."""
    loop = asyncio.get_running_loop()
    found = _runtimes.get(loop)
    if found is not None:
        if found.settings == settings:
            return found
        await close(loop)
    made = Runtime(settings)
    made._closer = _close_with_loop(made)
    await made._closer.asend(None)
    _runtimes[loop] = made
    return made


async def close(loop: asyncio.AbstractEventLoop | None = None) -> None:
    """Close the runtime of ``loop`` (default: the running one) now rather than at loop shutdown."""
    found = _runtimes.pop(loop or asyncio.get_running_loop(), None)
    if found is not None and found._closer is not None:
        await found._closer.aclose()

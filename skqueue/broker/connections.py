"""Opening the broker and result-backend connections a command needs, embedded broker included."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from redis.asyncio import Redis

from skqueue.broker import embedded
from skqueue.broker.client import aclose, connect, db_of
from skqueue.broker.keys import BrokerKeys, ResultKeys
from skqueue.broker.results import ResultStore
from skqueue.broker.transport import RedisBroker
from skqueue.config import Settings
from skqueue.errors import ConfigError

log = logging.getLogger("skqueue.broker")


@dataclass(frozen=True, slots=True)
class Urls:
    broker: str
    results: str | None
    embedded: embedded.EmbeddedBroker | None = None


def resolve_urls(settings: Settings) -> Urls:
    """The URLs to use; with no broker configured, start (or join) the embedded one."""
    backend = settings.result_backend
    if backend is not None and not backend.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f"result_backend {backend!r} is not Redis; skqueue writes results only to Redis")
    if settings.broker_url:
        if backend is None:
            log.warning("No result backend configured: results are not stored (as with Celery's "
                        "DisabledBackend). Set CELERY_RESULT_BACKEND to store them.")
        return Urls(settings.broker_url, backend)
    server = embedded.acquire(settings.skqueue_home)
    return Urls(server.broker_url, backend or server.result_url, server)


def release_urls(urls: Urls) -> None:
    if urls.embedded is not None:
        embedded.release(urls.embedded)


@dataclass(slots=True)
class Connections:
    broker: RedisBroker
    results: ResultStore | None
    urls: Urls

    @property
    def broker_client(self) -> Redis:
        return self.broker.client


@contextlib.asynccontextmanager
async def open_connections(settings: Settings, urls: Urls, *, name: str = "skqueue",
                           worker_id: str | None = None) -> AsyncIterator[Connections]:
    keys = BrokerKeys(settings.broker_transport_options, db_of(urls.broker))
    broker_client = connect(urls.broker, name=name)
    result_client = connect(urls.results, name=name) if urls.results else None
    try:
        results = (ResultStore(result_client, ResultKeys.from_options(settings.result_backend_transport_options))
                   if result_client is not None else None)
        yield Connections(RedisBroker(broker_client, keys, worker_id), results, urls)
    finally:
        await aclose(broker_client)
        if result_client is not None:
            await aclose(result_client)

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from skqueue.app import App
from skqueue.config import Settings
from skqueue.worker.worker import WorkerOptions
from tests.apps import wire
from tests.support import RedisServer, WorkerThread

QUEUES = ["high_priority", "cache_operations", "default", "analytics", "low_priority"]


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def server(redis_server: RedisServer) -> Iterator[RedisServer]:
    """The session server, emptied before each test (and restarted if a test killed it)."""
    if redis_server.process is None or redis_server.process.poll() is not None:
        redis_server.start()
    redis_server.client().flushall()
    yield redis_server
    if redis_server.process is None or redis_server.process.poll() is not None:
        redis_server.start()


def configure_wire(server: RedisServer, **settings: Any) -> App:
    base = {
        "broker_url": server.url(0),
        "result_backend": server.url(1),
        "task_default_queue": "default",
        "task_routes": wire.ROUTES,
        "task_acks_late": True,
        "broker_transport_options": {"visibility_timeout": 3600},
    }
    base.update(settings)
    wire.app.configure(Settings().replace(**base))
    wire.CALLS.clear()
    return wire.app


@pytest.fixture
def wire_app(server: RedisServer) -> App:
    return configure_wire(server)


@pytest.fixture
def celery_factory(server: RedisServer) -> Iterator[Callable[..., Any]]:
    """Real Celery client apps pointed at the private server, configured like SenangKira's."""
    from celery import Celery

    made: list[Any] = []

    def make(**conf: Any) -> Any:
        capp = Celery("wireclient", broker=server.url(0), backend=server.url(1), set_as_current=False)
        capp.conf.update(
            task_default_queue="default",
            task_routes=wire.ROUTES,
            task_serializer="json",
            result_serializer="json",
            accept_content=["json"],
            task_acks_late=True,
            broker_connection_retry_on_startup=True,
        )
        capp.conf.update(conf)
        made.append(capp)
        return capp

    yield make
    # AsyncResult.__del__ unsubscribes through the backend: let it run while the server is still up.
    gc.collect()
    for capp in made:
        capp.close()


@pytest.fixture
def celery_app(celery_factory: Callable[..., Any]) -> Any:
    return celery_factory()


@pytest.fixture
def start_worker() -> Iterator[Callable[..., WorkerThread]]:
    started: list[WorkerThread] = []

    def start(app: App | None = None, **options: Any) -> WorkerThread:
        opts = {"queues": QUEUES, "concurrency": 8, "prefetch_multiplier": 4, "hostname": "w1@test",
                "shutdown_timeout": 5.0}
        opts.update(options)
        thread = WorkerThread(app or wire.app, WorkerOptions(**opts)).start()
        started.append(thread)
        return thread

    yield start
    for thread in started:
        thread.stop()

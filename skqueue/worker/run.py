"""``serve`` and ``build_worker``: the composition roots the CLI (and the tests) call."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from skqueue.app import App
from skqueue.broker.connections import Connections, open_connections, release_urls, resolve_urls
from skqueue.broker.transport import new_worker_id
from skqueue.broker.wakeup import Doorbell, notifications_enabled
from skqueue.broker.workers import WorkerRegistry
from skqueue.worker.canvas import CeleryCanvas
from skqueue.worker.heartbeat import Heartbeat
from skqueue.worker.inspect import redact
from skqueue.worker.recycle import MemoryLimit
from skqueue.worker.remote import remote_components
from skqueue.worker.slots import RunningSlots
from skqueue.worker.worker import Component, Worker, WorkerOptions

log = logging.getLogger("skqueue.worker")
T = TypeVar("T")

IDLE_POLL_MAX = 0.05


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """How a supervised worker process was started by its supervisor."""

    worker_id: str
    slots_path: str
    supervisor_pid: int


def run_process(main: Coroutine[Any, Any, T], *, grace: float = 5.0) -> T:
    """``asyncio.run`` for a worker process, except that at exit leftover tasks get ``grace`` seconds to
    finish their cancellation instead of forever: a task whose cancel a client library swallowed must not
    keep a stopped worker (and so its supervisor's shutdown) alive."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(main)
    finally:
        leftovers = asyncio.all_tasks(loop)
        for task in leftovers:
            task.cancel()
        if leftovers:
            _, stuck = loop.run_until_complete(asyncio.wait(leftovers, timeout=grace))
            for task in stuck:
                log.error("Task %s did not stop within %.0fs of shutdown; exiting anyway", task.get_name(), grace)
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def expand_hostname(template: str) -> str:
    """Celery's node name placeholders: ``%h`` host name, ``%n`` short name, ``%d`` domain."""
    host = socket.gethostname()
    short, _, domain = host.partition(".")
    return template.replace("%h", host).replace("%n", short).replace("%d", domain).replace("%p", str(os.getpid()))


async def build_worker(app: App, conns: Connections, options: WorkerOptions, *,
                       child: ChildSpec | None = None) -> Worker:
    """A worker with everything it runs beside it: heartbeats (and the reaping of dead workers), the
    memory limit, Celery events and remote control, and, under a supervisor, the running-task slots."""
    client = conns.broker.client
    notify = await notifications_enabled(client)
    doorbell = Doorbell(client, conns.broker.keys.db, notify, IDLE_POLL_MAX)
    registry = WorkerRegistry(client, conns.broker.keys, ttl=app.conf.worker_lost_timeout)
    components: list[Component] = [Heartbeat(registry, supervisor_pid=child.supervisor_pid if child else None)]
    if options.max_memory_per_child:
        components.append(MemoryLimit(options.max_memory_per_child))
    components.extend(remote_components(app.conf, options))
    slots = RunningSlots(child.slots_path, options.concurrency) if child else None
    return Worker(app, conns.broker, conns.results, doorbell, options, components=components, slots=slots,
                  canvas=CeleryCanvas(app, conns.results, options.hostname))


async def serve(app: App, options: WorkerOptions, *, child: ChildSpec | None = None) -> Worker:
    """Run a worker until it is stopped by a signal (or, in burst mode, until the queues are empty)."""
    urls = resolve_urls(app.conf)
    worker_id = child.worker_id if child else new_worker_id(options.hostname)
    try:
        async with open_connections(app.conf, urls, name=options.hostname, worker_id=worker_id) as conns:
            worker = await build_worker(app, conns, options, child=child)
            banner(app, options, urls.broker, urls.results, worker.consumer.doorbell.use_notifications)
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, worker.request_stop)
            try:
                await worker.run()
            finally:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(sig)
            return worker
    finally:
        release_urls(urls)


def banner(app: App, options: WorkerOptions, broker: str, results: str | None, notify: bool) -> None:
    """Print the start-up banner to stdout, as ``celery worker`` does, then log readiness."""
    wake = "keyspace notifications" if notify else f"polling (<= {IDLE_POLL_MAX * 1000:.0f} ms when idle)"
    tasks = "\n".join(f"  . {name}" for name in sorted(app.tasks)) or "  (none)"
    print(
        f" -------------- {options.hostname} (skqueue)\n"
        f"--- app:         {app.main}\n"
        f"--- transport:   {redact(broker)}\n"
        f"--- results:     {redact(results) if results else 'disabled'}\n"
        f"--- concurrency: {options.concurrency} (prefetch {options.concurrency * options.prefetch_multiplier})\n"
        f"--- queues:      {', '.join(options.queues)}\n"
        f"--- idle wake:   {wake}\n\n[tasks]\n{tasks}\n",
        flush=True,
    )
    log.info("%s ready.", options.hostname)

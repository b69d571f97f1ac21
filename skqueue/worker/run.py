"""``run_worker``: the composition root the CLI calls."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket

from skqueue.app import App
from skqueue.broker.connections import open_connections, release_urls, resolve_urls
from skqueue.broker.wakeup import Doorbell, notifications_enabled
from skqueue.worker.worker import Worker, WorkerOptions

log = logging.getLogger("skqueue.worker")

IDLE_POLL_MAX = 0.05


def expand_hostname(template: str) -> str:
    """Celery's node name placeholders: ``%h`` host name, ``%n`` short name, ``%d`` domain."""
    host = socket.gethostname()
    short, _, domain = host.partition(".")
    return template.replace("%h", host).replace("%n", short).replace("%d", domain).replace("%p", str(os.getpid()))


async def serve(app: App, options: WorkerOptions) -> Worker:
    """Run a worker until it is stopped by a signal (or, in burst mode, until the queues are empty)."""
    urls = resolve_urls(app.conf)
    try:
        async with open_connections(app.conf, urls, name=options.hostname) as conns:
            client = conns.broker.client
            notify = await notifications_enabled(client)
            doorbell = Doorbell(client, conns.broker.keys.db, notify, IDLE_POLL_MAX)
            worker = Worker(app, conns.broker, conns.results, doorbell, options)
            banner(app, options, urls.broker, urls.results, notify)
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
        f"--- transport:   {_redact(broker)}\n"
        f"--- results:     {_redact(results) if results else 'disabled'}\n"
        f"--- concurrency: {options.concurrency} (prefetch {options.concurrency * options.prefetch_multiplier})\n"
        f"--- queues:      {', '.join(options.queues)}\n"
        f"--- idle wake:   {wake}\n\n[tasks]\n{tasks}\n",
        flush=True,
    )
    log.info("%s ready.", options.hostname)


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url

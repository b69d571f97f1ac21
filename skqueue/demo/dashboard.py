"""The SenangKira part of ``skqueue demo``: seed the embedded SQLite database, send the seven dashboard
tasks to the worker with the real Celery client, and print what each one produced."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from skqueue.config import Settings
from skqueue.dashboard import commands
from skqueue.dashboard.store import Store, create_engine, database_url

USERS = 3
SEED = 2026
T = 60  # seconds a demo step may take

Render = Callable[[Any], list[str]]
Step = tuple[str, Callable[[], Any], Render]


def prepare(home: Path) -> tuple[dict[str, str], list[str]]:
    """A freshly seeded ``<home>/senangkira.db``; returns the worker's environment and the user ids."""
    db = home / "senangkira.db"
    for stale in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        stale.unlink(missing_ok=True)
    settings = Settings(skqueue_home=str(home))
    print(asyncio.run(commands.db_seed(settings, USERS, SEED, out=sys.stdout)), flush=True)
    env = {"SKQUEUE_DATABASE_URL": database_url(settings).render_as_string(),
           "SKQUEUE_EXPORT_DIR": str(home / "exports")}
    return env, asyncio.run(_user_ids(settings))


async def _user_ids(settings: Settings) -> list[str]:
    engine = create_engine(database_url(settings))
    try:
        return [str(user_id) for user_id in await (await Store.open(engine)).user_ids()]
    finally:
        await engine.dispose()


@contextlib.contextmanager
def mail_server(env: dict[str, str]) -> Any:
    """A local SMTP server (aiosmtpd, installed with the dev extra) the notifications are sent to."""
    try:
        from aiosmtpd.controller import Controller
        from aiosmtpd.handlers import Sink
    except ImportError:
        yield None
        return
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    controller = Controller(Sink(), hostname="127.0.0.1", port=port)
    controller.start()
    env.update(SKQUEUE_SMTP_HOST="127.0.0.1", SKQUEUE_SMTP_PORT=str(port))
    try:
        yield port
    finally:
        controller.stop()


def _rm(value: str | None) -> str:
    return "-" if value is None else f"RM {float(value):,.2f}"


def _refreshed(result: dict[str, Any]) -> list[str]:
    m = result["periods"]["monthly"]
    return [f"{m['start']}..{m['end']}: revenue {_rm(m['revenue'])}, expenses {_rm(m['expenses'])}, "
            f"net profit {_rm(m['net_profit'])}",
            f"outstanding {_rm(m['outstanding'])} (overdue {_rm(m['overdue'])}); "
            f"{result['cached']} periods cached, {result['snapshots']} snapshots written"]


def _exported(result: dict[str, Any]) -> list[str]:
    return [f"{result['path']}", f"{result['size']:,} bytes, {result['rows']} rows, sha256 {result['sha256'][:16]}..."]


def _performance(report: dict[str, Any]) -> list[str]:
    lines = [f"status {report['status']}, {report['attempts_in_window']} attempts, cache hit ratio "
             f"{report['cache']['hit_ratio']}, backlog {sum(report['queue_backlog'].values())}"]
    for name, t in report["tasks"].items():
        lines.append(f"{name.rsplit('.', 1)[1]:<24} n={t['attempts']:<3} p50 {t['p50_seconds'] * 1000:7.1f} ms  "
                     f"p95 {t['p95_seconds'] * 1000:7.1f} ms  errors {t['error_rate']:.0%}")
    return lines + [f"advice: {text}" for text in report["recommendations"][:3]]


def steps(client: Any, users: list[str]) -> list[Step]:
    def run(name: str, *args: Any, **kwargs: Any) -> Callable[[], Any]:
        return lambda: client.send_task(f"dashboard.tasks.{name}", args=args, kwargs=kwargs).get(timeout=T)

    first, second = users[0], users[1]
    since = (datetime.now(UTC).date() - timedelta(days=90)).isoformat()
    span = {"start": since, "end": datetime.now(UTC).date().isoformat()}
    return [
        ("debug_task()", run("debug_task"), lambda r: [f"ran on queue {r['queue']!r} by {r['hostname']}"]),
        (f"refresh_dashboard_cache({first[:8]}...)", run("refresh_dashboard_cache", first), _refreshed),
        (f"warm_dashboard_cache({second[:8]}...)", run("warm_dashboard_cache", second),
         lambda r: [f"filled {r['filled'] or '-'}; fresh {r['fresh'] or '-'}; busy {r['busy'] or '-'}"]),
        ("refresh_dashboard_cache()  [every user]", run("refresh_dashboard_cache"),
         lambda r: [f"{r['succeeded']}/{r['users']} users refreshed in {r['batches']} batch(es), "
                    f"failed: {r['failed'] or 'none'}"]),
        ("export_dashboard_data(json)", run("export_dashboard_data", first, "json"), _exported),
        ("export_dashboard_data(csv, last 90 days)", run("export_dashboard_data", first, "csv", span), _exported),
        ("export_dashboard_data(pdf, last 90 days)", run("export_dashboard_data", first, "pdf", span), _exported),
        ("send_notification(alert)", run("send_notification", first, "Invoice INV-2026-0042 is 14 days overdue.",
                                         "alert"),
         lambda r: [f"stored {r['notification_id']}; e-mail {r['email']['status']}"
                    + (f" to {r['email']['to']}" if r["email"].get("to") else "")]),
        ("performance_analysis()", run("performance_analysis"), _performance),
        ("cleanup_old_data(days_old=30)", run("cleanup_old_data", days_old=30),
         lambda r: [f"deleted {r['deleted']}"]),
    ]


def failures(client: Any) -> list[Step]:
    """What goes wrong on purpose: each fails at once with a clear error, and nothing is retried."""
    def run(name: str, *args: Any, **options: Any) -> Callable[[], Any]:
        return lambda: client.send_task(name, args=args, **options).get(timeout=T)

    missing = "00000000-0000-4000-8000-000000000000"
    return [
        (f"refresh_dashboard_cache({missing[:8]}...)", run("dashboard.tasks.refresh_dashboard_cache", missing),
         lambda r: [repr(r)]),
        ("export_dashboard_data(format='xlsx')", run("dashboard.tasks.export_dashboard_data", missing, "xlsx"),
         lambda r: [repr(r)]),
        ("send_task('dashboard.tasks.nope')", run("dashboard.tasks.nope"), lambda r: [repr(r)]),
        ("debug_task(countdown=1, expires=0.5)", run("dashboard.tasks.debug_task", countdown=1, expires=0.5),
         lambda r: [repr(r)]),
    ]


def show(label: str, call: Callable[[], Any], render: Render) -> None:
    started = time.perf_counter()
    try:
        lines = render(call())
    except Exception as exc:
        lines = [f"raised {type(exc).__qualname__}: {exc}"]
    print(f"  {label}  ({(time.perf_counter() - started) * 1000:.0f} ms)", flush=True)
    for line in lines:
        print(f"      {line}", flush=True)


def environment(extra: dict[str, str]) -> dict[str, str]:
    return {**os.environ, **extra}

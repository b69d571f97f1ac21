"""Shared pieces of the dashboard integration tests: a seeded SQLite file per module, the dashboard app
pointed at the private Redis, a local SMTP server (aiosmtpd), and row-level helpers."""

from __future__ import annotations

import shutil
import sqlite3
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from skqueue.app import App
from skqueue.config import Settings
from skqueue.dashboard import app as dashboard_app
from tests.dashboard_support import seed_sync, sqlite_url
from tests.support import RedisServer

TODAY = datetime.now(UTC).date()


def seeded_file(directory: Path, users: int = 3) -> Path:
    path = directory / "seeded.db"
    seed_sync(sqlite_url(path), users, TODAY)
    return path


def configure(server: RedisServer, source: Path, tmp_path: Path, **settings: Any) -> App:
    """Point the dashboard app at the private Redis and at a fresh copy of the seeded database."""
    target = tmp_path / "senangkira.db"
    shutil.copy(source, target)
    base: dict[str, Any] = {
        "broker_url": server.url(0), "result_backend": server.url(1), "database_url": sqlite_url(target),
        "export_dir": str(tmp_path / "exports"), "skqueue_home": str(tmp_path / "home"),
    }
    base.update(settings)
    dashboard_app.configure(Settings(task_default_queue="default", task_routes=dashboard_app.conf.task_routes,
                                     task_acks_late=True, worker_prefetch_multiplier=1,
                                     task_reject_on_worker_lost=True).replace(**base))
    return dashboard_app


def rows(app: App, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Plain sqlite3 reads of the test database (independent of the code under test)."""
    url = str(app.conf.database_url)
    with sqlite3.connect(url.split(":///", 1)[1]) as conn:
        return conn.execute(sql, params).fetchall()


def user_ids(app: App) -> list[str]:
    return [str(uuid.UUID(hex=r[0])) for r in rows(app, "SELECT id FROM auth_user ORDER BY email")]


@dataclass
class Mailbox:
    """What the local SMTP server received."""

    messages: list[Message] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.messages.append(message_from_bytes(envelope.original_content))
        return "250 OK"

    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            self.logins.append((auth_data.login.decode(), auth_data.password.decode()))
            return AuthResult(success=auth_data.password == b"s3cret")
        return AuthResult(success=False)


def smtp_server(port: int) -> tuple[Controller, Mailbox]:
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port, authenticator=mailbox,
                            auth_require_tls=False)
    controller.start()
    return controller, mailbox


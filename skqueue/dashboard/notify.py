"""Notifications: stored in-app (``dashboard_notification``) and e-mailed to the user over SMTP.

The row's id is derived from the task id, so a retry (after an SMTP failure) finds the notification it
already stored and only tries the e-mail again. Without ``smtp_host`` notifications are stored only
(``email_status`` ``disabled``).
"""

from __future__ import annotations

import asyncio
import smtplib
import uuid
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

from skqueue.config import Settings
from skqueue.dashboard.runtime import Runtime
from skqueue.dashboard.schema import NOTIFICATION_TYPES
from skqueue.dashboard.store import Store, User
from skqueue.errors import DeliveryError, InvalidArguments

NAMESPACE = uuid.UUID("6f1c2b52-7d0e-4b8e-9a51-0c9c6a1e5a10")
MAX_MESSAGE = 5000
FINAL = ("sent", "disabled", "no_address")


def check(message: Any, notification_type: Any) -> tuple[str, str]:
    if notification_type not in NOTIFICATION_TYPES:
        raise InvalidArguments(f"unknown notification_type {notification_type!r}: use info, warning or alert")
    if not isinstance(message, str) or not message.strip():
        raise InvalidArguments("message must be a non-empty string")
    if len(message) > MAX_MESSAGE:
        raise InvalidArguments(f"message is longer than {MAX_MESSAGE} characters")
    return message.strip(), str(notification_type)


def email(settings: Settings, user: User, message: str, kind: str) -> EmailMessage:
    mail = EmailMessage()
    first_line = message.splitlines()[0][:70]
    mail["Subject"] = f"[SenangKira] {kind.capitalize()}: {first_line}"
    mail["From"] = settings.smtp_from
    mail["To"] = user.email
    mail["Message-ID"] = make_msgid(domain=settings.smtp_from.rpartition("@")[2] or None)
    greeting = f"Hello {user.first_name}," if user.first_name else "Hello,"
    mail.set_content(f"{greeting}\n\n{message}\n\n-- \nSenangKira ({user.company_name or user.email})\n")
    return mail


def _send(settings: Settings, mail: EmailMessage) -> None:
    assert settings.smtp_host is not None
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout) as smtp:
        if settings.smtp_use_tls:
            smtp.starttls()
        if settings.smtp_username:
            smtp.login(settings.smtp_username, settings.smtp_password or "")
        smtp.send_message(mail)


async def _deliver(settings: Settings, store: Store, row: dict[str, Any], *, user: User, message: str,
                   kind: str) -> dict[str, Any]:
    table = store.tables.notifications
    if not settings.smtp_host or not user.email:
        status = "disabled" if not settings.smtp_host else "no_address"
        await store.update_notification(row["id"], email_status=status)
        return {"status": status}
    mail = email(settings, user, message, kind)
    try:
        await asyncio.to_thread(_send, settings, mail)
    except (smtplib.SMTPException, OSError) as exc:
        await store.update_notification(row["id"], email_status="failed", email_error=f"{type(exc).__name__}: {exc}",
                                        email_attempts=table.c.email_attempts + 1)
        raise DeliveryError(f"e-mail to {user.email} via {settings.smtp_host}:{settings.smtp_port} failed: "
                            f"{type(exc).__name__}: {exc}") from exc
    await store.update_notification(row["id"], email_status="sent", email_error=None, emailed_at=datetime.now(UTC),
                                    email_attempts=table.c.email_attempts + 1)
    return {"status": "sent", "to": user.email, "message_id": str(mail["Message-ID"])}


async def send(rt: Runtime, user_id: Any, message: Any, notification_type: Any, request_id: str) -> dict[str, Any]:
    """Store the notification (once per task id) and e-mail it; :class:`DeliveryError` if SMTP failed."""
    text, kind = check(message, notification_type)
    store = await rt.store()
    user = await store.user(user_id)
    notification_id = uuid.uuid5(NAMESPACE, request_id)
    row = await store.notification(notification_id)
    if row is None:
        row = {"id": notification_id, "owner_id": user.id, "message": text, "notification_type": kind,
               "created_at": datetime.now(UTC), "email_to": user.email, "email_status": "pending",
               "email_attempts": 0}
        await store.insert("notifications", row)
    if row["email_status"] in FINAL:
        email_result: dict[str, Any] = {"status": row["email_status"], "to": row["email_to"]}
    else:
        email_result = await _deliver(rt.settings, store, row, user=user, message=text, kind=kind)
    created = row["created_at"]
    return {"notification_id": str(notification_id), "user_id": str(user.id), "type": kind, "message": text,
            "stored_at": created.replace(tzinfo=created.tzinfo or UTC).isoformat(timespec="seconds"),
            "email": email_result}

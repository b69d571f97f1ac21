"""The :class:`Monitor` every query and command takes, and how values are shaped for JSON responses."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from uuid import UUID

from skqueue.app import App
from skqueue.broker.connections import Connections
from skqueue.broker.deadletters import DeadLetters
from skqueue.broker.inspect import TelemetryReader
from skqueue.broker.mailbox import Mailbox
from skqueue.broker.results import ResultStore
from skqueue.broker.revoked import RevokedStore
from skqueue.broker.submissions import Submissions
from skqueue.broker.transport import RedisBroker
from skqueue.broker.workers import WorkerRegistry
from skqueue.config import Settings
from skqueue.errors import InvalidRequest

if TYPE_CHECKING:
    from skqueue.monitor.schedules import ScheduleBook

ORIGIN = "skqueue-api"
MAX_ID_LENGTH = 255


@dataclass
class Monitor:
    """Everything the monitoring queries and commands read and write, for one broker and backend.

    ``app`` is the allow-list of tasks that may be sent and its routing; ``settings`` hold the API's
    own options (limits, health task)."""

    app: App
    settings: Settings
    broker: RedisBroker
    results: ResultStore | None
    workers: WorkerRegistry
    telemetry: TelemetryReader
    revoked: RevokedStore
    mailbox: Mailbox
    submissions: Submissions
    dead_letters: DeadLetters
    schedules: ScheduleBook | None = None
    clock: Callable[[], float] = field(default=time.time)

    @classmethod
    def build(cls, app: App, settings: Settings, conns: Connections,
              schedules: ScheduleBook | None = None) -> Monitor:
        client, keys = conns.broker.client, conns.broker.keys
        return cls(
            app=app, settings=settings, broker=conns.broker, results=conns.results,
            workers=WorkerRegistry(client, keys, ttl=settings.worker_lost_timeout),
            telemetry=TelemetryReader(client, keys), revoked=RevokedStore(client, keys),
            mailbox=Mailbox(client, keys, settings.control_exchange),
            submissions=Submissions(client, keys, settings.result_expires), dead_letters=DeadLetters(client, keys),
            schedules=schedules,
        )

    @property
    def max_chars(self) -> int:
        return self.settings.api_max_value_chars

    def clip(self, value: Any) -> Any:
        return clip(value, self.max_chars)

    def now_iso(self) -> str:
        return iso(self.clock()) or ""


def iso(stamp: float | None) -> str | None:
    """Epoch seconds as ISO 8601 UTC (``None`` for a missing time)."""
    if not stamp:
        return None
    return datetime.fromtimestamp(stamp, UTC).isoformat()


def json_default(value: Any) -> Any:
    """How values JSON has no type for are shown: Decimal and UUID as text, times in ISO 8601."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal | UUID):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return repr(value)


def dumps(value: Any) -> str:
    return json.dumps(value, default=json_default, ensure_ascii=False, allow_nan=False)


def clip(value: Any, limit: int) -> Any:
    """``value`` itself when its JSON takes at most ``limit`` characters; otherwise the start of that JSON
    text followed by a marker that says how long it was (responses stay small whatever tasks carry)."""
    try:
        text = value if isinstance(value, str) else dumps(value)
    except ValueError:  # NaN or infinity
        text = repr(value)
    if len(text) <= limit:
        return value
    return f"{text[:limit]}... [truncated: {len(text)} characters]"


def check_task_id(task_id: str) -> str:
    """Task ids are printable and at most 255 characters (Celery's are UUIDs; clients may choose any)."""
    if not task_id or len(task_id) > MAX_ID_LENGTH or not task_id.isprintable():
        raise InvalidRequest("task id must be 1 to 255 printable characters")
    return task_id

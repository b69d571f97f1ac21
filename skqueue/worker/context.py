"""What a bound task (``bind=True``) receives as its first argument."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(slots=True)
class TaskContext:
    """The running request. ``ctx.request`` is the context itself, so Celery-style ``self.request.id``
    in a bound task keeps working unchanged."""

    id: str
    name: str
    args: list[Any]
    kwargs: dict[str, Any]
    retries: int = 0
    eta: datetime | None = None
    expires: datetime | None = None
    redelivered: bool = False
    delivery_info: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, Any] = field(default_factory=dict)
    root_id: str | None = None
    parent_id: str | None = None
    group: str | None = None
    hostname: str = ""

    @property
    def request(self) -> TaskContext:
        return self

    @property
    def task_id(self) -> str:
        return self.id

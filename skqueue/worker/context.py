"""What a bound task (``bind=True``) receives as its first argument."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NoReturn

from skqueue.errors import MaxRetriesExceededError, Retry


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
    max_retries: int | None = 3
    default_retry_delay: float = 180.0

    @property
    def request(self) -> TaskContext:
        return self

    @property
    def task_id(self) -> str:
        return self.id

    def retry(self, exc: BaseException | None = None, countdown: float | None = None, eta: datetime | None = None,
              max_retries: int | None = None, **options: Any) -> NoReturn:
        """Celery's ``Task.retry``: run again later with the same id and ``retries + 1``.

        Past ``max_retries`` it raises ``exc`` (or ``MaxRetriesExceededError``) so the task fails with it.
        Otherwise it raises :class:`~skqueue.errors.Retry`, which the worker turns into the new message.
        """
        limit = self.max_retries if max_retries is None else max_retries
        if limit is not None and self.retries >= limit:
            if exc is not None:
                raise exc
            raise MaxRetriesExceededError(
                f"Can't retry {self.name}[{self.id}] args:{self.args} kwargs:{self.kwargs}")
        if eta is None and countdown is None:
            countdown = self.default_retry_delay
        raise Retry(exc=exc, when=countdown, eta=eta, **options)

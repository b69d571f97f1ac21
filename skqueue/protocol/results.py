"""The ``celery-task-meta-<id>`` value Celery's Redis result backend writes and ``AsyncResult`` reads."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec

from skqueue.protocol import states, tagged_json


@dataclass(frozen=True, slots=True)
class EncodedException:
    """``{"exc_type", "exc_message", "exc_module"}``: how Celery stores an exception."""

    exc_type: str
    exc_message: list[Any]
    exc_module: str

    def as_dict(self) -> dict[str, Any]:
        return {"exc_type": self.exc_type, "exc_message": self.exc_message, "exc_module": self.exc_module}


def _json_safe(value: Any) -> Any:
    try:
        return tagged_json.to_tagged(value)
    except TypeError:
        return repr(value)


def encode_exception(exc: BaseException) -> EncodedException:
    """Encode like Celery's ``Backend.prepare_exception``: qualname, args as a list, module."""
    cls = type(exc)
    module = getattr(cls, "celery_module", None) or cls.__module__
    return EncodedException(cls.__qualname__, [_json_safe(arg) for arg in exc.args], module)


@dataclass(slots=True)
class ResultMeta:
    """One state write. ``status`` is a Celery state name."""

    task_id: str
    status: str
    result: Any = None
    traceback: str | None = None
    children: list[Any] | None = None
    group_id: str | None = None
    parent_id: str | None = None
    extended: dict[str, Any] | None = None
    date_done: datetime | None = None

    def to_json(self) -> bytes:
        """Encode in Celery's field order; ready states get ``date_done`` (aware UTC)."""
        done = self.date_done
        if done is None and self.status in states.READY_STATES:
            done = datetime.now(UTC)
        meta: dict[str, Any] = {
            "status": self.status,
            "result": self.result,
            "traceback": self.traceback,
            "children": self.children if self.children is not None else [],
            "date_done": done.isoformat() if done else None,
        }
        if self.group_id is not None:
            meta["group_id"] = self.group_id
        if self.parent_id is not None:
            meta["parent_id"] = self.parent_id
        if self.extended:
            meta.update(self.extended)
        meta["task_id"] = self.task_id
        if self.extended or not _plain(self.result) or self.children:
            return tagged_json.dumps(meta)
        return _encoder.encode(meta)  # nothing to tag: skip the tree walk (the common no-op/scalar result)


_encoder = msgspec.json.Encoder()


def _plain(value: Any) -> bool:
    """True for values JSON carries as they are (so no kombu tag can be needed)."""
    return value is None or isinstance(value, str | int | bool) or (
        isinstance(value, float) and math.isfinite(value))


def success(task_id: str, value: Any, **kw: Any) -> ResultMeta:
    return ResultMeta(task_id, states.SUCCESS, value, **kw)


def failure(task_id: str, exc: EncodedException, traceback: str | None, **kw: Any) -> ResultMeta:
    return ResultMeta(task_id, states.FAILURE, exc.as_dict(), traceback, **kw)


def revoked(task_id: str, reason: str, **kw: Any) -> ResultMeta:
    exc = EncodedException("TaskRevokedError", [reason], "celery.exceptions")
    return ResultMeta(task_id, states.REVOKED, exc.as_dict(), **kw)


def started(task_id: str, pid: int, hostname: str, **kw: Any) -> ResultMeta:
    return ResultMeta(task_id, states.STARTED, {"pid": pid, "hostname": hostname}, **kw)


def child_tuple(task_id: str) -> list[Any]:
    """``AsyncResult.as_tuple()`` of a child with no parent: ``[[id, None], None]``."""
    return [[task_id, None], None]


def decode_meta(raw: bytes | str | None) -> dict[str, Any] | None:
    """Decode a stored meta value (type tags resolved), or ``None`` for a missing key."""
    if raw is None:
        return None
    value = tagged_json.loads(raw)
    return value if isinstance(value, dict) else None


def status_of(raw: bytes | None) -> str:
    """The stored status, ``PENDING`` when nothing is stored."""
    if raw is None:
        return states.PENDING
    try:
        value = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return states.PENDING
    return str(value.get("status", states.PENDING)) if isinstance(value, dict) else states.PENDING

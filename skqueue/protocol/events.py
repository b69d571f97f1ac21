"""Celery events, as monitors (Flower, celery-exporter, ``celery events``) consume them.

An event is a flat dict: ``hostname``, ``utcoffset``, ``pid``, ``clock``, the type's own fields,
``timestamp`` and ``type``. It is published on the fanout exchange ``celeryev`` with the routing key
``type`` with ``-`` turned into ``.``; task events are batched into one ``task.multi`` message whose body
is a list.
"""

from __future__ import annotations

import reprlib
import time
from collections.abc import Sequence
from typing import Any

from skqueue.errors import ProtocolError
from skqueue.protocol.control import decode_payload, encode_envelope
from skqueue.protocol.message import TaskMessage

SW_IDENT = "skqueue"
BUFFER_LIMIT = 24
REPR_LIMIT = 1024

Event = dict[str, Any]

_repr = reprlib.Repr()
_repr.maxlevel = 6
_repr.maxlist = _repr.maxtuple = _repr.maxset = _repr.maxfrozenset = _repr.maxdeque = 100
_repr.maxdict = 100
_repr.maxstring = _repr.maxother = _repr.maxlong = REPR_LIMIT


def utcoffset() -> float:
    """Hours west of UTC, as Celery 5.7 computes it (true division)."""
    seconds = time.altzone if time.localtime().tm_isdst else time.timezone
    return seconds / 3600


def routing_key(event_type: str) -> str:
    """``task-succeeded`` -> ``task.succeeded``."""
    return event_type.replace("-", ".")


def make_event(event_type: str, *, hostname: str, pid: int, clock: int, timestamp: float | None = None,
               offset: float | None = None, **fields: Any) -> Event:
    """One event in Celery's field order."""
    return {
        "hostname": hostname,
        "utcoffset": utcoffset() if offset is None else offset,
        "pid": pid,
        "clock": clock,
        **fields,
        "timestamp": time.time() if timestamp is None else timestamp,
        "type": event_type,
    }


def encode_event(body: Event | list[Event], *, hostname: str, exchange: str, key: str) -> bytes:
    """The envelope an ``EventDispatcher`` publishes (a list body for ``task.multi``)."""
    return encode_envelope(body, headers={"hostname": hostname}, exchange=exchange, routing_key=key)


def decode_events(raw: bytes) -> list[Event]:
    """The events in one published message (one, or a ``*.multi`` batch)."""
    _, body = decode_payload(raw)
    items = body if isinstance(body, list) else [body]
    if not all(isinstance(item, dict) and "type" in item for item in items):
        raise ProtocolError("event body is not an event or a list of events")
    return items


def batches(events: Sequence[Event], limit: int = BUFFER_LIMIT) -> list[list[Event]]:
    """Split buffered events into ``*.multi`` bodies of at most ``limit`` events."""
    return [list(events[start:start + limit]) for start in range(0, len(events), limit)]


def safe_repr(value: Any, limit: int = REPR_LIMIT) -> str:
    """A bounded ``repr`` (large containers are abbreviated, not rendered whole)."""
    try:
        text = _repr.repr(value)
    except Exception as exc:  # a broken __repr__ must not break event sending
        text = f"<unrepresentable {type(value).__name__}: {type(exc).__name__}>"
    return text if len(text) <= limit else text[:limit - 3] + "..."


def task_received_fields(message: TaskMessage) -> dict[str, Any]:
    """Fields of ``task-received`` (args and kwargs as reprs, as Celery sends them)."""
    return {
        "uuid": message.id,
        "name": message.task,
        "args": message.argsrepr if message.argsrepr is not None else safe_repr(tuple(message.args)),
        "kwargs": message.kwargsrepr if message.kwargsrepr is not None else safe_repr(message.kwargs),
        "root_id": message.root_id,
        "parent_id": message.parent_id,
        "retries": message.retries,
        "eta": message.eta.isoformat() if message.eta else None,
        "expires": message.expires.isoformat() if message.expires else None,
    }

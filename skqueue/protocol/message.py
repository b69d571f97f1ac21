"""Celery task messages: decode what kombu puts on Redis, encode what a Celery worker accepts.

A Redis list element is a JSON envelope ``{body, content-type, content-encoding, headers, properties}``;
``body`` is base64 of the serialized ``[args, kwargs, embed]`` (task protocol v2) or of a dict (v1).
Only ``application/json`` bodies are ever deserialized.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any

import msgspec

from skqueue.errors import ContentDisallowed, ProtocolError
from skqueue.protocol import compression, tagged_json

JSON = "application/json"
# skqueue's own header: times this message was running when its worker process died.
CRASHES_HEADER = "skqueue_crashes"

# Header fields that belong to task protocol v2; anything else in ``headers`` is a custom header.
V2_HEADERS = frozenset(
    {
        "lang", "task", "id", "shadow", "eta", "expires", "group", "group_index", "retries", "timelimit",
        "root_id", "parent_id", "argsrepr", "kwargsrepr", "origin", "ignore_result",
        "replaced_task_nesting", "stamped_headers", "stamps", "compression",
    }
)


class Properties(msgspec.Struct):
    """The AMQP-like properties kombu emulates on Redis (unknown fields are ignored)."""

    delivery_tag: str | None = None
    body_encoding: str | None = None
    priority: Any = 0
    delivery_info: dict[str, Any] = {}
    correlation_id: str | None = None
    reply_to: str | None = None


class Envelope(msgspec.Struct):
    body: Any = None
    content_type: str | None = msgspec.field(default=None, name="content-type")
    content_encoding: str | None = msgspec.field(default=None, name="content-encoding")
    headers: dict[str, Any] | None = None
    properties: Properties = msgspec.field(default_factory=Properties)


_envelope_decoder = msgspec.json.Decoder(Envelope)
_TAG = b'"__type__"'


@dataclass(slots=True)
class Embed:
    """The third element of a v2 body: canvas signatures riding along with the task."""

    callbacks: list[dict[str, Any]] | None = None
    errbacks: list[dict[str, Any]] | None = None
    chain: list[dict[str, Any]] | None = None
    chord: dict[str, Any] | None = None


@dataclass(slots=True)
class TaskMessage:
    """A decoded task message. ``raw`` is the exact payload popped from Redis."""

    id: str
    task: str
    args: list[Any]
    kwargs: dict[str, Any]
    embed: Embed = field(default_factory=Embed)
    eta: datetime | None = None
    expires: datetime | None = None
    retries: int = 0
    timelimit: tuple[float | None, float | None] = (None, None)
    root_id: str | None = None
    parent_id: str | None = None
    group: str | None = None
    group_index: int | None = None
    shadow: str | None = None
    ignore_result: bool | None = None
    origin: str | None = None
    argsrepr: str | None = None
    kwargsrepr: str | None = None
    headers: dict[str, Any] = field(default_factory=dict)
    delivery_tag: str = ""
    priority: int = 0
    exchange: str = ""
    routing_key: str = ""
    redelivered: bool = False
    crashes: int = 0
    correlation_id: str | None = None
    reply_to: str | None = None
    raw: bytes = b""

    @property
    def custom_headers(self) -> dict[str, Any]:
        """Headers that are not part of task protocol v2 (``apply_async(headers=...)``)."""
        return {k: v for k, v in self.headers.items() if k not in V2_HEADERS and k != "redelivered"}


def clamp_priority(value: Any) -> int:
    """kombu's rule: an int clamped to 0..9; anything that is not a number is 0."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        return 0
    return min(max(number, 0), 9)


def parse_time(value: Any, tz: tzinfo) -> datetime | None:
    """Parse an ``eta``/``expires`` value; naive times are taken in ``tz`` (the worker's timezone)."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        raise ProtocolError(f"timestamp {value!r} is not an ISO-8601 string")
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise ProtocolError(f"invalid ISO-8601 time {value!r}") from exc
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=tz)


def _body_bytes(env: Envelope) -> bytes:
    body = env.body
    if not isinstance(body, str):
        raise ProtocolError("message body is missing or not a string")
    if env.properties.body_encoding == "base64":
        try:
            return binascii.a2b_base64(body.encode("ascii"), strict_mode=True)
        except (binascii.Error, UnicodeEncodeError) as exc:
            raise ProtocolError(f"body is not valid base64: {exc}") from exc
    return body.encode("utf-8")


def _check_content_type(env: Envelope) -> None:
    content_type = env.content_type or JSON
    if content_type != JSON:
        raise ContentDisallowed(f"refusing to deserialize content-type {content_type!r} (only JSON is accepted)")


def decode_envelope(raw: bytes) -> Envelope:
    """Parse the outer JSON object; raises :class:`ProtocolError` if it is not a kombu envelope."""
    try:
        return _envelope_decoder.decode(raw)
    except msgspec.DecodeError as exc:
        raise ProtocolError(f"envelope is not a kombu JSON message: {exc}") from exc


def decode_task(raw: bytes, tz: tzinfo) -> TaskMessage:
    """Decode one Redis list element into a :class:`TaskMessage` (protocol v2, or v1 upgraded)."""
    env = decode_envelope(raw)
    _check_content_type(env)
    data = _body_bytes(env)
    headers = env.headers or {}
    if headers.get("compression"):
        data = compression.decompress(data, str(headers["compression"]))
    body = tagged_json.loads(data)
    if _TAG in raw:
        headers = tagged_json.untag(headers)
    try:
        if "task" in headers:
            message = _from_v2(headers, body, tz)
        elif isinstance(body, dict) and "task" in body:
            message = _from_v1(body, tz)
        else:
            raise ProtocolError("message has no 'task' header (not a Celery task message)")
    except (ValueError, TypeError, AttributeError) as exc:
        if isinstance(exc, ProtocolError):
            raise
        raise ProtocolError(f"malformed task header: {exc}") from exc
    _apply_properties(message, env.properties, headers)
    message.raw = raw
    return message


def _from_v2(headers: dict[str, Any], body: Any, tz: tzinfo) -> TaskMessage:
    if not isinstance(body, list) or len(body) != 3:
        raise ProtocolError("protocol v2 body must be [args, kwargs, embed]")
    args, kwargs, embed = body
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise ProtocolError("protocol v2 body has args that are not a list or kwargs that are not an object")
    task_id = headers.get("id")
    if not isinstance(task_id, str) or not task_id:
        raise ProtocolError("protocol v2 message has no 'id' header")
    embed = embed if isinstance(embed, dict) else {}
    return TaskMessage(
        id=task_id,
        task=str(headers["task"]),
        args=args,
        kwargs=kwargs,
        embed=Embed(embed.get("callbacks"), embed.get("errbacks"), embed.get("chain"), embed.get("chord")),
        eta=parse_time(headers.get("eta"), tz),
        expires=parse_time(headers.get("expires"), tz),
        retries=int(headers.get("retries") or 0),
        timelimit=_timelimit(headers.get("timelimit")),
        root_id=headers.get("root_id"),
        parent_id=headers.get("parent_id"),
        group=headers.get("group"),
        group_index=headers.get("group_index"),
        shadow=headers.get("shadow"),
        ignore_result=headers.get("ignore_result"),
        origin=headers.get("origin"),
        argsrepr=headers.get("argsrepr"),
        kwargsrepr=headers.get("kwargsrepr"),
        headers=headers,
    )


def _from_v1(body: dict[str, Any], tz: tzinfo) -> TaskMessage:
    args, kwargs = body.get("args") or [], body.get("kwargs") or {}
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise ProtocolError("protocol v1 body has args that are not a list or kwargs that are not an object")
    if not isinstance(body.get("id"), str):
        raise ProtocolError("protocol v1 body has no 'id'")
    chord = body.get("chord")
    return TaskMessage(
        id=body["id"],
        task=str(body["task"]),
        args=args,
        kwargs=kwargs,
        embed=Embed(body.get("callbacks"), body.get("errbacks"), None, chord if isinstance(chord, dict) else None),
        eta=parse_time(body.get("eta"), tz),
        expires=parse_time(body.get("expires"), tz),
        retries=int(body.get("retries") or 0),
        timelimit=_timelimit(body.get("timelimit")),
        root_id=body.get("id"),
        group=body.get("taskset"),
        headers={},
    )


def _timelimit(value: Any) -> tuple[float | None, float | None]:
    if isinstance(value, list | tuple) and len(value) == 2:
        hard, soft = value
        return (float(hard) if hard else None, float(soft) if soft else None)
    return (None, None)


def _apply_properties(message: TaskMessage, props: Properties, headers: dict[str, Any]) -> None:
    info = props.delivery_info or {}
    message.delivery_tag = props.delivery_tag or ""
    message.priority = clamp_priority(props.priority)
    message.exchange = str(info.get("exchange") or "")
    message.routing_key = str(info.get("routing_key") or "")
    message.redelivered = bool(headers.get("redelivered") or info.get("redelivered"))
    crashes = headers.get(CRASHES_HEADER)
    message.crashes = crashes if isinstance(crashes, int) and not isinstance(crashes, bool) else 0
    message.correlation_id = props.correlation_id
    message.reply_to = props.reply_to


def _repr(value: Any, limit: int = 1024) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(slots=True)
class Outgoing:
    """What a publisher decides about a new task message (the routing is the caller's business)."""

    task: str
    args: list[Any] | tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    queue: str = "celery"
    priority: int = 0
    eta: datetime | None = None
    expires: datetime | None = None
    retries: int = 0
    root_id: str | None = None
    parent_id: str | None = None
    group: str | None = None
    group_index: int | None = None
    timelimit: tuple[float | None, float | None] = (None, None)
    shadow: str | None = None
    ignore_result: bool | None = False
    origin: str = ""
    embed: Embed = field(default_factory=Embed)
    extra_headers: dict[str, Any] = field(default_factory=dict)
    reply_to: str | None = None


def encode_task(out: Outgoing, *, expiration_ms: int | None = None) -> bytes:
    """Build the Redis list element a Celery 5.x client would ``LPUSH`` for ``out``."""
    embed = {
        "callbacks": out.embed.callbacks,
        "errbacks": out.embed.errbacks,
        "chain": out.embed.chain,
        "chord": out.embed.chord,
    }
    body = tagged_json.dumps([list(out.args), out.kwargs, embed])
    headers: dict[str, Any] = {
        "lang": "py",
        "task": out.task,
        "id": out.id,
        "shadow": out.shadow,
        "eta": out.eta.isoformat() if out.eta else None,
        "expires": out.expires.isoformat() if out.expires else None,
        "group": out.group,
        "group_index": out.group_index,
        "retries": out.retries,
        "timelimit": list(out.timelimit),
        "root_id": out.root_id or out.id,
        "parent_id": out.parent_id,
        "argsrepr": _repr(tuple(out.args)),
        "kwargsrepr": _repr(out.kwargs),
        "origin": out.origin,
        "ignore_result": out.ignore_result,
        "replaced_task_nesting": 0,
        "stamped_headers": None,
        "stamps": {},
    }
    headers.update(out.extra_headers)
    properties: dict[str, Any] = {
        "correlation_id": out.id,
        "reply_to": out.reply_to or str(uuid.uuid4()),
        "delivery_mode": 2,
        "delivery_info": {"exchange": "", "routing_key": out.queue},
        "priority": out.priority,
        "body_encoding": "base64",
        "delivery_tag": str(uuid.uuid4()),
    }
    if expiration_ms is not None:
        properties["expiration"] = str(max(expiration_ms, 0))
    envelope = {
        "body": base64.b64encode(body).decode("ascii"),
        "content-encoding": "utf-8",
        "content-type": JSON,
        "headers": tagged_json.to_tagged(headers),
        "properties": properties,
    }
    return msgspec.json.encode(envelope)


def mark_redelivered(raw: bytes, crashes: int | None = None) -> bytes:
    """Return ``raw`` with ``headers.redelivered`` and ``properties.delivery_info.redelivered`` set, as
    kombu does when it restores a message. Everything else, the delivery tag included, is kept.
    ``crashes``: how many times it was running when its worker died (the ``skqueue_crashes`` header)."""
    try:
        obj = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise ProtocolError(f"envelope is not valid JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise ProtocolError("envelope is not a JSON object")
    headers = obj.get("headers")
    if isinstance(headers, dict):
        headers["redelivered"] = True
        if crashes:
            headers[CRASHES_HEADER] = crashes
    props = obj.setdefault("properties", {})
    if isinstance(props, dict):
        info = props.setdefault("delivery_info", {})
        if isinstance(info, dict):
            info["redelivered"] = True
    return msgspec.json.encode(obj)

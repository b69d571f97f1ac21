"""Remote control messages (kombu's pidbox): requests broadcast to workers, and the replies they push back.

Both travel in the same kombu envelope as task messages (JSON, base64 body). A request's body is
``{method, arguments, destination, pattern, matcher[, ticket, reply_to]}`` with headers ``{clock,
expires}``; a reply's body is ``{<node name>: <result>}`` with headers ``{ticket, clock}``.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

import msgspec

from skqueue.errors import ProtocolError
from skqueue.protocol import tagged_json
from skqueue.protocol.message import JSON, decode_envelope

TRANSIENT = 1
PERSISTENT = 2


@dataclass(frozen=True, slots=True)
class ReplyTo:
    """Where a reply goes: a direct exchange (``reply.celery.pidbox``) and the client's routing key."""

    exchange: str
    routing_key: str


@dataclass(frozen=True, slots=True)
class ControlRequest:
    """One remote control command. ``ticket`` and ``reply_to`` are set when the sender waits for replies."""

    method: str
    arguments: dict[str, Any] = field(default_factory=dict)
    destination: list[str] | None = None
    pattern: str | None = None
    matcher: str | None = None
    ticket: str | None = None
    reply_to: ReplyTo | None = None
    clock: int = 0
    expires: float = 0.0

    def addressed_to(self, node: str) -> bool:
        """kombu's rule: a destination list names the node; else a pattern matches it; else everyone."""
        if self.destination:
            return node in self.destination
        if self.pattern and self.matcher:
            return matches(node, self.pattern, self.matcher)
        return True


@dataclass(frozen=True, slots=True)
class ControlReply:
    """A decoded reply: ``body`` maps node names to what their handler returned."""

    ticket: str | None
    clock: int
    body: dict[str, Any]


def matches(node: str, pattern: str, matcher: str) -> bool:
    """kombu's matchers: ``glob`` (fnmatch on the node name) and ``pcre`` (``re.match``); others match
    nothing (kombu raises there, which drops the request)."""
    if matcher == "glob":
        return fnmatch.fnmatch(node, pattern)
    if matcher == "pcre":
        try:
            return re.match(pattern, node) is not None
        except re.error:
            return False
    return False


def encode_envelope(body: Any, *, headers: dict[str, Any], exchange: str, routing_key: str,
                    delivery_mode: int = TRANSIENT) -> bytes:
    """The kombu JSON envelope around ``body`` (encoded as kombu-tagged JSON, then base64)."""
    envelope = {
        "body": base64.b64encode(tagged_json.dumps(body)).decode("ascii"),
        "content-encoding": "utf-8",
        "content-type": JSON,
        "headers": headers,
        "properties": {
            "delivery_mode": delivery_mode,
            "delivery_info": {"exchange": exchange, "routing_key": routing_key},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    }
    return msgspec.json.encode(envelope)


def decode_payload(raw: bytes) -> tuple[dict[str, Any], Any]:
    """``(headers, body)`` of a kombu JSON envelope; raises :class:`ProtocolError` otherwise."""
    env = decode_envelope(raw)
    if (env.content_type or JSON) != JSON:
        raise ProtocolError(f"refusing to deserialize content-type {env.content_type!r}")
    if not isinstance(env.body, str):
        raise ProtocolError("message body is missing or not a string")
    try:
        data = (base64.b64decode(env.body, validate=True) if env.properties.body_encoding == "base64"
                else env.body.encode("utf-8"))
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise ProtocolError(f"body is not valid base64: {exc}") from exc
    return dict(env.headers or {}), tagged_json.loads(data)


def encode_request(request: ControlRequest, *, exchange: str) -> bytes:
    """What ``Mailbox._publish`` sends on the broadcast exchange (``celery.pidbox``)."""
    body: dict[str, Any] = {
        "method": request.method,
        "arguments": request.arguments,
        "destination": request.destination,
        "pattern": request.pattern,
        "matcher": request.matcher,
    }
    if request.ticket and request.reply_to is not None:
        body["ticket"] = request.ticket
        body["reply_to"] = {"exchange": request.reply_to.exchange, "routing_key": request.reply_to.routing_key}
    headers = {"clock": request.clock, "expires": request.expires}
    return encode_envelope(body, headers=headers, exchange=exchange, routing_key="", delivery_mode=PERSISTENT)


def decode_request(raw: bytes) -> ControlRequest:
    """Parse a pidbox request; raises :class:`ProtocolError` if it is not one."""
    headers, body = decode_payload(raw)
    if not isinstance(body, dict) or not isinstance(body.get("method"), str):
        raise ProtocolError("control request has no 'method'")
    arguments = body.get("arguments") or {}
    destination = body.get("destination")
    if not isinstance(arguments, dict) or not (destination is None or isinstance(destination, list)):
        raise ProtocolError("control request has malformed 'arguments' or 'destination'")
    return ControlRequest(
        method=body["method"],
        arguments=arguments,
        destination=[str(node) for node in destination] if destination else None,
        pattern=_str_or_none(body.get("pattern")),
        matcher=_str_or_none(body.get("matcher")),
        ticket=_str_or_none(body.get("ticket")),
        reply_to=_reply_to(body.get("reply_to")),
        clock=_int(headers.get("clock")),
        expires=_float(headers.get("expires")),
    )


def encode_reply(node: str, result: Any, *, ticket: str | None, clock: int, reply_to: ReplyTo) -> bytes:
    """What ``Mailbox._publish_reply`` pushes into the client's reply queue."""
    return encode_envelope({node: result}, headers={"ticket": ticket, "clock": clock},
                           exchange=reply_to.exchange, routing_key=reply_to.routing_key)


def decode_reply(raw: bytes) -> ControlReply:
    """Parse a reply a worker pushed into a reply queue."""
    headers, body = decode_payload(raw)
    if not isinstance(body, dict):
        raise ProtocolError("control reply body is not an object")
    return ControlReply(_str_or_none(headers.get("ticket")), _int(headers.get("clock")), body)


def _reply_to(value: Any) -> ReplyTo | None:
    if not isinstance(value, dict) or not value.get("exchange"):
        return None
    return ReplyTo(str(value["exchange"]), str(value.get("routing_key") or ""))


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0

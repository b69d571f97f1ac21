"""kombu's JSON dialect: plain JSON plus ``{"__type__": T, "__value__": V}`` tags for Python types.

Celery clients (kombu >= 5.3) tag ``datetime``, ``date``, ``time``, ``Decimal``, ``UUID`` and ``bytes`` this
way in task arguments and read the same tags back from results. Decoding uses ``msgspec``; the tree walk
that resolves tags only runs when the raw bytes contain a tag at all.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import uuid
from collections.abc import Callable
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any

import msgspec

from skqueue.errors import ProtocolError

_TAG = b'"__type__"'
_decoder = msgspec.json.Decoder()


def _decode_uuid(value: Any) -> uuid.UUID:
    if isinstance(value, dict):
        return uuid.UUID(hex=value["hex"])
    return uuid.UUID(str(value))


_DECODERS: dict[str, Callable[[Any], Any]] = {
    "datetime": datetime.fromisoformat,
    "date": lambda v: datetime.fromisoformat(v).date(),
    "time": time.fromisoformat,
    "decimal": Decimal,
    "uuid": _decode_uuid,
    "bytes": lambda v: v.encode("utf-8"),
    "base64": lambda v: base64.b64decode(v.encode("ascii"), validate=True),
}


def _untag(obj: Any) -> Any:
    if isinstance(obj, list):
        return [_untag(item) for item in obj]
    if isinstance(obj, dict):
        if len(obj) == 2 and "__type__" in obj and "__value__" in obj:
            decoder = _DECODERS.get(obj["__type__"])
            if decoder is None:
                raise ProtocolError(f"unsupported JSON type tag {obj['__type__']!r}")
            try:
                return decoder(obj["__value__"])
            except (ValueError, TypeError, KeyError, AttributeError, InvalidOperation, binascii.Error) as exc:
                raise ProtocolError(f"bad {obj['__type__']} value {obj['__value__']!r}: {exc}") from exc
        return {key: _untag(value) for key, value in obj.items()}
    return obj


def untag(value: Any) -> Any:
    """Resolve type tags in an already-decoded JSON value."""
    return _untag(value)


def loads(data: bytes | str) -> Any:
    """Decode kombu-flavoured JSON, turning type tags back into Python values."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    try:
        value = _decoder.decode(raw)
    except msgspec.DecodeError as exc:
        value = _loads_nonfinite(raw, exc)
    if _TAG in raw:
        return _untag(value)
    return value


def _loads_nonfinite(raw: bytes, error: msgspec.DecodeError) -> Any:
    """kombu (the stdlib json) writes NaN and Infinity, which strict JSON parsers reject."""
    if b"NaN" not in raw and b"Infinity" not in raw:
        raise ProtocolError(f"invalid JSON: {error}") from error
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"invalid JSON: {exc}") from exc


def _tag(kind: str, value: Any) -> dict[str, Any]:
    return {"__type__": kind, "__value__": value}


def _tag_bytes(value: bytes) -> dict[str, Any]:
    try:
        return _tag("bytes", value.decode("utf-8"))
    except UnicodeDecodeError:
        return _tag("base64", base64.b64encode(value).decode("ascii"))


class _NonFinite(Exception):
    """A NaN or infinite float: msgspec would write null, so the stdlib encoder is used instead."""


def to_tagged(obj: Any) -> Any:
    """Return ``obj`` with every non-JSON value replaced by its kombu tag (containers are copied)."""
    if obj is None or isinstance(obj, str | int | bool):
        return obj
    if isinstance(obj, float):
        if not math.isfinite(obj):
            raise _NonFinite
        return obj
    if isinstance(obj, list | tuple):
        return [to_tagged(item) for item in obj]
    if isinstance(obj, dict):
        return {_key(key): to_tagged(value) for key, value in obj.items()}
    return _tag_scalar(obj)


_SPECIAL_KEYS = {True: "true", False: "false", None: "null"}


def _key(key: Any) -> Any:
    """Dict keys as the stdlib json writes them: true/false/null for the singletons, numbers as is."""
    if key is None or isinstance(key, bool):
        return _SPECIAL_KEYS[key]
    return key if isinstance(key, str | int | float) else str(key)


def _tag_scalar(obj: Any) -> Any:
    # datetime is a date subclass: test it first.
    if isinstance(obj, datetime):
        return _tag("datetime", obj.isoformat())
    if isinstance(obj, date):
        return _tag("date", obj.isoformat())
    if isinstance(obj, time):
        return _tag("time", obj.isoformat())
    if isinstance(obj, Decimal):
        return _tag("decimal", str(obj))
    if isinstance(obj, uuid.UUID):
        return _tag("uuid", {"hex": obj.hex})
    if isinstance(obj, bytes | bytearray | memoryview):
        return _tag_bytes(bytes(obj))
    if isinstance(obj, set | frozenset):
        return [to_tagged(item) for item in obj]
    reducer = getattr(obj, "__json__", None)
    if callable(reducer):
        return to_tagged(reducer())
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


_encoder = msgspec.json.Encoder()


def dumps(obj: Any) -> bytes:
    """Encode ``obj`` as kombu-flavoured JSON bytes. Raises ``TypeError`` for unserializable values."""
    try:
        return _encoder.encode(to_tagged(obj))
    except _NonFinite:
        return json.dumps(_tag_allowing_nonfinite(obj), allow_nan=True).encode("utf-8")


def _tag_allowing_nonfinite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj
    if isinstance(obj, list | tuple):
        return [_tag_allowing_nonfinite(item) for item in obj]
    if isinstance(obj, dict):
        return {_key(key): _tag_allowing_nonfinite(value) for key, value in obj.items()}
    return to_tagged(obj)

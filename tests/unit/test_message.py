"""skqueue.protocol.message against messages a real Celery client publishes (captured in-process)."""

from __future__ import annotations

import base64
import json
import pickle
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from celery import Celery
from celery.worker.request import Request
from kombu import Connection
from kombu.utils.json import dumps as kombu_dumps
from kombu.utils.json import loads as kombu_loads

from skqueue.errors import ContentDisallowed, ProtocolError
from skqueue.protocol.message import (
    V2_HEADERS,
    Embed,
    Outgoing,
    TaskMessage,
    clamp_priority,
    decode_task,
    encode_task,
    mark_redelivered,
)
from tests.unit.conftest import CeleryClient, Published

UTC_TZ = ZoneInfo("UTC")
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")

# Header fields of task protocol v2 (spec section 1.3), as a Celery 5.4+ client sends them.
SPEC_V2_FIELDS = {
    "lang", "task", "id", "shadow", "eta", "expires", "group", "group_index", "retries", "timelimit",
    "root_id", "parent_id", "argsrepr", "kwargsrepr", "origin", "ignore_result", "replaced_task_nesting",
    "stamped_headers", "stamps",
}
ENVELOPE_KEYS = {"body", "content-encoding", "content-type", "headers", "properties"}


def _decode(published: Published, tz: ZoneInfo = UTC_TZ) -> TaskMessage:
    return decode_task(published.raw, tz)


def _body_of(envelope: dict[str, Any]) -> Any:
    return kombu_loads(base64.b64decode(envelope["body"]))


def _raw(envelope: dict[str, Any]) -> bytes:
    return kombu_dumps(envelope).encode("utf-8")


def _with_body(envelope: dict[str, Any], body: bytes) -> bytes:
    changed = dict(envelope, body=base64.b64encode(body).decode("ascii"))
    return _raw(changed)


@pytest.fixture
def client_app(celery_client: CeleryClient) -> Celery:
    return celery_client.app()


# ---------------------------------------------------------------- decoding real client messages


def test_delay_args_and_kwargs(celery_client: CeleryClient, client_app: Celery) -> None:
    pub = celery_client.send(client_app, "proj.add", (2, 3), {"z": "q"})
    message = _decode(pub)
    assert message.task == "proj.add"
    assert message.id == pub.headers["id"]
    assert message.args == [2, 3]
    assert message.kwargs == {"z": "q"}
    assert message.embed == Embed(None, None, None, None)
    assert message.retries == 0
    assert message.root_id == message.id
    assert message.parent_id is None
    assert message.argsrepr == "(2, 3)"
    assert message.kwargsrepr == "{'z': 'q'}"
    assert message.origin == pub.headers["origin"]
    assert message.delivery_tag == pub.properties["delivery_tag"]
    assert message.correlation_id == message.id
    assert message.reply_to == pub.properties["reply_to"]
    assert message.exchange == ""
    assert message.routing_key == "default" == pub.queue
    assert message.redelivered is False
    assert message.priority == 0
    assert message.raw == pub.raw
    assert message.eta is None
    assert message.expires is None
    assert message.timelimit == (None, None)


def test_tagged_arguments_decode_like_kombu(celery_client: CeleryClient, client_app: Celery) -> None:
    args = (datetime(2030, 1, 1, tzinfo=UTC), date(2030, 1, 2), Decimal("1.10"), uuid.uuid4(), b"\xff\x00")
    kwargs = {"nested": {"when": [datetime(2030, 1, 1, 12)]}, "text": b"ok", "t": (1, 2)}
    pub = celery_client.send(client_app, "proj.add", args, kwargs)
    message = _decode(pub)
    expected_args, expected_kwargs, _ = _body_of(pub.message)
    assert message.args == expected_args == list(args)
    assert message.kwargs == expected_kwargs
    assert message.kwargs["t"] == [1, 2]


def test_canvas_embed(celery_client: CeleryClient, client_app: Celery) -> None:
    callback = client_app.signature("proj.cb", args=(10,))
    errback = client_app.signature("proj.err")
    pub = celery_client.send(client_app, "proj.add", (1, 5), link=callback, link_error=errback)
    message = _decode(pub)
    _, _, embed = _body_of(pub.message)
    assert message.embed.callbacks == embed["callbacks"]
    assert message.embed.callbacks[0]["task"] == "proj.cb"
    assert message.embed.callbacks[0]["args"] == [10]
    assert message.embed.errbacks == embed["errbacks"]
    assert message.embed.errbacks[0]["task"] == "proj.err"


def test_group_and_lineage_headers(celery_client: CeleryClient, client_app: Celery) -> None:
    pub = celery_client.send(
        client_app, "proj.add", (1,), group_id="g-1", group_index=2, shadow="nice name",
        root_id="root-1", parent_id="parent-1", retries=3, ignore_result=True,
    )
    message = _decode(pub)
    assert message.group == "g-1"
    assert message.group_index == 2
    assert message.shadow == "nice name"
    assert message.root_id == "root-1"
    assert message.parent_id == "parent-1"
    assert message.retries == 3
    assert message.ignore_result is True


def test_custom_headers(celery_client: CeleryClient, client_app: Celery) -> None:
    pub = celery_client.send(client_app, "proj.add", (1,), headers={"custom_hdr": "v", "n": 1, "obj": {"a": [1]}})
    message = _decode(pub)
    assert message.custom_headers == {"custom_hdr": "v", "n": 1, "obj": {"a": [1]}}
    assert message.headers["custom_hdr"] == "v"
    assert set(message.headers) - set(message.custom_headers) <= V2_HEADERS


def test_custom_header_values_are_untagged_like_kombu(celery_client: CeleryClient, client_app: Celery) -> None:
    # kombu decodes the whole envelope with its object_hook, so a Celery worker sees a datetime here.
    when = datetime(2030, 1, 1, tzinfo=UTC)
    pub = celery_client.send(client_app, "proj.add", (1,), headers={"when": when})
    assert kombu_loads(pub.raw)["headers"]["when"] == when
    assert _decode(pub).custom_headers == {"when": when}


def test_countdown_gives_aware_eta(celery_client: CeleryClient, client_app: Celery) -> None:
    before = datetime.now(UTC)
    pub = celery_client.send(client_app, "proj.add", (1,), countdown=30)
    after = datetime.now(UTC)
    message = _decode(pub)
    assert message.eta is not None
    assert message.eta.tzinfo is not None
    assert before + timedelta(seconds=30) <= message.eta <= after + timedelta(seconds=30)
    assert message.eta == datetime.fromisoformat(pub.headers["eta"])


def test_aware_eta(celery_client: CeleryClient, client_app: Celery) -> None:
    eta = datetime(2030, 1, 1, tzinfo=UTC)
    pub = celery_client.send(client_app, "proj.add", (1,), eta=eta)
    assert pub.headers["eta"] == "2030-01-01T00:00:00+00:00"
    message = _decode(pub, NEW_YORK)
    assert message.eta == eta
    assert message.eta.utcoffset() == timedelta(0)


def test_eta_in_app_timezone(celery_client: CeleryClient) -> None:
    capp = celery_client.app(timezone="Europe/Berlin", enable_utc=False)
    before = datetime.now(UTC)
    pub = celery_client.send(capp, "proj.add", (1,), countdown=60)
    after = datetime.now(UTC)
    message = _decode(pub)
    assert message.eta is not None
    assert message.eta.utcoffset() in (timedelta(hours=1), timedelta(hours=2))
    assert before + timedelta(seconds=60) <= message.eta <= after + timedelta(seconds=60)


@pytest.mark.parametrize("tz", [UTC_TZ, BERLIN, NEW_YORK], ids=str)
def test_naive_eta_takes_given_timezone(celery_client: CeleryClient, client_app: Celery, tz: ZoneInfo) -> None:
    pub = celery_client.send(client_app, "proj.add", (1,), eta=datetime(2030, 1, 1, 12, 0))
    assert pub.headers["eta"] == "2030-01-01T12:00:00"
    message = _decode(pub, tz)
    assert message.eta == datetime(2030, 1, 1, 12, 0, tzinfo=tz)
    assert message.eta.utcoffset() == tz.utcoffset(datetime(2030, 1, 1, 12, 0))


def test_expires_seconds(celery_client: CeleryClient, client_app: Celery) -> None:
    before = datetime.now(UTC)
    pub = celery_client.send(client_app, "proj.add", (1,), expires=60)
    after = datetime.now(UTC)
    message = _decode(pub)
    assert pub.properties["expiration"] == "60000"
    assert message.expires is not None
    assert message.expires.tzinfo is not None
    assert before + timedelta(seconds=60) <= message.expires <= after + timedelta(seconds=60)


def test_expires_datetime(celery_client: CeleryClient, client_app: Celery) -> None:
    expires = datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC)
    message = _decode(celery_client.send(client_app, "proj.add", (1,), expires=expires))
    assert message.expires == expires


@pytest.mark.parametrize(("sent", "expected"), [(-1, 0), (0, 0), (7, 7), (9, 9), (12, 9)])
def test_priority_from_client_is_clamped(
    celery_client: CeleryClient, client_app: Celery, sent: int, expected: int
) -> None:
    pub = celery_client.send(client_app, "proj.add", (1,), priority=sent)
    assert pub.properties["priority"] == sent  # the raw value travels; the worker clamps
    assert _decode(pub).priority == expected


@pytest.mark.parametrize(("raw", "expected"), [("x", 0), (None, 0), ("5", 5), (3.7, 3), ([1], 0), (-100, 0)])
def test_odd_priority_values(celery_client: CeleryClient, client_app: Celery, raw: Any, expected: int) -> None:
    envelope = celery_client.send(client_app, "proj.add", (1,)).message
    envelope["properties"]["priority"] = raw
    assert decode_task(_raw(envelope), UTC_TZ).priority == expected
    assert clamp_priority(raw) == expected


def test_timelimit(celery_client: CeleryClient, client_app: Celery) -> None:
    pub = celery_client.send(client_app, "proj.add", (1,), time_limit=30, soft_time_limit=20)
    assert pub.headers["timelimit"] == [30, 20]
    assert _decode(pub).timelimit == (30.0, 20.0)


def test_soft_timelimit_only(celery_client: CeleryClient, client_app: Celery) -> None:
    message = _decode(celery_client.send(client_app, "proj.add", (1,), soft_time_limit=5))
    assert message.timelimit == (None, 5.0)


@pytest.mark.parametrize("compression", ["zlib", "gzip", "bzip2", "lzma"])
def test_compressed_bodies(celery_client: CeleryClient, compression: str) -> None:
    capp = celery_client.app(task_compression=compression)
    kwargs = {"text": "x" * 500, "when": datetime(2030, 1, 1, tzinfo=UTC)}
    pub = celery_client.send(capp, "proj.add", (1, 2), kwargs)
    assert pub.headers["compression"].startswith("application/")
    with pytest.raises(ValueError):  # really compressed: not JSON as it stands
        json.loads(base64.b64decode(pub.message["body"]))
    message = _decode(pub)
    assert message.args == [1, 2]
    assert message.kwargs == kwargs
    assert "compression" not in message.custom_headers


def test_corrupt_compressed_body_is_protocol_error(celery_client: CeleryClient) -> None:
    pub = celery_client.send(celery_client.app(task_compression="zlib"), "proj.add", (1,))
    with pytest.raises(ProtocolError):
        decode_task(_with_body(pub.message, b"not zlib data"), UTC_TZ)


def test_unknown_compression_is_protocol_error(celery_client: CeleryClient, client_app: Celery) -> None:
    envelope = celery_client.send(client_app, "proj.add", (1,)).message
    envelope["headers"]["compression"] = "application/x-frobnicate"
    with pytest.raises(ProtocolError, match="frobnicate"):
        decode_task(_raw(envelope), UTC_TZ)


# ---------------------------------------------------------------- protocol v1


def test_protocol_v1_body(celery_client: CeleryClient) -> None:
    capp = celery_client.app(task_protocol=1)
    eta = datetime(2030, 1, 1, tzinfo=UTC)
    pub = celery_client.send(
        capp, "proj.add", (1, datetime(2030, 1, 2, tzinfo=UTC)), {"k": Decimal("2.5")}, eta=eta, expires=eta,
        group_id="g-1", time_limit=30, soft_time_limit=20, link=capp.signature("proj.cb"),
    )
    body = _body_of(pub.message)
    assert isinstance(body, dict)
    assert body["task"] == "proj.add"
    assert pub.headers == {}
    message = _decode(pub)
    assert message.task == "proj.add"
    assert message.id == body["id"]
    assert message.root_id == body["id"]
    assert message.args == [1, datetime(2030, 1, 2, tzinfo=UTC)]
    assert message.kwargs == {"k": Decimal("2.5")}
    assert message.eta == eta
    assert message.expires == eta
    assert message.group == "g-1"
    assert message.timelimit == (30.0, 20.0)
    assert message.embed.callbacks is not None
    assert message.embed.callbacks[0]["task"] == "proj.cb"
    assert message.delivery_tag == pub.properties["delivery_tag"]
    assert message.routing_key == "default"


def test_protocol_v1_without_id_is_protocol_error(celery_client: CeleryClient) -> None:
    pub = celery_client.send(celery_client.app(task_protocol=1), "proj.add", (1,))
    body = _body_of(pub.message)
    del body["id"]
    with pytest.raises(ProtocolError):
        decode_task(_with_body(pub.message, kombu_dumps(body).encode()), UTC_TZ)


# ---------------------------------------------------------------- refused / malformed messages

_SIDE_EFFECTS: list[str] = []


def _record_unpickle(tag: str) -> str:
    _SIDE_EFFECTS.append(tag)
    return tag


class _Trap:
    """Unpickling this calls _record_unpickle: proof that a body was unpickled."""

    def __reduce__(self) -> tuple[Callable[[str], str], tuple[str]]:
        return (_record_unpickle, ("unpickled!",))


def test_pickle_message_is_refused_without_unpickling(
    celery_client: CeleryClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    capp = celery_client.app(task_serializer="pickle", accept_content=["pickle"])
    pub = celery_client.send(capp, "proj.add", (1, 2))
    assert pub.message["content-type"] == "application/x-python-serialize"
    trap = pickle.dumps(((_Trap(),), {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}))
    raw = _with_body(pub.message, trap)
    pickle.loads(trap)  # the trap works ...
    assert _SIDE_EFFECTS == ["unpickled!"]
    _SIDE_EFFECTS.clear()

    def no_unpickling(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("pickle.loads called")

    monkeypatch.setattr(pickle, "loads", no_unpickling)
    monkeypatch.setattr(pickle, "load", no_unpickling)
    with pytest.raises(ContentDisallowed, match="python-serialize"):
        decode_task(raw, UTC_TZ)
    assert _SIDE_EFFECTS == []  # ... and decode_task never triggered it


@pytest.mark.parametrize("content_type", ["application/x-yaml", "application/x-msgpack", "text/plain"])
def test_other_content_types_are_disallowed(
    celery_client: CeleryClient, client_app: Celery, content_type: str
) -> None:
    envelope = celery_client.send(client_app, "proj.add", (1,)).message
    envelope["content-type"] = content_type
    with pytest.raises(ContentDisallowed):
        decode_task(_raw(envelope), UTC_TZ)


def test_content_disallowed_is_a_protocol_error() -> None:
    assert issubclass(ContentDisallowed, ProtocolError)


@pytest.mark.parametrize("body", ["!!!not base64!!!", "W1s", "W1sxLCAyXSwge30sIHt9XQ=*"])
def test_bad_base64_is_protocol_error(celery_client: CeleryClient, client_app: Celery, body: str) -> None:
    envelope = celery_client.send(client_app, "proj.add", (1,)).message
    envelope["body"] = body
    with pytest.raises(ProtocolError, match="base64"):
        decode_task(_raw(envelope), UTC_TZ)


def test_body_without_base64_encoding_is_raw_text(celery_client: CeleryClient, client_app: Celery) -> None:
    envelope = celery_client.send(client_app, "proj.add", (1,)).message
    envelope["body"] = kombu_dumps([[7], {"a": 1}, {}])
    del envelope["properties"]["body_encoding"]
    message = decode_task(_raw(envelope), UTC_TZ)
    assert message.args == [7]
    assert message.kwargs == {"a": 1}


@pytest.mark.parametrize("header", ["id", "task"])
def test_missing_id_or_task_header_is_protocol_error(
    celery_client: CeleryClient, client_app: Celery, header: str
) -> None:
    envelope = celery_client.send(client_app, "proj.add", (1,)).message
    del envelope["headers"][header]
    with pytest.raises(ProtocolError):
        decode_task(_raw(envelope), UTC_TZ)


@pytest.mark.parametrize("value", ["", None, 5])
def test_empty_or_non_string_id_is_protocol_error(
    celery_client: CeleryClient, client_app: Celery, value: Any
) -> None:
    envelope = celery_client.send(client_app, "proj.add", (1,)).message
    envelope["headers"]["id"] = value
    with pytest.raises(ProtocolError):
        decode_task(_raw(envelope), UTC_TZ)


@pytest.mark.parametrize(
    "body",
    [[[1], {}], [[1], {}, {}, {}], {"args": [1]}, [{}, {}, {}], [[], [], {}], "text", None, 5],
    ids=["two", "four", "dict", "args-dict", "kwargs-list", "str", "null", "int"],
)
def test_v2_body_must_be_args_kwargs_embed(
    celery_client: CeleryClient, client_app: Celery, body: Any
) -> None:
    pub = celery_client.send(client_app, "proj.add", (1,))
    with pytest.raises(ProtocolError):
        decode_task(_with_body(pub.message, json.dumps(body).encode()), UTC_TZ)


def test_body_that_is_not_json_is_protocol_error(celery_client: CeleryClient, client_app: Celery) -> None:
    pub = celery_client.send(client_app, "proj.add", (1,))
    with pytest.raises(ProtocolError):
        decode_task(_with_body(pub.message, b"\x80\x04not json"), UTC_TZ)


def test_unknown_tag_in_args_is_protocol_error(celery_client: CeleryClient, client_app: Celery) -> None:
    pub = celery_client.send(client_app, "proj.add", (1,))
    body = b'[[{"__type__": "frobnicate", "__value__": 1}], {}, {}]'
    with pytest.raises(ProtocolError, match="frobnicate"):
        decode_task(_with_body(pub.message, body), UTC_TZ)


@pytest.mark.parametrize(
    "raw", [b"", b"not json", b"[1, 2]", b'"str"', b'{"body": 5, "headers": {"task": "x", "id": "y"}}',
            b'{"body": "W10=", "headers": [1]}'],
    ids=["empty", "garbage", "array", "string", "int-body", "list-headers"],
)
def test_not_an_envelope_is_protocol_error(raw: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_task(raw, UTC_TZ)


@pytest.mark.parametrize(
    ("header", "value"),
    [("eta", "tomorrow"), ("eta", 1700000000), ("expires", "2030-99-99"), ("expires", 1.5)],
)
def test_bad_time_headers_are_protocol_errors(
    celery_client: CeleryClient, client_app: Celery, header: str, value: Any
) -> None:
    envelope = celery_client.send(client_app, "proj.add", (1,)).message
    envelope["headers"][header] = value
    with pytest.raises(ProtocolError):
        decode_task(_raw(envelope), UTC_TZ)


@pytest.mark.parametrize(
    ("header", "value"),
    [("retries", "x"), ("retries", [1]), ("timelimit", ["a", None]), ("timelimit", [None, [1]])],
)
def test_malformed_numeric_headers_are_protocol_errors(
    celery_client: CeleryClient, client_app: Celery, header: str, value: Any
) -> None:
    # The worker only catches ProtocolError around decode_task (worker.Worker._accept); a bare ValueError
    # or TypeError from int()/float() escapes the consume loop.
    envelope = celery_client.send(client_app, "proj.add", (1,)).message
    envelope["headers"][header] = value
    with pytest.raises(ProtocolError):
        decode_task(_raw(envelope), UTC_TZ)


# ---------------------------------------------------------------- encode_task


def _outgoing(**overrides: Any) -> Outgoing:
    values: dict[str, Any] = {
        "task": "proj.add",
        "args": (1, datetime(2030, 1, 2, tzinfo=UTC)),
        "kwargs": {"z": Decimal("1.5"), "b": b"\xff"},
        "queue": "work",
        "priority": 6,
        "eta": datetime(2030, 1, 1, tzinfo=UTC),
        "expires": datetime(2030, 1, 2, tzinfo=UTC),
        "retries": 2,
        "root_id": "root-1",
        "parent_id": "parent-1",
        "group": "g-1",
        "group_index": 4,
        "timelimit": (30, 20),
        "shadow": "shadowed",
        "ignore_result": True,
        "origin": "w1@host",
        "embed": Embed(callbacks=[{"task": "proj.cb", "args": [], "kwargs": {}, "options": {},
                                   "subtask_type": None, "immutable": False}]),
        "extra_headers": {"custom": "v"},
        "reply_to": "reply-1",
    }
    values.update(overrides)
    return Outgoing(**values)


def test_encode_decode_round_trip() -> None:
    out = _outgoing()
    message = decode_task(encode_task(out), NEW_YORK)
    assert message.task == out.task
    assert message.id == out.id
    assert message.args == list(out.args)
    assert message.kwargs == out.kwargs
    assert message.embed == out.embed
    assert message.eta == out.eta
    assert message.expires == out.expires
    assert message.retries == 2
    assert message.root_id == "root-1"
    assert message.parent_id == "parent-1"
    assert message.group == "g-1"
    assert message.group_index == 4
    assert message.timelimit == (30.0, 20.0)
    assert message.shadow == "shadowed"
    assert message.ignore_result is True
    assert message.origin == "w1@host"
    assert message.custom_headers == {"custom": "v"}
    assert message.priority == 6
    assert message.routing_key == "work"
    assert message.exchange == ""
    assert message.correlation_id == out.id
    assert message.reply_to == "reply-1"
    assert message.delivery_tag
    assert message.redelivered is False


def test_encode_defaults() -> None:
    out = Outgoing("proj.noargs")
    message = decode_task(encode_task(out), UTC_TZ)
    assert message.args == []
    assert message.kwargs == {}
    assert message.root_id == out.id
    assert message.eta is None
    assert message.expires is None
    assert message.routing_key == "celery"
    uuid.UUID(message.id)
    uuid.UUID(message.delivery_tag)


def test_each_encode_gets_a_fresh_delivery_tag() -> None:
    out = Outgoing("proj.add", (1,))
    tags = {json.loads(encode_task(out))["properties"]["delivery_tag"] for _ in range(3)}
    assert len(tags) == 3


def test_encoded_envelope_has_kombus_keys(celery_client: CeleryClient, client_app: Celery) -> None:
    celery_pub = celery_client.send(client_app, "proj.add", (1,))
    ours = json.loads(encode_task(Outgoing("proj.add", (1,))))
    assert set(ours) == set(celery_pub.message) == ENVELOPE_KEYS
    assert set(ours["properties"]) == set(celery_pub.properties)
    assert set(ours["properties"]["delivery_info"]) == set(celery_pub.properties["delivery_info"])
    assert ours["content-type"] == celery_pub.message["content-type"] == "application/json"
    assert ours["content-encoding"] == celery_pub.message["content-encoding"] == "utf-8"
    assert ours["properties"]["body_encoding"] == "base64"
    assert ours["properties"]["delivery_mode"] == 2


def test_encoded_headers_have_every_v2_field(celery_client: CeleryClient, client_app: Celery) -> None:
    celery_headers = celery_client.send(client_app, "proj.add", (1,)).headers
    ours = json.loads(encode_task(Outgoing("proj.add", (1,))))["headers"]
    assert set(ours) == SPEC_V2_FIELDS == set(celery_headers)
    assert ours["lang"] == "py"
    assert ours["timelimit"] == [None, None]
    assert ours["stamps"] == {}
    assert ours["replaced_task_nesting"] == 0


def test_encoded_body_is_args_kwargs_embed() -> None:
    out = _outgoing(args=(1, (2, 3)), kwargs={"k": "v"}, embed=Embed())
    envelope = json.loads(encode_task(out))
    body = json.loads(base64.b64decode(envelope["body"], validate=True))
    assert body == [[1, [2, 3]], {"k": "v"}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}]


def test_encoded_tags_are_read_by_kombu() -> None:
    out = _outgoing(extra_headers={"when": datetime(2030, 1, 1, tzinfo=UTC)})
    envelope = kombu_loads(encode_task(out))
    args, kwargs, _ = _body_of(envelope)
    assert args == [1, datetime(2030, 1, 2, tzinfo=UTC)]
    assert kwargs == {"z": Decimal("1.5"), "b": b"\xff"}
    assert envelope["headers"]["when"] == datetime(2030, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(("ms", "expected"), [(60000, "60000"), (0, "0"), (-5, "0"), (None, None)])
def test_expiration_property(ms: int | None, expected: str | None) -> None:
    properties = json.loads(encode_task(Outgoing("proj.add"), expiration_ms=ms))["properties"]
    assert properties.get("expiration") == expected


def test_celery_worker_side_accepts_encoded_message() -> None:
    """kombu's virtual-transport Message + Celery's worker Request, exactly as a Celery worker reads it."""
    capp = Celery("unitworker", broker="memory://", set_as_current=False)
    calls: list[tuple[Any, ...]] = []

    @capp.task(name="proj.add")
    def add(x: int, when: datetime, z: Decimal = Decimal(0), b: bytes = b"") -> str:
        calls.append((x, when, z, b))
        return "done"

    out = _outgoing()
    try:
        with Connection("memory://") as conn:
            channel = conn.default_channel
            kombu_message = channel.Message(kombu_loads(encode_task(out)), channel=channel)
            assert kombu_message.decode()[0] == [1, datetime(2030, 1, 2, tzinfo=UTC)]
            request = Request(kombu_message, app=capp, task=add)
            assert request.id == out.id
            assert request.name == "shadowed"
            assert request.type == "proj.add"
            assert request.args == [1, datetime(2030, 1, 2, tzinfo=UTC)]
            assert request.kwargs == {"z": Decimal("1.5"), "b": b"\xff"}
            assert request.eta == out.eta
            assert request.expires == out.expires
            assert request.time_limits == [30, 20]
            assert request.root_id == "root-1"
            assert request.parent_id == "parent-1"
            assert request.delivery_info == {"exchange": "", "routing_key": "work", "priority": 6,
                                             "redelivered": False}
            assert request.request_dict["custom"] == "v"
            assert request.request_dict["group"] == "g-1"
            assert request.execute() == "done"
    finally:
        capp.close()
    assert calls == [(1, datetime(2030, 1, 2, tzinfo=UTC), Decimal("1.5"), b"\xff")]


# ---------------------------------------------------------------- mark_redelivered


def _kombu_restore(raw: bytes) -> dict[str, Any]:
    """What kombu's Redis Channel._do_restore_message does to a payload."""
    payload = json.loads(raw)
    payload["headers"]["redelivered"] = True
    payload["properties"]["delivery_info"]["redelivered"] = True
    return payload


def test_mark_redelivered_on_client_message(celery_client: CeleryClient, client_app: Celery) -> None:
    pub = celery_client.send(client_app, "proj.add", (1, "é"), headers={"custom": "v"}, priority=7)
    marked = mark_redelivered(pub.raw)
    assert json.loads(marked) == _kombu_restore(pub.raw)
    assert json.loads(marked)["properties"]["delivery_tag"] == pub.properties["delivery_tag"]
    assert json.loads(marked)["body"] == pub.message["body"]
    message = decode_task(marked, UTC_TZ)
    assert message.redelivered is True
    assert message.delivery_tag == pub.properties["delivery_tag"]
    assert message.args == [1, "é"]
    assert message.priority == 7
    assert message.custom_headers == {"custom": "v"}


def test_mark_redelivered_on_encoded_message_is_idempotent() -> None:
    raw = encode_task(_outgoing())
    once = mark_redelivered(raw)
    assert json.loads(once) == _kombu_restore(raw)
    assert json.loads(mark_redelivered(once)) == json.loads(once)


def test_redelivered_flag_from_either_place(celery_client: CeleryClient, client_app: Celery) -> None:
    envelope = celery_client.send(client_app, "proj.add", (1,)).message
    envelope["properties"]["delivery_info"]["redelivered"] = True
    assert decode_task(_raw(envelope), UTC_TZ).redelivered is True
    envelope["properties"]["delivery_info"].pop("redelivered")
    envelope["headers"]["redelivered"] = True
    message = decode_task(_raw(envelope), UTC_TZ)
    assert message.redelivered is True
    assert "redelivered" not in message.custom_headers


def test_mark_redelivered_rejects_non_object() -> None:
    with pytest.raises(ProtocolError):
        mark_redelivered(b"[1, 2]")

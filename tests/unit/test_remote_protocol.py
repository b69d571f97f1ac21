"""skqueue.protocol.control / events / clock against what Celery and kombu publish and parse."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from celery import Celery
from celery.events.state import State
from celery.utils.time import utcoffset as celery_utcoffset
from kombu.clocks import LamportClock as KombuClock
from kombu.matcher import match as kombu_match
from kombu.transport import memory
from kombu.utils.json import loads as kombu_loads

from skqueue.broker.keys import BrokerKeys, pidbox_exchange, pidbox_queue, reply_exchange, reply_queue
from skqueue.config import TransportOptions
from skqueue.errors import ProtocolError
from skqueue.protocol.clock import LamportClock
from skqueue.protocol.control import (
    ControlRequest,
    ReplyTo,
    decode_reply,
    decode_request,
    encode_reply,
    encode_request,
    matches,
)
from skqueue.protocol.events import (
    BUFFER_LIMIT,
    batches,
    decode_events,
    encode_event,
    make_event,
    routing_key,
    safe_repr,
    task_received_fields,
    utcoffset,
)
from skqueue.protocol.message import TaskMessage


@pytest.fixture
def broadcasts(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """What a Celery client broadcasts on fanout exchanges (pidbox requests), captured in-process."""
    captured: list[tuple[str, dict[str, Any]]] = []

    def put_fanout(self: Any, exchange: str, message: dict[str, Any], routing_key: str, **kw: Any) -> None:
        captured.append((exchange, message))

    monkeypatch.setattr(memory.Channel, "supports_fanout", True)
    monkeypatch.setattr(memory.Channel, "_put_fanout", put_fanout)
    yield captured


def _kombu_decode(raw: bytes) -> tuple[dict[str, Any], Any]:
    """How kombu's Redis transport reads an envelope: JSON, then base64 body, then JSON."""
    envelope = json.loads(raw)
    assert envelope["properties"]["body_encoding"] == "base64"
    return envelope, kombu_loads(base64.b64decode(envelope["body"]))


# ---------------------------------------------------------------- clock
def test_lamport_clock_matches_kombu() -> None:
    ours, theirs = LamportClock(), KombuClock()
    for step in ("forward", "adjust:10", "forward", "adjust:3", "adjust:bad", "forward"):
        if step == "forward":
            assert ours.forward() == theirs.forward()
        elif step != "adjust:bad":
            value = int(step.split(":")[1])
            assert ours.adjust(value) == theirs.adjust(value)
        else:
            ours.adjust("bad")
            theirs.adjust(0)
    assert str(ours) == str(theirs.value)


# ---------------------------------------------------------------- requests
def test_decodes_a_celery_revoke_broadcast(broadcasts: list[tuple[str, dict[str, Any]]]) -> None:
    capp = Celery("client", broker="memory://", set_as_current=False)
    capp.control.revoke(["a", "b"], terminate=True, signal="SIGKILL")
    [(exchange, message)] = broadcasts
    assert exchange == "celery.pidbox"
    request = decode_request(json.dumps(message).encode())
    assert request.method == "revoke"
    assert request.arguments == {"task_id": ["a", "b"], "terminate": True, "signal": "SIGKILL"}
    assert request.destination is None and request.reply_to is None and request.ticket is None
    assert request.clock == message["headers"]["clock"]
    capp.close()


def test_decodes_a_celery_inspect_request(broadcasts: list[tuple[str, dict[str, Any]]]) -> None:
    capp = Celery("client", broker="memory://", set_as_current=False)
    capp.control.inspect(destination=["w1@test"], timeout=0.01).ping()
    [(_, message)] = broadcasts
    request = decode_request(json.dumps(message).encode())
    assert request.method == "ping" and request.destination == ["w1@test"]
    assert request.reply_to is not None and request.reply_to.exchange == "reply.celery.pidbox"
    assert request.ticket and request.expires > time.time() - 5
    capp.close()


def test_request_round_trip_reads_like_kombu() -> None:
    request = ControlRequest("stats", {"x": 1}, ["w1@test"], ticket="t-1",
                             reply_to=ReplyTo("reply.celery.pidbox", "oid"), clock=7, expires=123.5)
    raw = encode_request(request, exchange="celery.pidbox")
    envelope, body = _kombu_decode(raw)
    assert envelope["headers"] == {"clock": 7, "expires": 123.5}
    assert envelope["properties"]["delivery_info"] == {"exchange": "celery.pidbox", "routing_key": ""}
    assert envelope["properties"]["delivery_mode"] == 2
    assert body == {"method": "stats", "arguments": {"x": 1}, "destination": ["w1@test"], "pattern": None,
                    "matcher": None, "ticket": "t-1", "reply_to": {"exchange": "reply.celery.pidbox",
                                                                   "routing_key": "oid"}}
    assert decode_request(raw) == request


def test_cast_has_no_ticket_or_reply_to() -> None:
    raw = encode_request(ControlRequest("revoke", {"task_id": "x"}), exchange="celery.pidbox")
    _, body = _kombu_decode(raw)
    assert "ticket" not in body and "reply_to" not in body


@pytest.mark.parametrize("raw", [b"not json", b'{"body": "eyJ4IjogMX0=", "properties": {"body_encoding": "base64"}}',
                                 b'{"body": "!!", "properties": {"body_encoding": "base64"}}'])
def test_malformed_requests_raise_protocol_error(raw: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_request(raw)


@pytest.mark.parametrize(("node", "pattern", "matcher"), [
    ("w1@test", "w1@*", "glob"), ("w1@test", "w2@*", "glob"), ("w1@test", "*@test", "glob"),
    ("w1@test", r"w\d@", "pcre"), ("w1@test", r"^x", "pcre"), ("w1@test", "test", "pcre"),
])
def test_matchers_agree_with_kombu(node: str, pattern: str, matcher: str) -> None:
    assert matches(node, pattern, matcher) == bool(kombu_match(node, pattern, matcher))


def test_addressing() -> None:
    assert ControlRequest("ping").addressed_to("w1@test")
    assert ControlRequest("ping", destination=["w1@test", "w2@test"]).addressed_to("w1@test")
    assert not ControlRequest("ping", destination=["other@host"]).addressed_to("w1@test")
    assert ControlRequest("ping", pattern="w*", matcher="glob").addressed_to("w1@test")
    assert not ControlRequest("ping", pattern="x*", matcher="glob").addressed_to("w1@test")
    assert not ControlRequest("ping", pattern="w*", matcher="nope").addressed_to("w1@test")
    assert not matches("w1@test", "(", "pcre")


# ---------------------------------------------------------------- replies
def test_reply_envelope_is_what_kombu_collects() -> None:
    raw = encode_reply("w1@test", {"ok": "pong"}, ticket="t-1", clock=4, reply_to=ReplyTo("reply.celery.pidbox", "o"))
    envelope, body = _kombu_decode(raw)
    assert body == {"w1@test": {"ok": "pong"}}
    assert envelope["headers"] == {"ticket": "t-1", "clock": 4}
    assert envelope["properties"]["delivery_info"] == {"exchange": "reply.celery.pidbox", "routing_key": "o"}
    assert envelope["properties"]["delivery_mode"] == 1 and envelope["content-type"] == "application/json"
    reply = decode_reply(raw)
    assert (reply.ticket, reply.clock, reply.body) == ("t-1", 4, {"w1@test": {"ok": "pong"}})


def test_reply_values_are_kombu_tagged() -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    raw = encode_reply("w", [{"args": [when]}], ticket=None, clock=1, reply_to=ReplyTo("r", "o"))
    assert _kombu_decode(raw)[1] == {"w": [{"args": [when]}]}
    with pytest.raises(TypeError):
        encode_reply("w", object(), ticket=None, clock=1, reply_to=ReplyTo("r", "o"))


# ---------------------------------------------------------------- events
def test_event_fields_and_order() -> None:
    event = make_event("worker-heartbeat", hostname="w1@test", pid=42, clock=3, timestamp=1.5, offset=0.0,
                       freq=2.0, active=1)
    assert list(event) == ["hostname", "utcoffset", "pid", "clock", "freq", "active", "timestamp", "type"]
    assert event["type"] == "worker-heartbeat" and event["timestamp"] == 1.5
    assert routing_key("task-succeeded") == "task.succeeded" and routing_key("worker-online") == "worker.online"
    assert utcoffset() == celery_utcoffset()


def test_event_envelope_and_multi_body() -> None:
    events = [make_event("task-started", hostname="w", pid=1, clock=i, uuid=str(i)) for i in range(3)]
    raw = encode_event(events, hostname="w", exchange="celeryev", key="task.multi")
    envelope, body = _kombu_decode(raw)
    assert envelope["headers"] == {"hostname": "w"}
    assert envelope["properties"]["delivery_info"] == {"exchange": "celeryev", "routing_key": "task.multi"}
    assert envelope["properties"]["delivery_mode"] == 1
    assert body == events and decode_events(raw) == events
    single = encode_event(events[0], hostname="w", exchange="celeryev", key="task.started")
    assert decode_events(single) == [events[0]]


def test_celery_state_accepts_our_worker_events() -> None:
    state = State()
    now = time.time()

    def receive(kind: str, clock: int) -> None:
        # What EventReceiver.event_from_message adds before handing the event on.
        state.event({**make_event(kind, hostname="w1@test", pid=1, clock=clock, timestamp=now, freq=2.0, active=0,
                                  processed=0, loadavg=[0.0, 0.0, 0.0], sw_ident="skqueue", sw_ver="0",
                                  sw_sys="Linux"), "local_received": now})

    receive("worker-online", 1)
    receive("worker-heartbeat", 2)
    assert state.workers["w1@test"].alive
    receive("worker-offline", 3)
    assert not state.workers["w1@test"].alive


def test_batches_of_at_most_24() -> None:
    events = [{"type": "task-started", "n": i} for i in range(50)]
    assert [len(b) for b in batches(events)] == [BUFFER_LIMIT, BUFFER_LIMIT, 2]
    assert [e for b in batches(events) for e in b] == events
    assert batches([]) == []


def test_safe_repr_is_bounded() -> None:
    assert safe_repr({"hp": 1}) == "{'hp': 1}"
    assert len(safe_repr(list(range(100_000)))) <= 1024
    assert len(safe_repr("x" * 5000)) <= 1024

    class Broken:
        def __repr__(self) -> str:
            raise RuntimeError("no")

    assert "unrepresentable" in safe_repr(Broken()) or "Broken" in safe_repr(Broken())


def test_task_received_fields() -> None:
    eta = datetime(2026, 5, 1, tzinfo=UTC)
    message = TaskMessage(id="u1", task="wire.add", args=[1, 2], kwargs={}, eta=eta, retries=2, root_id="r",
                          parent_id="p", argsrepr="(1, 2)", kwargsrepr="{}")
    assert task_received_fields(message) == {
        "uuid": "u1", "name": "wire.add", "args": "(1, 2)", "kwargs": "{}", "root_id": "r", "parent_id": "p",
        "retries": 2, "eta": eta.isoformat(), "expires": None}
    bare = TaskMessage(id="u2", task="t", args=[1], kwargs={"a": 1})
    assert task_received_fields(bare)["args"] == "(1,)" and task_received_fields(bare)["kwargs"] == "{'a': 1}"


# ---------------------------------------------------------------- names
def test_pidbox_and_event_names() -> None:
    keys = BrokerKeys(TransportOptions(global_keyprefix="pfx:"), db=3)
    assert keys.pidbox_channel() == "pfx:/3.celery.pidbox"
    assert keys.event_channel("task.multi") == "pfx:/3.celeryev/task.multi"
    assert keys.event_pattern() == "pfx:/3.celeryev/*"
    assert pidbox_exchange() == "celery.pidbox" and reply_exchange("ns") == "reply.ns.pidbox"
    assert pidbox_queue("w1@test") == "w1@test.celery.pidbox"
    assert reply_queue("oid") == "oid.reply.celery.pidbox"
    assert keys.binding(pidbox_exchange()) == "pfx:_kombu.binding.celery.pidbox"
    assert keys.binding_member("", pidbox_queue("w1@test")) == "\x06\x16\x06\x16w1@test.celery.pidbox"

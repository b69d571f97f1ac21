"""skqueue.protocol.signature/canvas against Celery itself: the signatures a real client embeds, applied
by Celery's ``apply_async`` (captured in-process) and by skqueue, must make the same messages."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from celery import Celery, chain, chord, group, signature
from kombu.utils.json import loads as kombu_loads

from skqueue.errors import ProtocolError
from skqueue.protocol.canvas import Applied, ChordStart, apply, apply_group, chain_steps, failed_chain
from skqueue.protocol.message import TaskMessage, decode_task, encode_task
from skqueue.protocol.signature import (
    Lineage,
    Signature,
    chord_member,
    chord_results,
    exception_repr,
    merge_options,
    message_for,
)
from tests.unit.conftest import CeleryClient, Published

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
ROUTES = {"t.analytics": "analytics"}


@pytest.fixture
def capp(celery_client: CeleryClient) -> Celery:
    """A client app with a result backend (chords need one) whose publishes are captured."""
    app = Celery("canvasclient", broker="memory://", backend="cache+memory://", set_as_current=False)
    app.conf.update(task_default_queue="default", task_routes=ROUTES)
    celery_client.apps.append(app)
    return app


def _lineage(parent: str = "parent-1", root: str = "root-1", priority: int = 0) -> Lineage:
    return Lineage(parent, root, priority, "w1@test", NOW, lambda name: ROUTES.get(name, "default"))


def _first(celery_client: CeleryClient, capp: Celery, make: Any) -> TaskMessage:
    """Publish with the client and decode the first message (the one a worker receives)."""
    before = len(celery_client.published)
    make()
    return decode_task(celery_client.published[before].raw, UTC)


def _celery_applies(celery_client: CeleryClient, fn: Any) -> list[Published]:
    before = len(celery_client.published)
    fn()
    return celery_client.published[before:]


def _ours(applied: Applied) -> list[TaskMessage]:
    return [decode_task(encode_task(out), UTC) for out in applied.messages]


def _same(ours: TaskMessage, theirs: Published, *, ids: bool = True) -> None:
    """The fields a worker acts on agree (ids only when both sides had them frozen)."""
    expected = decode_task(theirs.raw, UTC)
    assert (ours.task, ours.args, ours.kwargs) == (expected.task, expected.args, expected.kwargs)
    assert (ours.parent_id, ours.root_id) == (expected.parent_id, expected.root_id)
    # Celery 5.3 did not number the members of a group it applied; 5.7 does, and so does skqueue.
    assert expected.group_index in (ours.group_index, None)
    assert ours.routing_key == expected.routing_key == theirs.queue
    assert _embed(ours) == _embed(expected)
    if ids:
        assert (ours.id, ours.group) == (expected.id, expected.group)


def _embed(message: TaskMessage) -> Any:
    """The embed without what a worker ignores: ``reply_to``, ``parent_id``, stamps, and the ``root_id``
    Celery 5.3 copies into the steps of a chain (the worker takes the root from the parent)."""
    def clean(sig: Any, nested: bool = False) -> Any:
        if not isinstance(sig, dict):
            return sig
        ignored = {"reply_to", "parent_id", "stamped_headers", *(("root_id",) if nested else ())}
        options = {k: clean(v) if isinstance(v, dict) else [clean(x) for x in v] if isinstance(v, list) else v
                   for k, v in sig.get("options", {}).items() if k not in ignored and v is not None}
        kwargs = dict(sig.get("kwargs") or {})
        if isinstance(kwargs.get("tasks"), list):
            kwargs["tasks"] = [clean(task, nested=True) for task in kwargs["tasks"]]
        return {**sig, "options": options, "kwargs": kwargs}

    embed = message.embed
    return ([clean(s) for s in embed.callbacks or []], [clean(s) for s in embed.errbacks or []],
            [clean(s) for s in embed.chain or []], clean(embed.chord))


# ------------------------------------------------------------------ callbacks
def test_link_callback_matches_celery(celery_client: CeleryClient, capp: Celery) -> None:
    parent = _first(celery_client, capp, lambda: capp.send_task("t.add", (1, 5), link=capp.signature(
        "t.add", args=(10,)).set(task_id="cb-1")))
    callback = parent.embed.callbacks[0]
    theirs = _celery_applies(celery_client, lambda: signature(callback, app=capp).apply_async(
        (6,), parent_id=parent.id, root_id=parent.root_id))
    (ours,) = _ours(apply(Signature.parse(callback), [6], _lineage(parent.id, parent.root_id or parent.id)))
    _same(ours, theirs[0])
    assert ours.args == [6, 10] and ours.parent_id == parent.id


def test_immutable_callback_keeps_its_args(capp: Celery) -> None:
    sig = Signature.parse(dict(capp.signature("t.add", args=(1, 2)).set(immutable=True)))
    (ours,) = _ours(apply(sig, [99], _lineage()))
    assert ours.args == [1, 2]


def test_callback_options_become_the_message(capp: Celery) -> None:
    sig = capp.signature("t.add", args=(1,), queue="analytics", priority=7, countdown=30, expires=60,
                         time_limit=10, soft_time_limit=5, headers={"custom": "x"}, shadow="nice",
                         link=capp.signature("t.next"), link_error=capp.signature("t.err"))
    (out,) = apply(Signature.parse(dict(sig)), [0], _lineage(priority=3)).messages
    assert (out.queue, out.priority, out.eta, out.expires) == ("analytics", 7, NOW + timedelta(seconds=30),
                                                               NOW + timedelta(seconds=60))
    assert (out.timelimit, out.extra_headers, out.shadow) == ((10.0, 5.0), {"custom": "x"}, "nice")
    assert out.embed.callbacks is not None and out.embed.callbacks[0]["task"] == "t.next"
    assert out.embed.errbacks is not None and out.embed.errbacks[0]["task"] == "t.err"
    assert out.origin == "w1@test"


def test_callback_routing_and_priority_default_to_the_app_and_the_parent() -> None:
    (out,) = apply(Signature("t.analytics"), [1], _lineage(priority=4)).messages
    assert (out.queue, out.priority) == ("analytics", 4)


def test_naive_and_iso_times_are_taken_in_the_lineage_timezone() -> None:
    sig = Signature("t.x", options={"eta": "2030-01-01T00:00:00", "expires": datetime(2031, 1, 1)})
    out = message_for(sig, [], sig.options, _lineage())
    assert out.eta == datetime(2030, 1, 1, tzinfo=UTC) and out.expires == datetime(2031, 1, 1, tzinfo=UTC)


def test_group_of_callbacks_matches_celery(celery_client: CeleryClient, capp: Celery) -> None:
    sigs = [capp.signature("t.add", args=(10,)), capp.signature("t.analytics")]
    theirs = _celery_applies(celery_client, lambda: group(sigs, app=capp).apply_async(
        (5,), parent_id="p", root_id="r"))
    applied = apply_group([Signature.parse(dict(s)) for s in sigs], [5], _lineage("p", "r"))
    ours = _ours(applied)
    for mine, published in zip(ours, theirs, strict=True):
        _same(mine, published, ids=False)
    assert len({m.group for m in ours}) == 1 and [m.group_index for m in ours] == [0, 1]
    ((group_id, _), members), = applied.children
    assert group_id == ours[0].group and [m[0][0] for m in members] == [m.id for m in ours]


def test_nested_groups_are_flattened() -> None:
    inner = Signature("celery.group", kwargs={"tasks": [Signature("t.b").as_dict(), Signature("t.c").as_dict()]},
                      subtask_type="group")
    outer = Signature("celery.group", kwargs={"tasks": [Signature("t.a").as_dict(), inner.as_dict()]},
                      options={"task_id": "g-1"}, subtask_type="group")
    ours = _ours(apply(outer, [], _lineage()))
    assert [(m.task, m.group, m.group_index) for m in ours] == [("t.a", "g-1", 0), ("t.b", "g-1", 1),
                                                                ("t.c", "g-1", 2)]


# ------------------------------------------------------------------ chains
def test_next_chain_step_matches_celery(celery_client: CeleryClient, capp: Celery) -> None:
    add = capp.signature("t.add")
    first = _first(celery_client, capp, lambda: chain(add.clone((1, 1)), add.clone((2,)), add.clone((3,)))
                   .apply_async())
    steps = first.embed.chain
    assert steps is not None and len(steps) == 2
    theirs = _celery_applies(celery_client, lambda: signature(steps[-1], app=capp).apply_async(
        (2,), chain=steps[:-1], parent_id=first.id, root_id=first.id))
    ours = _ours(apply(Signature.parse(steps[-1]), [2], _lineage(first.id, first.id), {"chain": steps[:-1]}))
    _same(ours[0], theirs[0])
    assert ours[0].args == [2, 2] and ours[0].id == steps[-1]["options"]["task_id"]


def test_chain_signature_as_a_callback(capp: Celery) -> None:
    link = chain(capp.signature("t.add", args=(2,)), capp.signature("t.add", args=(3,)),
                 capp.signature("t.add", args=(4,)))
    applied = apply(Signature.parse(dict(link)), [1], _lineage())
    (first,) = _ours(applied)
    assert first.args == [1, 2]
    rest = first.embed.chain
    assert rest is not None and [s["args"] for s in rest] == [[4], [3]]
    assert all(s["options"]["task_id"] for s in rest)
    assert applied.children == [[[first.id, None], None]]


def test_nested_chains_are_spliced() -> None:
    inner = Signature("celery.chain", kwargs={"tasks": [Signature("t.b").as_dict(), Signature("t.c").as_dict()]},
                      subtask_type="chain")
    outer = Signature("celery.chain", kwargs={"tasks": [Signature("t.a").as_dict(), inner.as_dict()]},
                      subtask_type="chain")
    assert [s.task for s in chain_steps(outer)] == ["t.a", "t.b", "t.c"]


# ------------------------------------------------------------------ chords
def test_chord_in_a_chain_matches_celery(celery_client: CeleryClient, capp: Celery) -> None:
    add, xsum = capp.signature("t.add"), capp.signature("t.xsum")
    first = _first(celery_client, capp, lambda: chain(
        add.clone((1, 1)), chord([add.clone((1,)), add.clone((2,))], xsum), add.clone((100,))).apply_async())
    steps = first.embed.chain
    assert steps is not None and steps[-1]["subtask_type"] == "chord"
    theirs = _celery_applies(celery_client, lambda: signature(steps[-1], app=capp).apply_async(
        (2,), chain=steps[:-1], parent_id=first.id, root_id=first.id))
    applied = apply(Signature.parse(steps[-1]), [2], _lineage(first.id, first.id), {"chain": steps[:-1]})
    assert applied.messages == []
    (start,) = applied.chords
    assert isinstance(start, ChordStart) and start.size == 2
    ours = [decode_task(encode_task(out), UTC) for out in start.headers]
    for mine, published in zip(ours, theirs, strict=True):
        _same(mine, published)
    body = ours[0].embed.chord
    assert body is not None and start.group_id == ours[0].group
    if body["subtask_type"] != "chain":  # Celery 5.3 made the rest of the chain the body itself
        assert body["options"]["chain"] == steps[:-1] and body["options"]["group_id"] == start.group_id


def test_chord_header_with_a_chain_reports_from_its_last_step(capp: Celery) -> None:
    add, xsum = capp.signature("t.add"), capp.signature("t.xsum")
    sig = chord([chain(add.clone((1, 1)), add.clone((10,))), add.clone((3, 3))], xsum)
    applied = apply(Signature.parse(dict(sig)), [], _lineage())
    (start,) = applied.chords
    first, second = [decode_task(encode_task(out), UTC) for out in start.headers]
    assert start.size == 2 and first.group is None and first.embed.chord is None
    assert first.embed.chain is not None
    (last,) = first.embed.chain
    assert last["options"]["group_id"] == start.group_id and last["options"]["group_index"] == 0
    assert last["options"]["chord"]["task"] == "t.xsum"
    assert (second.group, second.group_index) == (start.group_id, 1)


def test_chord_with_no_header_runs_its_body_now(capp: Celery) -> None:
    sig = Signature("celery.chord", kwargs={"header": [], "body": Signature("t.xsum").as_dict(), "kwargs": {}},
                    subtask_type="chord")
    applied = apply(sig, [], _lineage())
    assert applied.chords == [] and [m.args for m in applied.messages] == [[[]]]


def test_failed_chain_includes_chord_bodies() -> None:
    body = Signature("t.body", options={"task_id": "body-1"})
    chord_step = Signature("celery.chord", kwargs={"header": [], "body": body.as_dict()},
                           options={"task_id": "g-1"}, subtask_type="chord")
    steps = [Signature("t.last", options={"task_id": "last-1"}).as_dict(), chord_step.as_dict(),
             Signature("t.anonymous").as_dict()]
    assert [s.id for s in failed_chain(steps)] == ["last-1", "g-1", "body-1"]


def test_chord_results_in_order_and_the_first_failure() -> None:
    members = [chord_member("a", "SUCCESS", 1), chord_member("b", "SUCCESS", {"k": [1]})]
    assert chord_results(members) == ([1, {"k": [1]}], None)
    failed = {"exc_type": "ValueError", "exc_message": ["boom"], "exc_module": "builtins"}
    members.insert(1, chord_member("c", "FAILURE", failed))
    assert chord_results(members)[1] == "Dependency c raised ValueError('boom')"
    assert json.loads(members[0]) == [1, "a", "SUCCESS", 1]
    assert kombu_loads(members[1]) == [1, "c", "FAILURE", failed]


@pytest.mark.parametrize("value,expected", [
    ({"exc_type": "KeyError", "exc_message": ["k"]}, "KeyError('k')"),
    ({"exc_type": "mod.Outer.Inner", "exc_message": ["a", 2]}, "Inner('a', 2)"),
    ({"exc_type": "TaskRevokedError", "exc_message": []}, "TaskRevokedError()"),
    ({"exc_type": "Odd", "exc_message": "text"}, "Odd('text')"),
])
def test_exception_repr_matches_python(value: dict[str, Any], expected: str) -> None:
    assert exception_repr(value) == expected


# ------------------------------------------------------------------ parsing and options
def test_call_options_win_except_a_group_id_already_set() -> None:
    assert merge_options({"queue": "a", "group_id": "g"}, {"queue": "b", "group_id": "h", "priority": None}) == {
        "queue": "b", "group_id": "g"}


@pytest.mark.parametrize("value", [None, 3, {"args": []}, {"task": "t", "args": "nope"}, {"task": 1}])
def test_malformed_signatures_are_refused(value: Any) -> None:
    with pytest.raises(ProtocolError):
        Signature.parse(value)


def test_signature_round_trip(capp: Celery) -> None:
    sig = dict(capp.signature("t.add", args=(1,), kwargs={"y": 2}, queue="q").set(immutable=True))
    parsed = Signature.parse(sig)
    assert parsed.as_dict() == {**sig, "args": [1]}
    assert parsed.frozen().id and parsed.frozen("fixed").id == "fixed"

"""Spec §10 rows 38-43, §6.2-6.3 and §5.8: callbacks, errbacks, chains, groups and chords built by a real
Celery client and run by skqueue."""

from __future__ import annotations

import base64
import json
import time
from types import SimpleNamespace
from typing import Any

import pytest

from tests.apps import wire
from tests.conftest import configure_wire
from tests.support import wait_for

pytestmark = pytest.mark.timeout(30)

PROTOCOLS = ["auto", "5.3", "5.7"]


def _meta(server: Any, task_id: str) -> dict[str, Any]:
    raw = server.client(1).get(f"celery-task-meta-{task_id}")
    return json.loads(raw) if raw else {}


def _messages(server: Any, queue: str) -> list[dict[str, Any]]:
    """The messages waiting in ``queue`` (oldest first), with their body decoded."""
    found = []
    for raw in reversed(server.client(0).lrange(queue, 0, -1)):
        message = json.loads(raw)
        message["decoded"] = json.loads(base64.b64decode(message["body"]))
        found.append(message)
    return found


def _client_tasks(capp: Any) -> SimpleNamespace:
    """Stubs of the ``wire.*`` tasks on the client app, so ``t.add.s(1, 2)`` builds signatures as user code
    does (the client never runs them)."""
    names = ("add", "xsum", "collect", "sleep", "fail", "record", "old_errback", "on_error", "context")
    return SimpleNamespace(**{name: capp.task(name=f"wire.{name}", shared=False)(_never) for name in names})


def _never(*args: Any, **kwargs: Any) -> None:
    raise AssertionError("client-side stub")


def _result_of(server: Any, capp: Any, task_id: str) -> Any:
    """The value of a task the test did not send (a child), once stored. A fresh ``AsyncResult`` created
    while the task finishes can miss both the GET and the PUBLISH with Celery 5.3's client (its SUBSCRIBE is
    not confirmed before the GET), so wait for the state first."""
    wait_for(lambda: _meta(server, task_id).get("status") in ("SUCCESS", "FAILURE"))
    return capp.AsyncResult(task_id).get(timeout=5)


def _calls(kind: str) -> list[Any]:
    return [value for k, value in wire.CALLS if k == kind]


def _settled(server: Any) -> bool:
    broker = server.client(0)
    return broker.hlen("unacked") == 0 and broker.llen("default") == 0


# ------------------------------------------------------------------ row 38: link callbacks
def test_link_callback_gets_the_result(wire_app: Any, celery_app: Any, start_worker: Any, server: Any) -> None:
    t = _client_tasks(celery_app)
    start_worker()
    parent = t.add.apply_async((2, 3), link=t.add.s(10))
    assert parent.get(timeout=5) == 5
    children = _meta(server, parent.id)["children"]
    assert len(children) == 1
    (child_id, _), _ = children[0]
    assert _result_of(server, celery_app, child_id) == 15
    assert _meta(server, child_id)["parent_id"] == parent.id
    assert [c.id for c in celery_app.AsyncResult(parent.id).children] == [child_id]


def test_link_with_queue_option_is_pushed_there(wire_app: Any, celery_app: Any, start_worker: Any,
                                                server: Any) -> None:
    t = _client_tasks(celery_app)
    start_worker(queues=["default"])
    parent = t.add.apply_async((1, 4), link=t.add.s(10).set(queue="analytics"), priority=4)
    assert parent.get(timeout=5) == 5
    wait_for(lambda: server.client(0).llen("analytics\x06\x163") == 1)
    (message,) = _messages(server, "analytics\x06\x163")
    headers = message["headers"]
    assert message["decoded"][0] == [5, 10]
    assert headers["task"] == "wire.add" and headers["parent_id"] == parent.id and headers["root_id"] == parent.id
    assert message["properties"]["priority"] == 4
    assert message["properties"]["delivery_info"]["routing_key"] == "analytics"
    assert _meta(server, parent.id)["children"] == [[[headers["id"], None], None]]


def test_several_callbacks_go_out_as_a_group(wire_app: Any, celery_app: Any, start_worker: Any,
                                             server: Any) -> None:
    t = _client_tasks(celery_app)
    start_worker()
    parent = t.add.apply_async((1, 1), link=[t.add.s(10), t.add.s(20)])
    assert parent.get(timeout=5) == 2
    ((group_id, _), members), = _meta(server, parent.id)["children"]
    ids = [member[0][0] for member in members]
    assert [_result_of(server, celery_app, i) for i in ids] == [12, 22]
    assert [_meta(server, i)["group_id"] for i in ids] == [group_id, group_id]


def test_immutable_callback_keeps_its_arguments(wire_app: Any, celery_app: Any, start_worker: Any,
                                                server: Any) -> None:
    t = _client_tasks(celery_app)
    start_worker()
    parent = t.add.apply_async((1, 1), link=t.add.si(100, 1))
    parent.get(timeout=5)
    (child_id, _), _ = _meta(server, parent.id)["children"][0]
    assert _result_of(server, celery_app, child_id) == 101


def test_redelivered_success_does_not_send_callbacks_again(wire_app: Any, celery_app: Any, start_worker: Any,
                                                           server: Any) -> None:
    broker = server.client(0)
    parent = celery_app.signature("wire.add").apply_async((3, 3), link=celery_app.signature("wire.record"))
    original = json.loads(broker.lindex("default", 0))
    start_worker()
    assert parent.get(timeout=5) == 6
    wait_for(lambda: _calls("record") == [6] and _settled(server))
    original["headers"]["redelivered"] = True
    broker.rpush("default", json.dumps(original))
    wait_for(lambda: _settled(server))
    time.sleep(0.3)
    assert _calls("record") == [6]


def test_retries_send_the_callback_once(wire_app: Any, celery_app: Any, start_worker: Any, server: Any) -> None:
    start_worker()
    result = celery_app.send_task("wire.retry_twice", args=(0.05,), link=celery_app.signature("wire.record"))
    assert result.get(timeout=10)["retries"] == 2
    wait_for(lambda: _calls("record"))
    wait_for(lambda: _settled(server))
    time.sleep(0.2)
    assert len(_calls("record")) == 1


# ------------------------------------------------------------------ row 39: errbacks
def test_unknown_errback_is_published_as_a_group(wire_app: Any, celery_app: Any, start_worker: Any,
                                                 server: Any) -> None:
    start_worker(queues=["default"])
    errback = celery_app.signature("remote.errback", args=("extra",), queue="reminders")
    failed = celery_app.send_task("wire.fail", args=("boom",), link_error=errback)
    with pytest.raises(ValueError, match="boom"):
        failed.get(timeout=5)
    wait_for(lambda: server.client(0).llen("reminders") == 1)
    (message,) = _messages(server, "reminders")
    headers = message["headers"]
    assert headers["task"] == "remote.errback"
    assert message["decoded"][0] == [failed.id, "extra"]
    assert headers["group"] and headers["group"] != failed.id and headers["group_index"] == 0
    assert headers["parent_id"] == failed.id and headers["root_id"] == failed.id


def test_old_style_errback_of_this_app_runs_as_a_task(wire_app: Any, celery_app: Any, start_worker: Any) -> None:
    start_worker()
    failed = celery_app.send_task("wire.fail", link_error=celery_app.signature("wire.old_errback", args=("x",)))
    with pytest.raises(ValueError):
        failed.get(timeout=5)
    wait_for(lambda: _calls("old_errback") == [(failed.id, "x")])


def test_new_style_errback_runs_inline(wire_app: Any, celery_app: Any, start_worker: Any, server: Any) -> None:
    start_worker()
    failed = celery_app.send_task("wire.fail", args=("inline",), link_error=celery_app.signature("wire.on_error"))
    with pytest.raises(ValueError):
        failed.get(timeout=5)
    wait_for(lambda: _calls("on_error"))
    assert _calls("on_error") == [(failed.id, "ValueError('inline')", True)]
    assert server.client(0).llen("default") == 0


# ------------------------------------------------------------------ row 40: chains
def test_chain_runs_to_the_end(wire_app: Any, celery_app: Any, start_worker: Any, server: Any) -> None:
    from celery import chain

    t = _client_tasks(celery_app)
    start_worker()
    result = chain(t.add.s(1, 1), t.add.s(2), t.add.s(3)).apply_async()
    assert result.get(timeout=10) == 7
    middle = result.parent
    assert middle.get(timeout=1) == 4
    first = middle.parent
    assert _meta(server, middle.id)["parent_id"] == first.id
    assert _meta(server, first.id)["children"] == [[[middle.id, None], None]]


def test_chain_failure_fails_the_rest(wire_app: Any, celery_app: Any, start_worker: Any, server: Any) -> None:
    from celery import chain

    t = _client_tasks(celery_app)
    start_worker()
    result = chain(celery_app.signature("wire.fail", args=("first",)), t.add.s(2), t.add.s(3)).apply_async()
    with pytest.raises(ValueError, match="first"):
        result.get(timeout=5)
    assert _meta(server, result.id)["status"] == "FAILURE"
    assert _meta(server, result.parent.id)["result"]["exc_message"] == ["first"]
    assert not server.client(0).llen("default")


def test_chain_with_a_group_in_the_middle(wire_app: Any, celery_app: Any, start_worker: Any) -> None:
    from celery import chain, chord, group

    t = _client_tasks(celery_app)
    start_worker()
    assert chain(t.add.s(1, 1), group(t.add.s(1), t.add.s(2)), t.xsum.s()).apply_async().get(timeout=10) == 7
    workflow = chain(t.add.s(1, 1), chord([t.add.s(1), t.add.s(2)], t.xsum.s()), t.add.s(100))
    assert workflow.apply_async().get(timeout=10) == 107


# ------------------------------------------------------------------ row 41: groups
def test_group_results_in_order(wire_app: Any, celery_app: Any, start_worker: Any, server: Any) -> None:
    from celery import group

    t = _client_tasks(celery_app)
    start_worker()
    result = group(t.add.s(i, i) for i in range(5)).apply_async()
    assert result.get(timeout=10) == [0, 2, 4, 6, 8]
    assert {_meta(server, r.id)["group_id"] for r in result.results} == {result.id}


def test_group_as_callback(wire_app: Any, celery_app: Any, start_worker: Any, server: Any) -> None:
    from celery import group

    t = _client_tasks(celery_app)
    start_worker()
    parent = t.add.apply_async((1, 1), link=group(t.add.s(10), t.add.s(20)))
    parent.get(timeout=5)
    ((_, _), members), = _meta(server, parent.id)["children"]
    assert [_result_of(server, celery_app, m[0][0]) for m in members] == [12, 22]


# ------------------------------------------------------------------ row 42: chords
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_chord_body_gets_results_in_header_order(server: Any, celery_app: Any, start_worker: Any,
                                                 protocol: str) -> None:
    from celery import chord

    configure_wire(server, skqueue_chord_protocol=protocol)
    t = _client_tasks(celery_app)
    start_worker()
    header = [t.sleep.s(0.3), t.sleep.s(0.2), t.sleep.s(0.1), t.sleep.s(0.0)]  # they finish in reverse order
    result = chord(header, t.collect.s()).apply_async()
    assert result.get(timeout=10) == [0.3, 0.2, 0.1, 0.0]
    # The body carries the chord's group id where the client froze it with one (5.3.1's chord.run did not).
    assert _meta(server, result.id).get("group_id") in (result.parent.id, None)
    wait_for(lambda: _settled(server))
    assert not server.client(1).keys("celery-taskset-meta-*.[jtsd]")
    done = server.client(1).get(f"celery-taskset-meta-{result.parent.id}.c")
    assert done == (None if protocol == "5.3" else b"done")


def test_chord_sum(wire_app: Any, celery_app: Any, start_worker: Any) -> None:
    from celery import chord

    t = _client_tasks(celery_app)
    start_worker()
    assert chord([t.add.s(i, i) for i in range(3)], t.xsum.s()).apply_async().get(timeout=10) == 6
    assert chord([t.add.s(i, i) for i in range(3)], t.xsum.s(100)).apply_async().get(timeout=10) == 106


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_chord_header_failure_fails_the_body(server: Any, celery_app: Any, celery_factory: Any,
                                             start_worker: Any, protocol: str) -> None:
    from celery import chord
    from celery.exceptions import ChordError

    configure_wire(server, skqueue_chord_protocol=protocol)
    t = _client_tasks(celery_app)
    start_worker()
    bad = celery_app.signature("wire.fail", args=("boom",))
    result = chord([t.add.s(1, 1), bad, t.add.s(2, 2)], t.xsum.s()).apply_async()
    with pytest.raises(ValueError, match="boom"):  # the client re-raises the header's error first
        result.get(timeout=10)
    wait_for(lambda: _meta(server, result.id).get("status") == "FAILURE")
    with pytest.raises(ChordError) as info:  # a new client: 5.3.1 routes updates to the first AsyncResult
        celery_factory().AsyncResult(result.id).get(timeout=10)
    failed_id = result.parent.results[1].id
    assert str(info.value) == f"Dependency {failed_id} raised ValueError('boom')"
    meta = _meta(server, result.id)
    assert meta["status"] == "FAILURE" and meta["result"]["exc_type"] == "ChordError"


def test_chord_body_errback_runs_when_a_header_fails(wire_app: Any, celery_app: Any, start_worker: Any,
                                                     server: Any) -> None:
    from celery import chord

    t = _client_tasks(celery_app)
    start_worker()
    errback = celery_app.signature("wire.old_errback", args=("body",))
    result = chord([celery_app.signature("wire.fail")], t.xsum.s().on_error(errback)).apply_async()
    with pytest.raises(Exception, match="Dependency"):
        _result_of(server, celery_app, result.id)
    wait_for(lambda: _calls("old_errback") == [(result.id, "body")])


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_redelivered_header_task_fires_the_body_once(server: Any, celery_app: Any, start_worker: Any,
                                                     protocol: str) -> None:
    from celery import chord

    configure_wire(server, skqueue_chord_protocol=protocol)
    t = _client_tasks(celery_app)
    broker = server.client(0)
    # The middle header task reports whether it was redelivered: its copies return different results.
    result = chord([t.add.s(0, 0), t.context.s(), t.add.s(2, 2)], t.collect.s()).apply_async()
    copy = json.loads(broker.lindex("default", 1))  # the middle header task, as first delivered
    copy["headers"]["redelivered"] = True
    copy["properties"]["delivery_info"]["redelivered"] = True
    broker.rpush("default", json.dumps(copy))  # delivered again (first, even) before the chord completes
    worker = start_worker(concurrency=1)
    first, context, last = result.get(timeout=10)
    assert (first, last) == (0, 4) and context["redelivered"] is True
    wait_for(lambda: _settled(server))
    broker.rpush("default", json.dumps(copy))  # and once more after the chord fired
    wait_for(lambda: _settled(server) and worker.worker.stats.succeeded == 6)
    time.sleep(0.3)
    assert len(_calls("collect")) == 1


def test_chord_with_a_chain_in_the_header(wire_app: Any, celery_app: Any, start_worker: Any) -> None:
    from celery import chain, chord

    t = _client_tasks(celery_app)
    start_worker()
    result = chord([chain(t.add.s(1, 1), t.add.s(10)), t.add.s(3, 3)], t.collect.s()).apply_async()
    assert result.get(timeout=10) == [12, 6]


def test_chord_with_a_callback_on_the_body(wire_app: Any, celery_app: Any, start_worker: Any,
                                           server: Any) -> None:
    from celery import chord

    t = _client_tasks(celery_app)
    start_worker()
    result = chord([t.add.s(1, 1), t.add.s(2, 2)], t.xsum.s().set(link=t.add.s(1000))).apply_async()
    assert result.get(timeout=10) == 6
    (child_id, _), _ = _meta(server, result.id)["children"][0]
    assert _result_of(server, celery_app, child_id) == 1006


# ------------------------------------------------------------------ row 43: GroupResult.save/restore
def test_group_result_save_and_restore(wire_app: Any, celery_app: Any, celery_factory: Any,
                                       start_worker: Any) -> None:
    from celery import group
    from celery.result import GroupResult

    t = _client_tasks(celery_app)
    start_worker()
    result = group(t.add.s(i, 1) for i in range(3)).apply_async()
    result.save()
    assert result.get(timeout=10) == [1, 2, 3]
    restored = GroupResult.restore(result.id, app=celery_app)
    assert restored is not None and [r.id for r in restored.results] == [r.id for r in result.results]
    assert restored.get(timeout=10) == [1, 2, 3]
    assert GroupResult.restore(result.id, app=celery_factory()).get(timeout=10) == [1, 2, 3]

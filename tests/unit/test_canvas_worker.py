"""The worker's canvas (skqueue.worker.canvas) and the Finisher around it, without Redis: the messages and
metas a finished task leads to, for messages a real Celery client published."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from celery import Celery, chain, chord
from redis.asyncio import Redis

from skqueue.app import App
from skqueue.broker.chords import ChordStore
from skqueue.broker.keys import ResultKeys
from skqueue.broker.transport import Publish
from skqueue.config import Settings
from skqueue.protocol import states
from skqueue.protocol.message import TaskMessage, decode_task
from skqueue.worker.canvas import CeleryCanvas, ChordPart
from skqueue.worker.execute import Outcome
from skqueue.worker.finish import Finisher
from skqueue.worker.outcomes import MetaFactory
from tests.unit.conftest import CeleryClient

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
CALLED: list[Any] = []


def _app() -> App:
    app = App("t", task_default_queue="default", task_routes={"t.analytics": "analytics"})
    app.task(name="t.add")(lambda x, y: x + y)

    @app.task(name="t.new_errback")
    def new_errback(request: Any, exc: BaseException, traceback: str | None) -> None:
        CALLED.append((request.id, repr(exc)))

    return app


@pytest.fixture
def capp(celery_client: CeleryClient) -> Celery:
    app = Celery("canvasclient", broker="memory://", backend="cache+memory://", set_as_current=False)
    app.conf.update(task_default_queue="default")
    celery_client.apps.append(app)
    return app


def _send(celery_client: CeleryClient, make: Any, index: int = 0) -> TaskMessage:
    before = len(celery_client.published)
    make()
    return decode_task(celery_client.published[before + index].raw, UTC)


def _decoded(publish: Publish) -> tuple[dict[str, Any], list[Any]]:
    envelope = json.loads(publish.raw)
    return envelope["headers"], json.loads(base64.b64decode(envelope["body"]))


def _canvas(app: App | None = None) -> CeleryCanvas:
    # The chord store's client connects lazily: nothing here reaches Redis.
    store = ChordStore(Redis(), ResultKeys())
    return CeleryCanvas(app or _app(), None, "w1@test", chords=store, clock=lambda: NOW)


def _finisher(canvas: CeleryCanvas) -> Finisher:
    return Finisher(MetaFactory(Settings(), "w1@test"), "w1@test", canvas, clock=lambda: NOW)


def _finish(finisher: Finisher, message: TaskMessage, outcome: Outcome) -> Any:
    record = finisher.record(message, "default", outcome.state, received=0.0)
    return finisher.finished(message, "default", _app().tasks["t.add"], outcome, ignore=False, ack=True,
                             record=record)


def test_several_callbacks_inherit_priority_and_route(celery_client: CeleryClient, capp: Celery) -> None:
    links = [capp.signature("t.add", args=(10,)), capp.signature("t.analytics")]
    message = _send(celery_client, lambda: capp.send_task("t.add", (1, 2), link=links, priority=6))
    publishes, children, chords = _canvas().on_success(message, "default", 3)
    assert chords == [] and [(p.queue, p.priority) for p in publishes] == [("default", 6), ("analytics", 6)]
    (first, first_body), (second, second_body) = (_decoded(p) for p in publishes)
    assert first_body[0] == [3, 10] and second_body[0] == [3]
    assert first["group"] == second["group"] and (first["group_index"], second["group_index"]) == (0, 1)
    assert first["parent_id"] == first["root_id"] == message.id and first["origin"] == "w1@test"
    assert children == [[[first["group"], None], [[[first["id"], None], None], [[second["id"], None], None]]]]


def test_unencodable_result_fails_the_task_instead_of_sending_callbacks(celery_client: CeleryClient,
                                                                        capp: Celery) -> None:
    message = _send(celery_client, lambda: capp.send_task("t.add", (1, 2), link=capp.signature("t.add", args=(1,))))
    settlement = _finish(_finisher(_canvas()), message, Outcome(states.SUCCESS, object()))
    assert settlement.publishes == [] and settlement.guarded == []
    (write,) = settlement.writes
    meta = json.loads(write.meta)
    assert meta["status"] == "FAILURE" and meta["result"]["exc_type"] == "TypeError"


def test_redelivered_success_guards_its_follow_ups(celery_client: CeleryClient, capp: Celery) -> None:
    message = _send(celery_client, lambda: capp.send_task("t.add", (1, 2), link=capp.signature("t.add", args=(1,))))
    message.redelivered = True
    settlement = _finish(_finisher(_canvas()), message, Outcome(states.SUCCESS, 3))
    assert settlement.publishes == []
    (guard,) = settlement.guarded
    assert guard.task_id == message.id and len(guard.publishes) == 1


def test_failure_publishes_unknown_errbacks_and_fails_the_chain(celery_client: CeleryClient, capp: Celery) -> None:
    add = capp.signature("t.add")
    workflow = chain(add.clone((1, 1)).set(link_error=capp.signature("remote.errback", args=("extra",))),
                     add.clone((2,)), add.clone((3,)))
    message = _send(celery_client, workflow.apply_async)
    settlement = _finish(_finisher(_canvas()), message, Outcome(states.FAILURE, None, ValueError("boom"), "tb"))
    (errback,) = settlement.publishes
    headers, body = _decoded(errback)
    assert headers["task"] == "remote.errback" and body[0] == [message.id, "extra"]
    assert headers["group"] and headers["group_index"] == 0 and headers["parent_id"] == message.id
    assert message.embed.chain is not None
    chain_ids = [step["options"]["task_id"] for step in message.embed.chain]
    metas = {w.task_id: json.loads(w.meta) for w in settlement.writes}
    assert set(metas) == {message.id, *chain_ids}
    for task_id in chain_ids:
        assert metas[task_id]["status"] == "FAILURE" and metas[task_id]["task_id"] == task_id
        assert metas[task_id]["result"] == metas[message.id]["result"]


def test_new_style_errback_of_this_app_runs_inline(celery_client: CeleryClient, capp: Celery) -> None:
    CALLED.clear()
    message = _send(celery_client, lambda: capp.send_task("t.add", link_error=capp.signature("t.new_errback")))
    canvas = _canvas()

    async def fail() -> list[Publish]:
        publishes, _ = canvas.on_failure(message, "default", _failure(message), ValueError("x"))
        await asyncio.sleep(0.1)  # the errback runs on a thread
        return publishes

    assert asyncio.run(fail()) == []
    assert [(message.id, "ValueError('x')")] == CALLED


def _failure(message: TaskMessage) -> Any:
    finisher = _finisher(_canvas())
    return finisher.metas.finished(message, "default", Outcome(states.FAILURE, None, ValueError("x"), "tb"))


def test_chord_header_reports_its_result(celery_client: CeleryClient, capp: Celery) -> None:
    header = [capp.signature("t.add", args=(i, i)) for i in range(2)]
    message = _send(celery_client, lambda: chord(header, capp.signature("t.xsum")).apply_async(), index=1)
    (part,) = _canvas().chord_part(message, states.SUCCESS, 2)
    assert isinstance(part, ChordPart)
    assert (part.part.group_id, part.part.group_index) == (message.group, 1)
    assert json.loads(part.part.member) == [1, message.id, "SUCCESS", 2]
    assert part.part.token == f"{message.delivery_tag}:{message.id}"  # a redelivered copy claims alike
    assert part.body.task == "t.xsum" and part.lineage.parent_id == message.id
    failed = _canvas().chord_part(message, states.FAILURE, KeyError("k"))
    assert json.loads(failed[0].part.member)[3] == {"exc_type": "KeyError", "exc_message": ["k"],
                                                    "exc_module": "builtins"}
    revoked = _canvas().chord_part(message, states.REVOKED, "expired")
    assert json.loads(revoked[0].part.member)[3]["exc_type"] == "TaskRevokedError"


def test_failed_chain_step_that_belongs_to_a_chord_reports_too(celery_client: CeleryClient, capp: Celery) -> None:
    add = capp.signature("t.add")
    workflow = chord([chain(add.clone((1, 1)), add.clone((10,))), add.clone((2, 2))], capp.signature("t.xsum"))
    message = _send(celery_client, workflow.apply_async)
    assert message.group is None and message.embed.chain is not None
    (part,) = _canvas().chord_part(message, states.FAILURE, ValueError("boom"))
    step = message.embed.chain[0]
    assert (part.part.task_id, part.part.group_index) == (step["options"]["task_id"], 0)
    assert json.loads(part.part.member)[2] == "FAILURE"
    assert _canvas().chord_part(message, states.SUCCESS, 2) is None


def test_without_a_canvas_nothing_follows(celery_client: CeleryClient, capp: Celery) -> None:
    message = _send(celery_client, lambda: capp.send_task("t.add", (1, 2), link=capp.signature("t.add", args=(1,))))
    finisher = Finisher(MetaFactory(Settings(), "w1@test"), "w1@test")
    settlement = _finish(finisher, message, Outcome(states.SUCCESS, 3))
    assert settlement.publishes == [] and settlement.chord_parts == [] and len(settlement.writes) == 1


def _message(embed: dict[str, Any], group: str | None = None) -> TaskMessage:
    from skqueue.protocol.message import Embed, Outgoing, encode_task

    out = Outgoing(task="t.add", args=[1, 2], group=group, group_index=0 if group else None, embed=Embed(**embed))
    return decode_task(encode_task(out), UTC)


def test_malformed_signatures_are_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    bad = {"task": "t.add", "args": [], "kwargs": {}, "options": {"countdown": "soon"}}
    canvas = _canvas()
    assert canvas.on_success(_message({"callbacks": [bad]}), "default", 3) == ([], [], [])
    assert canvas.on_success(_message({"callbacks": [{"no": "task"}]}), "default", 3) == ([], [], [])
    message = _message({"errbacks": [bad], "chain": ["not a signature"]})
    assert canvas.on_failure(message, "default", _failure(message), ValueError("x")) == ([], [])
    assert canvas.chord_part(_message({"chord": {"no": "task"}}, group="g"), states.SUCCESS, 1) is None
    assert "cannot" in caplog.text


def test_unencodable_value_for_a_chord_in_the_chain_fails_the_task(celery_client: CeleryClient,
                                                                   capp: Celery) -> None:
    add, xsum = capp.signature("t.add"), capp.signature("t.xsum")
    message = _send(celery_client, chain(add.clone((1, 1)), chord([add.clone((1,))], xsum)).apply_async)
    publishes, _, launches = _canvas().on_success(message, "default", 2)
    assert publishes == [] and len(launches) == 1 and len(launches[0].headers) == 1
    with pytest.raises(TypeError):
        _canvas().on_success(message, "default", object())
    settlement = _finish(_finisher(_canvas()), message, Outcome(states.SUCCESS, object()))
    assert settlement.chord_parts == [] and json.loads(settlement.writes[0].meta)["status"] == "FAILURE"

"""Retry timing and message shape, with an injected clock and random source (no sleeping)."""

from __future__ import annotations

import base64
import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from skqueue.app import App
from skqueue.config import Settings
from skqueue.errors import MaxRetriesExceededError, Retry
from skqueue.protocol import states
from skqueue.protocol.message import Outgoing, decode_task, encode_task
from skqueue.worker.execute import Outcome, build_context
from skqueue.worker.finish import Finisher
from skqueue.worker.outcomes import MetaFactory
from skqueue.worker.retry import autoretry, backoff_countdown

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


class Boom(Exception):
    pass


@pytest.mark.parametrize("retries,expected", [(0, 1), (1, 2), (2, 4), (5, 32), (10, 600)])
def test_backoff_doubles_up_to_the_maximum(retries: int, expected: float) -> None:
    assert backoff_countdown(1, retries, 600, False, random.Random(0)) == expected


def test_full_jitter_stays_between_zero_and_the_backoff() -> None:
    rng = random.Random(42)
    values = [backoff_countdown(60, 3, 3600, True, rng) for _ in range(200)]
    assert all(0 <= v <= 480 for v in values)
    assert len(set(values)) > 50


def _message(retries: int = 0, **extra: Any) -> Any:
    out = Outgoing(task="t.flaky", args=[1], kwargs={"k": "v"}, queue="high_priority", priority=7,
                   retries=retries, extra_headers={"custom": "x"}, **extra)
    return decode_task(encode_task(out), UTC)


def _task(**options: Any) -> Any:
    app = App("t")
    return app.task(name="t.flaky", **options)(lambda *a, **k: None)


def test_autoretry_backoff_uses_the_attempt_number() -> None:
    task = _task(autoretry_for=(Boom,), retry_backoff=60, retry_jitter=False, max_retries=5)
    for retries, countdown in ((0, 60), (1, 120), (3, 480)):
        message = _message(retries)
        outcome = autoretry(task, build_context(task, message, "q", "w@h"), Boom("x"), random.Random(1))
        assert isinstance(outcome, Retry) and outcome.when == countdown


def test_autoretry_gives_up_with_the_original_exception() -> None:
    task = _task(autoretry_for=(Boom,), max_retries=2)
    exc = Boom("last")
    message = _message(2)
    assert autoretry(task, build_context(task, message, "q", "w@h"), exc, random.Random()) is exc


def test_autoretry_ignores_other_exceptions_and_dont_autoretry_for() -> None:
    task = _task(autoretry_for=(Exception,), dont_autoretry_for=(KeyError,))
    message = _message()
    ctx = build_context(task, message, "q", "w@h")
    other = KeyError("k")
    assert autoretry(task, ctx, other, random.Random()) is other


def test_retry_without_exc_past_the_limit_raises_max_retries_exceeded() -> None:
    task = _task(max_retries=1)
    ctx = build_context(task, _message(1), "q", "w@h")
    with pytest.raises(MaxRetriesExceededError):
        ctx.retry(countdown=1)


def test_retry_message_eta_comes_from_the_clock() -> None:
    message = _message(retries=1, root_id="root-1")
    finisher = Finisher(MetaFactory(Settings(), "w@h"), "w@h", clock=lambda: NOW)
    retry = Retry(exc=Boom("x"), when=30)
    record = finisher.record(message, "high_priority", states.RETRY, received=0.0)
    settlement = finisher.finished(message, "high_priority", _task(), Outcome(states.RETRY, None, retry, "tb"),
                                   ignore=False, ack=True, record=record)
    (publish,) = settlement.publishes
    assert (publish.queue, publish.priority) == ("high_priority", 7)
    sent = json.loads(publish.raw)
    headers = sent["headers"]
    assert datetime.fromisoformat(headers["eta"]) == NOW + timedelta(seconds=30)
    assert (headers["id"], headers["retries"], headers["parent_id"], headers["root_id"]) == (
        message.id, 2, message.id, "root-1")
    assert headers["custom"] == "x" and headers["origin"] == "w@h"
    assert sent["properties"]["delivery_tag"] != message.delivery_tag
    assert json.loads(base64.b64decode(sent["body"]))[:2] == [[1], {"k": "v"}]
    (write,) = settlement.writes
    meta = json.loads(write.meta)
    assert meta["status"] == "RETRY" and meta["children"] == [[[message.id, None], None]]
    assert meta["result"]["exc_type"] == "Boom"
    assert settlement.acks == [message.delivery_tag]


def test_retry_with_an_explicit_eta_and_queue() -> None:
    message = _message()
    finisher = Finisher(MetaFactory(Settings(), "w@h"), "w@h", clock=lambda: NOW)
    when = NOW + timedelta(hours=2)
    retry = Retry(when=None, eta=when, queue="low_priority")
    record = finisher.record(message, "high_priority", states.RETRY, received=0.0)
    settlement = finisher.finished(message, "high_priority", _task(), Outcome(states.RETRY, None, retry, None),
                                   ignore=True, ack=False, record=record)
    (publish,) = settlement.publishes
    assert publish.queue == "low_priority"
    assert datetime.fromisoformat(json.loads(publish.raw)["headers"]["eta"]) == when
    assert settlement.writes == [] and settlement.acks == []

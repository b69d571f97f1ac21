"""skqueue.protocol.results: the celery-task-meta layout, and Celery's client-side decoding of it."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from types import SimpleNamespace

import celery.exceptions
import pytest
from celery import Celery
from celery.result import AsyncResult

from skqueue.errors import NotRegistered, TaskRevokedError
from skqueue.protocol import results, states
from skqueue.protocol.results import EncodedException, ResultMeta, encode_exception


class CustomError(Exception):
    """An exception the client can import from this module."""


class Outer:
    class InnerError(Exception):
        pass


class Unprintable:
    def __repr__(self) -> str:
        return "<Unprintable>"


@pytest.fixture
def client() -> Iterator[Celery]:
    """A Celery client whose result backend is in memory (same KeyValueStore decoding as Redis)."""
    capp = Celery("unitresults", backend="cache+memory://", set_as_current=False)
    capp.conf.update(result_serializer="json", accept_content=["json"], result_accept_content=["json"])
    yield capp
    capp.close()


def _store(client: Celery, meta: ResultMeta) -> AsyncResult:
    """Put ``meta.to_json()`` where the client reads it and return the client's AsyncResult."""
    backend = client.backend
    backend.set(backend.get_key_for_task(meta.task_id), meta.to_json())
    return client.AsyncResult(meta.task_id)


def _tid() -> str:
    return str(uuid.uuid4())


# ---------------------------------------------------------------- layout


def test_field_order_minimal() -> None:
    meta = json.loads(results.success("t1", 5).to_json())
    assert list(meta) == ["status", "result", "traceback", "children", "date_done", "task_id"]
    assert meta["status"] == "SUCCESS"
    assert meta["result"] == 5
    assert meta["traceback"] is None
    assert meta["children"] == []
    assert meta["task_id"] == "t1"


def test_field_order_with_group_parent_and_extended() -> None:
    extended = {"name": "proj.add", "args": [1], "kwargs": {}, "worker": "w1@h", "retries": 0, "queue": "q"}
    meta = json.loads(results.success("t1", 5, group_id="g", parent_id="p", extended=extended).to_json())
    assert list(meta) == [
        "status", "result", "traceback", "children", "date_done", "group_id", "parent_id",
        "name", "args", "kwargs", "worker", "retries", "queue", "task_id",
    ]
    assert meta["group_id"] == "g"
    assert meta["parent_id"] == "p"
    assert meta["queue"] == "q"


@pytest.mark.parametrize(("group_id", "parent_id"), [("g", None), (None, "p")])
def test_group_and_parent_only_when_set(group_id: str | None, parent_id: str | None) -> None:
    meta = json.loads(results.success("t1", 1, group_id=group_id, parent_id=parent_id).to_json())
    assert ("group_id" in meta) is (group_id is not None)
    assert ("parent_id" in meta) is (parent_id is not None)
    assert list(meta)[-1] == "task_id"


def test_children_tuples() -> None:
    meta = json.loads(results.success("t1", 1, children=[results.child_tuple("c1")]).to_json())
    assert meta["children"] == [[["c1", None], None]]


@pytest.mark.parametrize("status", sorted(states.READY_STATES))
def test_date_done_for_ready_states_is_aware_utc(status: str) -> None:
    before = datetime.now(UTC)
    meta = json.loads(ResultMeta("t1", status).to_json())
    after = datetime.now(UTC)
    done = datetime.fromisoformat(meta["date_done"])
    assert done.tzinfo is not None
    assert done.utcoffset() == timedelta(0)
    assert before <= done <= after


@pytest.mark.parametrize("status", [states.STARTED, states.RETRY, states.PENDING, "PROGRESS"])
def test_no_date_done_for_unready_states(status: str) -> None:
    assert json.loads(ResultMeta("t1", status).to_json())["date_done"] is None


def test_explicit_date_done_is_kept() -> None:
    done = datetime(2030, 1, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    meta = json.loads(results.success("t1", 1, date_done=done).to_json())
    assert meta["date_done"] == "2030-01-01T12:00:00+02:00"


def test_started_meta() -> None:
    meta = json.loads(results.started("t1", 123, "w1@host").to_json())
    assert meta["status"] == "STARTED"
    assert meta["result"] == {"pid": 123, "hostname": "w1@host"}
    assert meta["date_done"] is None


def test_revoked_meta() -> None:
    meta = json.loads(results.revoked("t1", "expired").to_json())
    assert meta["status"] == "REVOKED"
    assert meta["result"] == {"exc_type": "TaskRevokedError", "exc_message": ["expired"],
                              "exc_module": "celery.exceptions"}
    assert meta["traceback"] is None
    assert meta["date_done"] is not None


def test_result_values_are_tagged() -> None:
    value = {"when": datetime(2030, 1, 1, tzinfo=UTC), "d": Decimal("1.10"), "b": b"\xff"}
    meta = json.loads(results.success("t1", value).to_json())
    assert meta["result"] == {
        "when": {"__type__": "datetime", "__value__": "2030-01-01T00:00:00+00:00"},
        "d": {"__type__": "decimal", "__value__": "1.10"},
        "b": {"__type__": "base64", "__value__": "/w=="},
    }


def test_unserializable_result_raises_type_error() -> None:
    with pytest.raises(TypeError):
        results.success("t1", object()).to_json()


def test_decode_meta_and_status_of() -> None:
    raw = results.success("t1", {"when": datetime(2030, 1, 1, tzinfo=UTC)}).to_json()
    decoded = results.decode_meta(raw)
    assert decoded is not None
    assert decoded["result"] == {"when": datetime(2030, 1, 1, tzinfo=UTC)}
    assert results.decode_meta(None) is None
    assert results.decode_meta(b"[1]") is None
    assert results.status_of(raw) == "SUCCESS"
    assert results.status_of(None) == "PENDING"
    assert results.status_of(b"garbage") == "PENDING"
    assert results.status_of(b"[1]") == "PENDING"


# ---------------------------------------------------------------- encode_exception


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (ValueError("boom"), EncodedException("ValueError", ["boom"], "builtins")),
        (KeyError("k"), EncodedException("KeyError", ["k"], "builtins")),
        (RuntimeError(), EncodedException("RuntimeError", [], "builtins")),
        (CustomError("custom", 42), EncodedException("CustomError", ["custom", 42], __name__)),
        (Outer.InnerError("x"), EncodedException("Outer.InnerError", ["x"], __name__)),
        (NotRegistered("proj.missing"), EncodedException("NotRegistered", ["proj.missing"], "celery.exceptions")),
        (TaskRevokedError("revoked"), EncodedException("TaskRevokedError", ["revoked"], "celery.exceptions")),
    ],
    ids=lambda v: type(v).__name__,
)
def test_encode_exception(exc: BaseException, expected: EncodedException) -> None:
    assert encode_exception(exc) == expected


def test_encode_exception_args_are_json_safe() -> None:
    when = datetime(2030, 1, 1, tzinfo=UTC)
    encoded = encode_exception(CustomError(when, (1, 2), Unprintable()))
    assert encoded.exc_message == [
        {"__type__": "datetime", "__value__": "2030-01-01T00:00:00+00:00"}, [1, 2], "<Unprintable>",
    ]
    json.loads(results.failure("t1", encoded, None).to_json())


def test_failure_layout() -> None:
    meta = json.loads(results.failure("t1", encode_exception(ValueError("boom")), "Traceback ...").to_json())
    assert meta["status"] == "FAILURE"
    assert meta["result"] == {"exc_type": "ValueError", "exc_message": ["boom"], "exc_module": "builtins"}
    assert meta["traceback"] == "Traceback ..."
    assert list(meta)[-1] == "task_id"


# ---------------------------------------------------------------- Celery's client decoding


def test_client_decode_result_success(client: Celery) -> None:
    value = {"when": datetime(2030, 1, 1, tzinfo=UTC), "d": date(2030, 1, 2), "n": [1, 2]}
    meta = client.backend.decode_result(results.success("t1", value, group_id="g").to_json())
    assert meta["status"] == "SUCCESS"
    assert meta["result"] == value
    assert isinstance(meta["result"]["when"], datetime)
    assert meta["task_id"] == "t1"
    assert meta["group_id"] == "g"


def test_client_get_success_returns_value(client: Celery) -> None:
    value = {"when": datetime(2030, 1, 1, tzinfo=UTC), "dec": Decimal("2.50"), "u": uuid.UUID(int=5)}
    result = _store(client, results.success(_tid(), value))
    assert result.state == "SUCCESS"
    assert result.successful()
    assert result.get(timeout=1) == value
    assert isinstance(result.date_done, datetime)
    assert result.date_done.tzinfo is not None


def test_client_get_datetime_result(client: Celery) -> None:
    when = datetime(2030, 1, 1, 3, 4, 5, tzinfo=UTC)
    result = _store(client, results.success(_tid(), when))
    assert result.get(timeout=1) == when


def test_client_rebuilds_value_error(client: Celery) -> None:
    meta = results.failure(_tid(), encode_exception(ValueError("boom")), "Traceback (most recent call last): ...")
    decoded = client.backend.decode_result(meta.to_json())
    assert type(decoded["result"]) is ValueError
    assert decoded["result"].args == ("boom",)
    result = _store(client, meta)
    assert result.failed()
    with pytest.raises(ValueError, match="boom"):
        result.get(timeout=1)
    assert result.traceback == "Traceback (most recent call last): ..."


def test_client_rebuilds_custom_and_nested_exceptions(client: Celery) -> None:
    exc = client.backend.exception_to_python(encode_exception(CustomError("custom", 42)).as_dict())
    assert type(exc) is CustomError
    assert exc.args == ("custom", 42)
    inner = client.backend.exception_to_python(encode_exception(Outer.InnerError("x")).as_dict())
    assert type(inner) is Outer.InnerError


def test_client_sees_celery_not_registered(client: Celery) -> None:
    meta = results.failure(_tid(), encode_exception(NotRegistered("proj.missing")), None)
    exc = client.backend.exception_to_python(json.loads(meta.to_json())["result"])
    assert type(exc) is celery.exceptions.NotRegistered
    with pytest.raises(celery.exceptions.NotRegistered, match=r"proj\.missing"):
        _store(client, meta).get(timeout=1)


def test_client_sees_celery_task_revoked_error(client: Celery) -> None:
    meta = results.failure(_tid(), encode_exception(TaskRevokedError("expired")), None)
    exc = client.backend.exception_to_python(json.loads(meta.to_json())["result"])
    assert type(exc) is celery.exceptions.TaskRevokedError
    result = _store(client, results.revoked(_tid(), "revoked"))
    assert result.state == "REVOKED"
    with pytest.raises(celery.exceptions.TaskRevokedError, match="revoked"):
        result.get(timeout=1)


def test_client_started_state(client: Celery) -> None:
    result = _store(client, results.started(_tid(), 42, "w1@host"))
    assert result.state == "STARTED"
    assert result.info == {"pid": 42, "hostname": "w1@host"}
    assert not result.ready()


def test_client_meta_from_decoded_matches_backend_meta_keys(client: Celery) -> None:
    raw = results.success("t1", 1, parent_id="p").to_json()
    meta = client.backend.meta_from_decoded(client.backend.decode(raw))
    assert meta == {"status": "SUCCESS", "result": 1, "traceback": None, "children": [],
                    "date_done": json.loads(raw)["date_done"], "parent_id": "p", "task_id": "t1"}


@pytest.mark.parametrize("extended", [False, True])
@pytest.mark.parametrize("status", [states.SUCCESS, states.STARTED])
def test_same_layout_as_celerys_own_store_result(extended: bool, status: str) -> None:
    """Celery's backend.store_result is the oracle: same keys, same order, same values (date aside)."""
    capp = Celery("unitresults", backend="cache+memory://", set_as_current=False)
    capp.conf.update(result_extended=extended)
    try:
        tid = _tid()
        request = SimpleNamespace(
            id=tid, group="g-1", parent_id="p-1", children=[], task="proj.add", args=[1, 2], kwargs={"k": 1},
            hostname="w1@host", retries=0, delivery_info={"routing_key": "work"}, stamps=None,
            ignore_result=False,
        )
        capp.backend.store_result(tid, {"v": 1}, status, request=request)
        theirs = json.loads(capp.backend.get(capp.backend.get_key_for_task(tid)))
    finally:
        capp.close()
    ext = {"name": "proj.add", "args": [1, 2], "kwargs": {"k": 1}, "worker": "w1@host", "retries": 0,
           "queue": "work"} if extended else None
    ours = json.loads(ResultMeta(tid, status, {"v": 1}, group_id="g-1", parent_id="p-1", extended=ext).to_json())
    assert list(ours) == list(theirs)
    assert (ours["date_done"] is None) is (theirs["date_done"] is None)
    ours.pop("date_done")
    theirs.pop("date_done")
    assert ours == theirs

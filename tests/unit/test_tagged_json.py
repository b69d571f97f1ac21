"""skqueue.protocol.tagged_json against kombu's own JSON dialect (kombu.utils.json)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from kombu.utils import json as kombu_json

from skqueue.errors import ProtocolError
from skqueue.protocol import tagged_json

AWARE = datetime(2025, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
AWARE_OFFSET = datetime(2025, 6, 1, 12, 0, tzinfo=timezone(timedelta(hours=5, minutes=30)))
AWARE_ZONE = datetime(2025, 7, 1, 9, 30, tzinfo=ZoneInfo("Europe/Berlin"))
NAIVE = datetime(2025, 1, 2, 3, 4, 5)
UID = uuid.UUID("00000000-0000-0000-0000-000000000001")

# (value, expected wire tag) for every type kombu tags.
TAGGED: list[tuple[Any, dict[str, Any]]] = [
    (AWARE, {"__type__": "datetime", "__value__": "2025-01-02T03:04:05.123456+00:00"}),
    (AWARE_OFFSET, {"__type__": "datetime", "__value__": "2025-06-01T12:00:00+05:30"}),
    (NAIVE, {"__type__": "datetime", "__value__": "2025-01-02T03:04:05"}),
    (date(2025, 1, 2), {"__type__": "date", "__value__": "2025-01-02"}),
    (time(3, 4, 5), {"__type__": "time", "__value__": "03:04:05"}),
    (time(3, 4, 5, 7, tzinfo=UTC), {"__type__": "time", "__value__": "03:04:05.000007+00:00"}),
    (Decimal("1.10"), {"__type__": "decimal", "__value__": "1.10"}),
    (Decimal("-1E+3"), {"__type__": "decimal", "__value__": "-1E+3"}),
    (UID, {"__type__": "uuid", "__value__": {"hex": "00000000000000000000000000000001"}}),
    (b"raw", {"__type__": "bytes", "__value__": "raw"}),
    ("é".encode(), {"__type__": "bytes", "__value__": "é"}),
    (b"\xff\x00", {"__type__": "base64", "__value__": "/wA="}),
]

NESTED: dict[str, Any] = {
    "when": AWARE,
    "list": [NAIVE, date(2025, 1, 2), [Decimal("0.1"), {"deep": UID}]],
    "blob": b"\x00\x01\xfe",
    "text": b"hello",
    "plain": [1, 2.5, "s", None, True, False],
    "tuple": (1, (AWARE, "x")),
    "unicode": "snow \u2603 \u00e9",
}


def _listify(value: Any) -> Any:
    """What a JSON round trip does to containers: tuples become lists."""
    if isinstance(value, list | tuple):
        return [_listify(item) for item in value]
    if isinstance(value, dict):
        return {key: _listify(item) for key, item in value.items()}
    return value


@pytest.mark.parametrize(("value", "wire"), TAGGED, ids=lambda v: type(v).__name__)
def test_wire_form_matches_kombu(value: Any, wire: dict[str, Any]) -> None:
    assert json.loads(tagged_json.dumps(value)) == wire
    assert json.loads(kombu_json.dumps(value)) == wire


@pytest.mark.parametrize(("value", "wire"), TAGGED, ids=lambda v: type(v).__name__)
def test_round_trip_each_type(value: Any, wire: dict[str, Any]) -> None:
    back = tagged_json.loads(tagged_json.dumps(value))
    assert back == value
    assert type(back) is type(value)


@pytest.mark.parametrize("value", [AWARE, AWARE_OFFSET, AWARE_ZONE])
def test_aware_datetime_keeps_offset(value: datetime) -> None:
    back = tagged_json.loads(tagged_json.dumps(value))
    assert back.tzinfo is not None
    assert back.utcoffset() == value.utcoffset()
    assert back == value


def test_naive_datetime_stays_naive() -> None:
    back = tagged_json.loads(tagged_json.dumps(NAIVE))
    assert back.tzinfo is None
    assert back == NAIVE


def test_decimal_keeps_exponent() -> None:
    back = tagged_json.loads(tagged_json.dumps(Decimal("1.10")))
    assert str(back) == "1.10"


def test_nested_containers_round_trip_with_tuples_as_lists() -> None:
    back = tagged_json.loads(tagged_json.dumps(NESTED))
    assert back == _listify(NESTED)
    assert back["tuple"] == [1, [AWARE, "x"]]
    assert isinstance(back["list"][2][1]["deep"], uuid.UUID)


def test_same_json_tree_as_kombu_for_nested_value() -> None:
    assert json.loads(tagged_json.dumps(NESTED)) == json.loads(kombu_json.dumps(NESTED))


@pytest.mark.parametrize(
    "value",
    [NESTED, [AWARE, NAIVE, b"\xff", b"ok"], {"a": {"b": [Decimal("3.14"), UID]}}, "plain", 42, None, [], {}],
    ids=["nested", "list", "dict", "str", "int", "null", "empty-list", "empty-dict"],
)
def test_kombu_dumps_read_by_skqueue_like_kombu_loads(value: Any) -> None:
    text = kombu_json.dumps(value)
    expected = kombu_json.loads(text)
    assert tagged_json.loads(text) == expected
    assert tagged_json.loads(text.encode("utf-8")) == expected


@pytest.mark.parametrize(
    "value",
    [NESTED, [AWARE, NAIVE, b"\xff", b"ok"], {"a": {"b": [Decimal("3.14"), UID]}}, "plain", 42, None],
    ids=["nested", "list", "dict", "str", "int", "null"],
)
def test_skqueue_dumps_read_back_identically_by_kombu(value: Any) -> None:
    assert kombu_json.loads(tagged_json.dumps(value)) == _listify(value)


def test_big_integers_survive_both_ways() -> None:
    big = [2**70, -(2**70)]
    assert tagged_json.loads(kombu_json.dumps(big)) == big
    assert kombu_json.loads(tagged_json.dumps(big)) == big


def test_non_string_keys_become_strings_like_kombu() -> None:
    value = {1: "a", 2.5: "b", "s": "c"}
    assert json.loads(tagged_json.dumps(value)) == json.loads(kombu_json.dumps(value))


def test_bool_and_none_dict_keys_encode_like_kombu() -> None:
    # json (and so kombu) writes True/False/None keys as "true"/"false"/"null". skqueue's _key() passes
    # bool/None keys through unchanged and msgspec refuses them, so dumps() raises TypeError.
    value = {True: 1, False: 2, None: 3}
    assert json.loads(tagged_json.dumps(value)) == json.loads(kombu_json.dumps(value))


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")], ids=["nan", "inf", "-inf"])
def test_non_finite_float_from_kombu_is_decoded(value: float) -> None:
    back = tagged_json.loads(kombu_json.dumps([value]))
    assert repr(back) == repr(kombu_json.loads(kombu_json.dumps([value])))


@pytest.mark.parametrize("value", [float("nan"), float("inf")], ids=["nan", "inf"])
def test_non_finite_float_result_survives_for_kombu(value: float) -> None:
    assert repr(kombu_json.loads(tagged_json.dumps([value]))) == repr([value])


def test_sets_are_encoded_as_lists() -> None:
    assert sorted(tagged_json.loads(tagged_json.dumps({1, 2, 3}))) == [1, 2, 3]


def test_json_reducer_is_used() -> None:
    class Point:
        def __json__(self) -> dict[str, Any]:
            return {"x": 1, "when": AWARE}

    assert tagged_json.loads(tagged_json.dumps({"p": Point()})) == {"p": {"x": 1, "when": AWARE}}
    assert kombu_json.loads(tagged_json.dumps({"p": Point()})) == {"p": {"x": 1, "when": AWARE}}


def test_unserializable_value_raises_type_error() -> None:
    with pytest.raises(TypeError):
        tagged_json.dumps({"x": object()})


def test_to_tagged_does_not_mutate_input() -> None:
    original = {"a": [AWARE, (1, 2)]}
    tagged = tagged_json.to_tagged(original)
    assert original == {"a": [AWARE, (1, 2)]}
    assert tagged == {"a": [{"__type__": "datetime", "__value__": AWARE.isoformat()}, [1, 2]]}


def test_dict_with_extra_keys_is_not_a_tag() -> None:
    text = '{"__type__": "datetime", "__value__": "2025-01-02", "other": 1}'
    assert tagged_json.loads(text) == kombu_json.loads(text) == {
        "__type__": "datetime", "__value__": "2025-01-02", "other": 1,
    }


def test_dict_with_only_type_key_is_not_a_tag() -> None:
    assert tagged_json.loads('{"__type__": "nope"}') == {"__type__": "nope"}


def test_unknown_tag_raises_protocol_error() -> None:
    text = '{"a": [{"__type__": "frobnicate", "__value__": 1}]}'
    with pytest.raises(ValueError, match="Unsupported type"):
        kombu_json.loads(text)
    with pytest.raises(ProtocolError, match="frobnicate"):
        tagged_json.loads(text)


@pytest.mark.parametrize(
    "tag",
    [
        {"__type__": "datetime", "__value__": "not a time"},
        {"__type__": "date", "__value__": "2025-13-45"},
        {"__type__": "time", "__value__": 5},
        {"__type__": "decimal", "__value__": "one"},
        {"__type__": "uuid", "__value__": {"hex": "xyz"}},
        {"__type__": "uuid", "__value__": {"nohex": "00000000000000000000000000000001"}},
        {"__type__": "base64", "__value__": "!!!"},
        {"__type__": "bytes", "__value__": 5},
        {"__type__": "base64", "__value__": 5},
    ],
    ids=lambda t: f"{t['__type__']}-{type(t['__value__']).__name__}",
)
def test_bad_tag_value_raises_protocol_error(tag: dict[str, Any]) -> None:
    # A value of the wrong JSON type must not escape as AttributeError: decode_task callers only catch
    # ProtocolError.
    with pytest.raises(ProtocolError):
        tagged_json.loads(json.dumps([tag]))


@pytest.mark.parametrize("text", ["{", "", "[1,]", "{'a': 1}", b"\xff\xfe", "NotJSON"])
def test_invalid_json_raises_protocol_error(text: str | bytes) -> None:
    with pytest.raises(ProtocolError):
        tagged_json.loads(text)


def test_untagged_text_is_plain_json() -> None:
    assert tagged_json.loads('{"a": [1, 2.5, "x", null, true]}') == {"a": [1, 2.5, "x", None, True]}

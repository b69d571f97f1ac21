"""Celery canvas signatures and the task messages one becomes. Pure: no Redis, no clock.

A signature is the dict ``{"task", "args", "kwargs", "options", "subtask_type", "immutable"}`` that rides in
a message's ``embed`` (``callbacks``, ``errbacks``, ``chain``, ``chord``). Applying one with a parent's result
is what a Celery worker does in ``Signature.apply_async``: the partial args go *before* the stored ones
(unless the signature is immutable), the call's options win over the signature's, and the message gets the
publishing task as its parent.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from skqueue.errors import ProtocolError
from skqueue.protocol import states, tagged_json
from skqueue.protocol.message import Embed, Outgoing, clamp_priority

GROUP = "group"
CHAIN = "chain"
CHORD = "chord"

# Options a call may not change once the signature has them (Celery's ``_IMMUTABLE_OPTIONS``).
_STICKY = frozenset({"group_id"})


def new_id() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True, slots=True)
class Signature:
    """One canvas signature. ``options`` may carry ``task_id``, ``queue``, ``priority``, ``group_id``,
    ``link``, ``link_error``, ``chain``, ``chord`` and the other ``apply_async`` options."""

    task: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    subtask_type: str | None = None
    immutable: bool = False

    @classmethod
    def parse(cls, value: Any) -> Signature:
        """Read a signature dict as found on the wire; :class:`ProtocolError` if it is not one."""
        if isinstance(value, Signature):
            return value
        if not isinstance(value, Mapping) or not isinstance(value.get("task"), str):
            raise ProtocolError(f"not a canvas signature: {_short(value)}")
        args, kwargs, options = value.get("args") or (), value.get("kwargs") or {}, value.get("options") or {}
        if not isinstance(args, list | tuple) or not isinstance(kwargs, Mapping) or not isinstance(options, Mapping):
            raise ProtocolError(f"malformed canvas signature: {_short(value)}")
        kind = value.get("subtask_type")
        return cls(value["task"], tuple(args), dict(kwargs), dict(options), str(kind) if kind else None,
                   bool(value.get("immutable")))

    @property
    def id(self) -> str | None:
        """The frozen task id (``options.task_id``), if any."""
        found = self.options.get("task_id")
        return str(found) if found else None

    def as_dict(self) -> dict[str, Any]:
        return {"task": self.task, "args": list(self.args), "kwargs": dict(self.kwargs),
                "options": dict(self.options), "subtask_type": self.subtask_type, "immutable": self.immutable}

    def with_options(self, **changes: Any) -> Signature:
        return dataclasses.replace(self, options={**self.options, **changes})

    def frozen(self, task_id: str | None = None) -> Signature:
        """This signature with a task id (its own, else ``task_id``, else a new one)."""
        return self if self.id else self.with_options(task_id=task_id or new_id())


def signatures(value: Any) -> list[Signature]:
    """A ``link``/``link_error``/``callbacks`` value (one signature, a list, or null) as signatures."""
    if not value:
        return []
    items = [value] if isinstance(value, Mapping | Signature) else list(value)
    return [Signature.parse(item) for item in items]


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


@dataclass(frozen=True, slots=True)
class Lineage:
    """Who publishes: the finished task (the new messages' parent), its workflow's root, the priority the
    messages inherit, the worker's node name, the time, and the app's routing (task name -> queue)."""

    parent_id: str
    root_id: str
    priority: int
    origin: str
    now: datetime
    route: Callable[[str], str]

    def child_of(self, parent_id: str, root_id: str | None = None) -> Lineage:
        return dataclasses.replace(self, parent_id=parent_id, root_id=root_id or self.root_id)


def merge_options(own: Mapping[str, Any], call: Mapping[str, Any]) -> dict[str, Any]:
    """The call's options over the signature's (None means "not given"), as ``Signature._merge`` does."""
    merged = dict(own)
    for key, value in call.items():
        if value is not None and not (key in _STICKY and own.get(key)):
            merged[key] = value
    return merged


def message_for(sig: Signature, args: Sequence[Any], options: Mapping[str, Any], lineage: Lineage) -> Outgoing:
    """The task message that applying ``sig`` publishes: ``args`` are the final positional arguments."""
    priority = options.get("priority")
    return Outgoing(
        task=sig.task, args=list(args), kwargs=dict(sig.kwargs), id=str(options.get("task_id") or new_id()),
        queue=_queue_name(options.get("queue")) or lineage.route(sig.task),
        priority=lineage.priority if priority is None else clamp_priority(priority),
        eta=_eta(options, lineage.now), expires=_when(options.get("expires"), lineage.now),
        root_id=lineage.root_id, parent_id=lineage.parent_id,
        group=options.get("group_id"), group_index=_int_or_none(options.get("group_index")),
        timelimit=(_seconds(options.get("time_limit")), _seconds(options.get("soft_time_limit"))),
        shadow=options.get("shadow"), ignore_result=options.get("ignore_result"), origin=lineage.origin,
        embed=Embed(_dicts(options.get("link")), _dicts(options.get("link_error")), _dicts(options.get("chain")),
                    _dict_or_none(options.get("chord"))),
        extra_headers=_headers(options.get("headers")), reply_to=options.get("reply_to"),
    )


def _queue_name(value: Any) -> str | None:
    if isinstance(value, Mapping):  # a kombu Queue serialized as its fields
        value = value.get("name")
    return str(value) if value else None


def _headers(value: Any) -> dict[str, Any]:
    return {str(k): v for k, v in value.items()} if isinstance(value, Mapping) else {}


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


def _seconds(value: Any) -> float | None:
    return None if value is None else float(value)


def _when(value: Any, now: datetime) -> datetime | None:
    """``eta``/``expires`` as Celery accepts them: a datetime, an ISO string, or seconds from now."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        return now + timedelta(seconds=value)
    when: datetime
    if isinstance(value, datetime):
        when = value
    else:
        try:
            when = datetime.fromisoformat(str(value))
        except ValueError as exc:
            raise ProtocolError(f"invalid time option {value!r}") from exc
    return when if when.tzinfo is not None else when.replace(tzinfo=now.tzinfo)


def _eta(options: Mapping[str, Any], now: datetime) -> datetime | None:
    countdown = options.get("countdown")
    if countdown is not None:
        return now + timedelta(seconds=float(countdown))
    return _when(options.get("eta"), now)


def _dicts(value: Any) -> list[dict[str, Any]] | None:
    found = [sig.as_dict() for sig in signatures(value)]
    return found or None


def _dict_or_none(value: Any) -> dict[str, Any] | None:
    return Signature.parse(value).as_dict() if value else None


# ---------------------------------------------------------------------------------------------- chords
def chord_member(task_id: str, state: str, result: Any) -> bytes:
    """One entry of a chord's ``.j`` set: ``[1, task_id, state, result]`` in kombu's JSON (a failure's
    result is its exception dict)."""
    return tagged_json.dumps([1, task_id, state, result])


def exception_repr(value: Any) -> str:
    """``repr()`` of the exception a Celery client would rebuild from an exception dict."""
    if not isinstance(value, Mapping):
        return repr(value)
    name = str(value.get("exc_type") or "Exception").rsplit(".", 1)[-1]
    args = value.get("exc_message")
    items = args if isinstance(args, list | tuple) else [args]
    return f"{name}({', '.join(repr(arg) for arg in items)})"


def chord_results(members: Iterable[bytes]) -> tuple[list[Any], str | None]:
    """The header results in ``.j`` order, and the ``ChordError`` message if a header task failed:
    ``Dependency <id> raised <repr>`` for the first failed one (as ``_unpack_chord_result``)."""
    results: list[Any] = []
    for raw in members:
        entry = tagged_json.loads(raw)
        if not isinstance(entry, list) or len(entry) != 4:
            return results, f"Join error: malformed chord result {_short(raw)}"
        _, task_id, state, value = entry
        if state in (states.FAILURE, states.REVOKED):
            return results, f"Dependency {task_id} raised {exception_repr(value)}"
        results.append(value)
    return results, None

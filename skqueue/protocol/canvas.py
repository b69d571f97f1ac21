"""What applying a canvas signature publishes, as Celery's ``canvas.py`` does it. Pure: no Redis, no clock.

* a task: one message;
* a group: one message per member, all with the group's id (its ``options.task_id``, else a new one) and
  their ``group_index``; nested groups are flattened;
* a chain: its first step, carrying the remaining steps (frozen, with task ids) reversed in ``chain``;
* a chord: its header tasks, each carrying the body in ``chord``. The chord size must be stored before any
  header message is published, so those are returned in a :class:`ChordStart` instead of with the rest.

Not reproduced: ``chord(...)`` extra header kwargs, and Celery's client-side upgrade of ``group | task``
inside a chain that was never prepared by a client (clients prepare chains before sending them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from skqueue.protocol.message import Outgoing
from skqueue.protocol.results import child_tuple
from skqueue.protocol.signature import (
    CHAIN,
    CHORD,
    GROUP,
    Lineage,
    Signature,
    merge_options,
    message_for,
    new_id,
    signatures,
)

# Options of a group that stay on the group instead of being passed on to each member.
_GROUP_OWN = frozenset({"task_id", "group_id", "group_index", "link", "link_error", "root_id", "parent_id",
                        "reply_to"})
# Options of a chord passed on to neither its header nor its body (the body gets its own id).
_CHORD_OWN = frozenset({"task_id", "parent_id", "chord", "chain", "link", "link_error", "group_index"})
# What makes a task, or the last step of a chain, report to a chord.
_CHORD_MEMBERSHIP = ("group_id", "group_index", "chord")


@dataclass(frozen=True, slots=True)
class ChordStart:
    """A chord applied by the worker: ``size`` must be stored for ``group_id`` before ``headers`` go out."""

    group_id: str
    size: int
    headers: tuple[Outgoing, ...]


@dataclass(slots=True)
class Applied:
    """Messages to publish now, the parent's ``children`` entries, and chords to start."""

    messages: list[Outgoing] = field(default_factory=list)
    children: list[Any] = field(default_factory=list)
    chords: list[ChordStart] = field(default_factory=list)

    def extend(self, other: Applied) -> None:
        self.messages.extend(other.messages)
        self.children.extend(other.children)
        self.chords.extend(other.chords)


def apply(sig: Signature, args: Sequence[Any], lineage: Lineage,
          call: Mapping[str, Any] | None = None) -> Applied:
    """Apply ``sig`` with partial ``args`` and call options ``call`` (``group_id``, ``chain``, ...)."""
    options = dict(call or {})
    if sig.subtask_type == GROUP:
        return _apply_group(sig, args, lineage, options)
    if sig.subtask_type == CHAIN:
        return _apply_chain(sig, args, lineage, options)
    if sig.subtask_type == CHORD:
        return _apply_chord(sig, args, lineage, options)
    # Anything else (a plain task, or celery.map/starmap/chunks) is a message for its task name.
    merged = merge_options(sig.options, options)
    final = list(sig.args) if sig.immutable else [*args, *sig.args]
    out = message_for(sig, final, merged, lineage)
    return Applied([out], [child_tuple(out.id)])


def apply_group(members: Sequence[Signature], args: Sequence[Any], lineage: Lineage,
                group_id: str | None = None) -> Applied:
    """``group(members).apply_async(args)``: a fresh group id unless one is given."""
    sig = Signature("celery.group", kwargs={"tasks": [m.as_dict() for m in members]},
                    options={"task_id": group_id} if group_id else {}, subtask_type=GROUP)
    return _apply_group(sig, args, lineage, {})


def group_members(sig: Signature) -> list[Signature]:
    """The tasks of a group signature, nested groups flattened."""
    found: list[Signature] = []
    for member in signatures(sig.kwargs.get("tasks")):
        found.extend(group_members(member) if member.subtask_type == GROUP else [member])
    return found


def _apply_group(sig: Signature, args: Sequence[Any], lineage: Lineage, call: dict[str, Any]) -> Applied:
    group_id = sig.id or new_id()
    shared = {k: v for k, v in merge_options(sig.options, call).items() if k not in _GROUP_OWN}
    partial = () if sig.immutable else args
    applied = Applied()
    for index, member in enumerate(group_members(sig)):
        applied.extend(apply(member, partial, lineage, {**shared, "group_id": group_id, "group_index": index}))
    applied.children = [[[group_id, None], applied.children]]
    return applied


def chain_steps(sig: Signature) -> list[Signature]:
    """The steps of a chain signature in running order, nested chains spliced in."""
    steps: list[Signature] = []
    for step in signatures(sig.kwargs.get("tasks")):
        if step.subtask_type == CHAIN:
            steps.extend(chain_steps(step))
        elif not (step.subtask_type == GROUP and not step.kwargs.get("tasks")):
            steps.append(step)
    return steps


def _apply_chain(sig: Signature, args: Sequence[Any], lineage: Lineage, call: dict[str, Any]) -> Applied:
    steps = chain_steps(sig)
    if not steps:
        return Applied()
    steps[-1] = steps[-1].frozen(sig.id)
    steps[1:] = [step.frozen() for step in steps[1:]]
    first, rest = steps[0], steps[1:]
    membership = {k: call.pop(k) for k in _CHORD_MEMBERSHIP if k in call}
    if rest and membership:  # a chain in a chord header: its last step is the one that reports
        rest[-1] = rest[-1].with_options(**membership)
    elif membership:
        call.update(membership)
    outer = list(call.pop("chain", None) or sig.options.get("chain") or [])
    remaining = [*outer, *(step.as_dict() for step in reversed(rest))]
    own = {k: v for k, v in sig.options.items() if k not in ("task_id", "link", "link_error", "chain")}
    first_call = {**merge_options(own, call), "chain": remaining or None}
    return apply(first, () if sig.immutable else args, lineage, first_call)


def _chord_header(sig: Signature) -> tuple[list[Signature], str | None, dict[str, Any]]:
    """The header tasks of a chord signature, the header group's id, and its options for the members."""
    header = sig.kwargs.get("header")
    if isinstance(header, Mapping | Signature):
        group = Signature.parse(header)
        if group.subtask_type == GROUP:
            shared = {k: v for k, v in group.options.items() if k not in _GROUP_OWN}
            return group_members(group), group.id, shared
        return [group], None, {}
    members: list[Signature] = []
    for item in signatures(header):
        members.extend(group_members(item) if item.subtask_type == GROUP else [item])
    return members, None, {}


def _apply_chord(sig: Signature, args: Sequence[Any], lineage: Lineage, call: dict[str, Any]) -> Applied:
    members, header_id, shared = _chord_header(sig)
    group_id = header_id or sig.id or new_id()
    body = _chord_body(sig, group_id, lineage, call)
    partial = () if sig.immutable else args
    if not members:  # nothing will ever report: the body runs now with no results
        return apply(body, [[]], lineage)
    passed = {k: v for k, v in merge_options(sig.options, call).items() if k not in _CHORD_OWN}
    headers = Applied()
    for index, member in enumerate(members):
        options = {**passed, **shared, "group_id": group_id, "group_index": index, "chord": body.as_dict()}
        headers.extend(apply(member, partial, lineage, options))
    start = ChordStart(group_id, len(members), tuple(headers.messages))
    return Applied([], [[[group_id, None], headers.children]], [start, *headers.chords])


def _chord_body(sig: Signature, group_id: str, lineage: Lineage, call: dict[str, Any]) -> Signature:
    """The body, frozen as Celery's ``chord.run`` leaves it: its id, the chord's group id, the workflow
    root, the rest of an enclosing chain, the chord's links, and membership of an enclosing chord."""
    body = Signature.parse(sig.kwargs.get("body"))
    links = [*signatures(body.options.get("link")), *signatures(sig.options.get("link"))]
    errbacks = [*signatures(body.options.get("link_error")), *signatures(sig.options.get("link_error"))]
    options: dict[str, Any] = {
        **{k: v for k, v in sig.options.items() if k not in _CHORD_OWN and v is not None},
        **body.options,
        "root_id": lineage.root_id,
    }
    if body.subtask_type != CHAIN:  # a chain's steps carry their own ids (its last one is the result)
        options["task_id"] = body.id or sig.id or new_id()
        options["group_id"] = call.get("group_id") or body.options.get("group_id") or group_id
    for key in ("chain", "chord", "group_index"):
        if call.get(key) is not None:
            options[key] = call[key]
    if links:
        options["link"] = [s.as_dict() for s in links]
    if errbacks:
        options["link_error"] = [s.as_dict() for s in errbacks]
    return Signature(body.task, body.args, body.kwargs, options, body.subtask_type, body.immutable)


def failed_chain(chain: Sequence[Any] | None) -> list[Signature]:
    """The steps to mark failed when a task with this remaining ``chain`` fails (Celery's ``_fail_chain``):
    every step with a task id, and the body of a chord step (the result later steps wait on)."""
    pending = list(signatures(chain))
    found: list[Signature] = []
    while pending:
        step = pending.pop(0)
        if step.id:
            found.append(step)
        if step.subtask_type == CHORD and step.kwargs.get("body"):
            pending.append(Signature.parse(step.kwargs["body"]))
    return found

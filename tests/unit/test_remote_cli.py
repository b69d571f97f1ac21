"""The command-line side of events and remote control: worker flags, inspect/control parsing, output."""

from __future__ import annotations

from skqueue.cli import _worker_options, build_parser
from skqueue.control_client import render
from tests.apps import wire


def test_worker_event_flags() -> None:
    parser = build_parser()
    default = _worker_options(wire.app, parser.parse_args(["worker", "-Q", "default"]))
    assert (default.task_events, default.heartbeat) == (False, True)
    flagged = _worker_options(wire.app, parser.parse_args(["worker", "-Q", "default", "-E", "--without-heartbeat"]))
    assert (flagged.task_events, flagged.heartbeat) == (True, False)
    assert parser.parse_args(["worker", "--task-events"]).task_events is True


def test_inspect_and_control_arguments() -> None:
    parser = build_parser()
    args = parser.parse_args(["inspect", "active", "-d", "a@x,b@y", "--timeout", "0.5"])
    assert (args.method, args.destination, args.timeout, args.json) == ("active", "a@x,b@y", 0.5, False)
    args = parser.parse_args(["control", "revoke", "id1", "id2", "--terminate", "--signal", "KILL"])
    assert (args.method, args.ids, args.terminate, args.signal) == ("revoke", ["id1", "id2"], True, "KILL")


def test_render_like_celery_inspect() -> None:
    text = render({"w1@test": {"ok": "pong"}, "w2@test": {"error": "KeyError('x')"}, "w3@test": [],
                   "w4@test": ["wire.add", "wire.sleep"], "w5@test": {"total": {}}})
    assert text.splitlines()[:4] == ["->  w1@test: OK", "    pong", "->  w2@test: ERROR", "    KeyError('x')"]
    assert "->  w3@test: OK\n    - empty -" in text
    assert "    * wire.add\n    * wire.sleep" in text
    assert '        "total": {}' in text
    assert text.endswith("\n5 nodes online.\n")
    assert render({"w1@test": {"ok": "pong"}}).endswith("\n1 node online.\n")

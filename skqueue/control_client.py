"""The client side of remote control: what ``skqueue inspect`` and ``skqueue control`` send and print.

It speaks kombu's pidbox protocol, so it reaches Celery workers as well as skqueue ones.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from skqueue.broker.connections import open_connections, release_urls, resolve_urls
from skqueue.broker.mailbox import Mailbox, broadcast
from skqueue.config import Settings

INSPECT_COMMANDS = ("active", "active_queues", "clock", "conf", "ping", "query_task", "registered", "report",
                    "reserved", "revoked", "scheduled", "stats")
CONTROL_COMMANDS = ("disable_events", "enable_events", "heartbeat", "revoke", "shutdown")
EX_UNAVAILABLE = 69  # what ``celery inspect`` exits with when nobody answered


async def call(settings: Settings, method: str, arguments: dict[str, Any] | None = None, *,
               destination: Sequence[str] | None = None, timeout: float = 1.0) -> dict[str, Any]:
    """Open the broker the settings name, :func:`broadcast`, close it."""
    urls = resolve_urls(settings)
    try:
        async with open_connections(settings, urls, name="skqueue-control") as conns:
            mailbox = Mailbox(conns.broker.client, conns.broker.keys, settings.control_exchange)
            return await broadcast(mailbox, method, arguments, destination=destination, timeout=timeout)
    finally:
        release_urls(urls)


def run_command(settings: Settings, method: str, arguments: dict[str, Any] | None = None, *,
                destination: Sequence[str] | None = None, timeout: float = 1.0, as_json: bool = False,
                out: TextIO = sys.stdout) -> int:
    """What the CLI does: call, print like ``celery inspect``, and return the exit status."""
    replies = asyncio.run(call(settings, method, arguments, destination=destination, timeout=timeout))
    if not replies:
        print("Error: No nodes replied within time constraint", file=sys.stderr)
        return EX_UNAVAILABLE
    out.write(json.dumps(replies, default=repr) + "\n" if as_json else render(replies))
    return 0


def render(replies: dict[str, Any]) -> str:
    """Replies as ``celery inspect`` prints them: ``->  node: OK`` and the indented answer."""
    lines = []
    for node, answer in replies.items():
        status, text = _pretty(answer)
        lines.append(f"->  {node}: {status}")
        lines.extend("    " + line for line in text.splitlines())
    count = len(replies)
    lines.append(f"\n{count} {'node' if count == 1 else 'nodes'} online.")
    return "\n".join(lines) + "\n"


def _pretty(answer: Any) -> tuple[str, str]:
    if isinstance(answer, dict) and ("ok" in answer or "error" in answer):
        status = "OK" if "ok" in answer else "ERROR"
        return status, _pretty(answer.get("ok", answer.get("error")))[1]
    if isinstance(answer, list):
        return "OK", "\n".join(f"* {_item(item)}" for item in answer) if answer else "- empty -"
    if isinstance(answer, dict):
        return "OK", json.dumps(answer, sort_keys=True, indent=4, default=repr)
    return "OK", str(answer)


def _item(item: Any) -> str:
    return json.dumps(item, sort_keys=True, default=repr) if isinstance(item, dict) else str(item)

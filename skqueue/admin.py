"""``skqueue dlq`` and ``skqueue purge``: operator commands on the broker (thin; the CLI calls these)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from skqueue.broker.connections import open_connections, release_urls, resolve_urls
from skqueue.broker.deadletters import DeadLetter, DeadLetters
from skqueue.config import Settings


def _line(letter: DeadLetter) -> str:
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(letter.time)) if letter.time else "?"
    task = f"{letter.task}[{letter.task_id}]" if letter.task else "(not a task message)"
    return f"{letter.index:>4}  {when}  {letter.queue or '-':<16} {task}\n      reason: {letter.reason}"


async def dlq(settings: Settings, action: str, indexes: Sequence[int] = (), *, limit: int = 50,
              queue: str | None = None) -> tuple[int, list[str]]:
    """Run a dead-letter action; returns (exit status, lines to print)."""
    urls = resolve_urls(settings)
    try:
        async with open_connections(settings, urls, name="skqueue-dlq") as conns:
            letters = DeadLetters(conns.broker.client, conns.broker.keys)
            if action == "list":
                found = await letters.list(0, limit)
                total = await letters.count()
                return 0, [*map(_line, found), f"{total} dead letter(s)"]
            if action == "purge":
                return 0, [f"purged {await letters.purge()} dead letter(s)"]
            chosen = await _select(letters, indexes)
            moved = await letters.requeue(chosen, queue)
            return (0 if moved == len(chosen) else 1), [f"requeued {moved} of {len(chosen)} dead letter(s)"]
    finally:
        release_urls(urls)


async def _select(letters: DeadLetters, indexes: Sequence[int]) -> list[DeadLetter]:
    everything = await letters.list(0, await letters.count())
    if not indexes:
        return everything
    wanted = set(indexes)
    return [letter for letter in everything if letter.index in wanted]


async def purge(settings: Settings, queues: Sequence[str]) -> list[str]:
    urls = resolve_urls(settings)
    try:
        async with open_connections(settings, urls, name="skqueue-purge") as conns:
            sizes = await conns.broker.queue_sizes(queues)
            await conns.broker.purge(queues)
            return [f"{queue}: purged {count} message(s)" for queue, count in sizes.items()]
    finally:
        release_urls(urls)

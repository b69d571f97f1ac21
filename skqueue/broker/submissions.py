"""What the monitoring API enqueued: the task name, arguments and queue of each message it sent, kept as
long as the results are (``result_expires``), so a failed task can be sent again with its original
arguments even when the result backend does not store them (``result_extended`` off)."""

from __future__ import annotations

from typing import Any

import msgspec
from redis.asyncio import Redis

from skqueue.broker.keys import BrokerKeys
from skqueue.protocol import tagged_json


class Submission(msgspec.Struct, frozen=True):
    """One message the API sent."""

    task_id: str
    name: str
    args: list[Any]
    kwargs: dict[str, Any]
    queue: str
    sent_at: float
    retry_of: str | None = None


class Submissions:
    def __init__(self, client: Redis, keys: BrokerKeys, ttl: float | None) -> None:
        self.client = client
        self.keys = keys
        self.ttl = ttl

    async def record(self, submission: Submission) -> None:
        # kombu's tagged JSON, as in the message itself: Decimal or datetime arguments come back as such.
        payload = tagged_json.dumps(msgspec.structs.asdict(submission))
        ttl = int(self.ttl) if self.ttl and self.ttl > 0 else None
        await self.client.set(self.keys.submitted(submission.task_id), payload, ex=ttl)

    async def get(self, task_id: str) -> Submission | None:
        raw = await self.client.get(self.keys.submitted(task_id))
        if raw is None:
            return None
        try:
            return msgspec.convert(tagged_json.loads(raw), Submission)
        except (msgspec.ValidationError, ValueError):
            return None

"""Moving a message the worker cannot run to the dead-letter list, with the reason."""

from __future__ import annotations

import logging
import time

import msgspec
from redis.exceptions import RedisError

from skqueue.broker.transport import RedisBroker, Reserved

log = logging.getLogger("skqueue.worker")


def delivery_tag(raw: bytes) -> str:
    try:
        envelope = msgspec.json.decode(raw)
        return str(envelope["properties"]["delivery_tag"])
    except (msgspec.DecodeError, KeyError, TypeError):
        return ""


async def dead_letter(broker: RedisBroker, reserved: Reserved, reason: str, worker: str) -> None:
    """Atomically take ``reserved`` out of ``unacked`` and push a record of it on the dead-letter list."""
    tag = delivery_tag(reserved.raw)
    record = msgspec.json.encode({"reason": reason, "queue": reserved.queue, "worker": worker,
                                  "time": time.time(), "payload": reserved.raw.decode("utf-8", "replace")})
    try:
        await broker.dead_letter(tag, record)
    except RedisError as exc:
        log.error("Could not dead-letter %s (%s); it stays unacked and returns later", tag, exc)

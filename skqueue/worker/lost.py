"""What happens to tasks that were running when their worker process died.

As in Celery with ``acks_late``: with ``task_reject_on_worker_lost`` the message is rejected with requeue
(to the tail of its queue); otherwise the task ends FAILURE ``WorkerLostError`` and the message is acked.
Unlike Celery, a message that has now killed its worker ``max_deliveries`` times is a poison message: it
is moved to the dead-letter list with the reason, its result is FAILURE, and it does not crash-loop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import tzinfo

import msgspec

from skqueue.app import App
from skqueue.broker.results import ResultStore
from skqueue.broker.transport import Held, RedisBroker
from skqueue.broker.workers import WorkerRegistry
from skqueue.errors import ProtocolError, WorkerLostError
from skqueue.protocol import results
from skqueue.protocol.message import TaskMessage, decode_task
from skqueue.worker.outcomes import MetaFactory

log = logging.getLogger("skqueue.worker")

DEFAULT_MAX_DELIVERIES = 3


class LostTasks:
    def __init__(self, app: App, broker: RedisBroker, results_store: ResultStore | None,
                 registry: WorkerRegistry, metas: MetaFactory, *,
                 max_deliveries: int = DEFAULT_MAX_DELIVERIES) -> None:
        self.app = app
        self.broker = broker
        self.results = results_store
        self.registry = registry
        self.metas = metas
        self.max_deliveries = max_deliveries
        self.tz: tzinfo = app.conf.tz()

    async def settle(self, worker_id: str, running: Sequence[Held], cause: str) -> None:
        counts = await self.registry.count_crash([h.tag for h in running])
        for held in running:
            await self._settle_one(worker_id, held, counts.get(held.tag, 1), cause)

    async def _settle_one(self, worker_id: str, held: Held, deliveries: int, cause: str) -> None:
        try:
            message = decode_task(held.raw, self.tz)
        except ProtocolError as exc:
            await self._dead_letter(worker_id, held, f"undecodable after its worker died: {exc}")
            return
        task = self.app.tasks.get(message.task)
        if deliveries >= self.max_deliveries:
            reason = (f"poison message: {message.task}[{message.id}] was running when its worker died "
                      f"{deliveries} times (last: {cause})")
            log.error("%s; moved to the dead-letter list", reason)
            await self._dead_letter(worker_id, held, reason)
            await self._fail(message, held, f"{reason}; moved to the dead-letter list")
        elif task is None or (task.acks_late and task.reject_on_worker_lost):
            log.warning("Task %s[%s] was running when its worker died (%s): requeued (delivery %d of %d)",
                        message.task, message.id, cause, deliveries, self.max_deliveries)
            await self.broker.requeue([held], head=False, owner=worker_id, crashes=deliveries)
        else:
            log.error("Task %s[%s] raised WorkerLostError: %s", message.task, message.id, cause)
            await self._fail(message, held, f"Worker exited prematurely: {cause}.")
            await self.broker.ack([held.tag], owner=worker_id)

    async def _fail(self, message: TaskMessage, held: Held, text: str) -> None:
        if self.results is None or message.ignore_result:
            return
        exc = results.encode_exception(WorkerLostError(text))
        meta = results.failure(message.id, exc, None, group_id=message.group, parent_id=message.parent_id)
        await self.results.store([self.metas.write(meta)])

    async def _dead_letter(self, worker_id: str, held: Held, reason: str) -> None:
        record = msgspec.json.encode({"reason": reason, "queue": held.routing_key, "worker": worker_id,
                                      "time": time.time(), "payload": held.raw.decode("utf-8", "replace")})
        await self.broker.dead_letter(held.tag, record, owner=worker_id)

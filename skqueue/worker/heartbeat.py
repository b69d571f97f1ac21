"""The worker's liveness record, and returning the deliveries of skqueue workers that died.

Every ``freq`` seconds the worker publishes a :class:`WorkerRecord` (the monitoring API lists workers
from these). Every few beats it also looks for workers whose record expired: a worker killed without a
supervisor (``kill -9`` of a standalone process, a lost machine) gets its deliveries back in their
queues after the record's TTL, not after kombu's visibility timeout (an hour by default).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections import Counter
from typing import TYPE_CHECKING

from skqueue.broker.pubsub import raise_if_cancelled
from skqueue.broker.workers import WorkerRecord, WorkerRegistry, return_deliveries
from skqueue.worker.settle import REDIS_ERRORS

if TYPE_CHECKING:
    from skqueue.worker.worker import Worker

log = logging.getLogger("skqueue.worker")

REAP_EVERY = 3


class Heartbeat:
    """A worker component: beat, and reap dead workers."""

    def __init__(self, registry: WorkerRegistry, freq: float = 2.0, supervisor_pid: int | None = None) -> None:
        self.registry = registry
        self.freq = freq
        self.supervisor_pid = supervisor_pid

    def record(self, worker: Worker) -> WorkerRecord:
        return WorkerRecord(
            worker_id=worker.broker.worker_id, node=worker.options.hostname, host=socket.gethostname(),
            pid=os.getpid(), queues=worker.queues, concurrency=worker.options.concurrency,
            active=[d.message.id for d in worker.running.values()], processed=worker.stats.processed,
            started_at=worker.started_at, beat_at=time.time(), freq=self.freq, supervisor_pid=self.supervisor_pid,
            scheduled=dict(Counter(d.queue for d in worker.scheduled.values())),
            reserved=dict(Counter(d.queue for tag, d in worker.holding.items() if tag not in worker.scheduled)),
            total=dict(worker.stats.by_task),
        )

    async def run(self, worker: Worker) -> None:
        beats = 0
        try:
            while True:
                try:
                    await self.registry.beat(self.record(worker))
                    if beats % REAP_EVERY == 0:
                        await self.reap(worker)
                except REDIS_ERRORS as exc:
                    log.warning("Heartbeat failed: %s", exc)
                raise_if_cancelled()
                beats += 1
                await asyncio.sleep(self.freq)
        finally:
            # The worker has requeued what it held before its components are stopped.
            await self.registry.leave(worker.broker.worker_id)

    async def reap(self, worker: Worker) -> None:
        for worker_id in await self.registry.dead():
            if worker_id == worker.broker.worker_id or not await self.registry.claim(worker_id):
                continue
            moved, _ = await return_deliveries(worker.broker, self.registry, worker_id, set())
            await self.registry.forget(worker_id)
            if moved:
                log.warning("Worker %s stopped beating: returned %d of its deliveries to their queues",
                            worker_id, moved)

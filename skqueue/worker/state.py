"""The worker's value types: options, counters, and one delivery's journey."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from skqueue.broker.transport import Held
from skqueue.protocol.message import TaskMessage
from skqueue.worker.execute import Running


@dataclass(slots=True)
class WorkerOptions:
    queues: list[str]
    concurrency: int = 8
    prefetch_multiplier: int = 4
    hostname: str = "skqueue@localhost"
    shutdown_timeout: float = 30.0
    burst: bool = False
    max_tasks_per_child: int | None = None
    max_memory_per_child: int | None = None  # KiB of resident memory, as Celery counts it
    task_events: bool = False  # -E: task-* events from the start (also worker_send_task_events, enable_events)
    heartbeat: bool = True  # worker-online/-heartbeat/-offline events (off: --without-heartbeat)
    heartbeat_interval: float = 2.0
    remote_control: bool = True  # answer celery inspect/control (also worker_enable_remote_control)


@dataclass(slots=True)
class Stats:
    received: int = 0
    succeeded: int = 0
    failed: int = 0
    retried: int = 0
    revoked: int = 0
    dead_lettered: int = 0
    by_task: dict[str, int] = field(default_factory=dict)

    @property
    def processed(self) -> int:
        return self.succeeded + self.failed + self.retried + self.revoked


@dataclass(slots=True, eq=False)
class Delivery:
    """One message this worker holds, from reservation until its ack."""

    message: TaskMessage
    queue: str
    received: float = field(default_factory=time.time)
    started: float = 0.0
    timer: asyncio.TimerHandle | None = None
    runner: asyncio.Task[None] | None = None
    running: Running | None = None
    slot: int | None = None

    @property
    def tag(self) -> str:
        return self.message.delivery_tag

    def held(self) -> Held:
        m = self.message
        return Held(m.delivery_tag, m.raw, m.exchange, m.routing_key or self.queue, m.priority)

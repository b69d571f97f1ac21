"""The reservation loop: take batches within the prefetch credit, wake on pushes when idle."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from skqueue.broker.pubsub import raise_if_cancelled
from skqueue.broker.transport import RedisBroker, Reserved
from skqueue.broker.wakeup import Doorbell
from skqueue.worker.settle import REDIS_ERRORS

log = logging.getLogger("skqueue.worker")


class Consumer:
    """Reserves up to ``credit()`` messages at a time and hands each batch to ``accept``.

    Queue order follows kombu: band-major, and with ``round_robin`` a queue that delivered moves to the
    end of the cycle (``priority`` keeps the given order, ``sorted`` sorts it once)."""

    def __init__(self, broker: RedisBroker, doorbell: Doorbell, queues: list[str], strategy: str,
                 polling_interval: float) -> None:
        self.broker = broker
        self.doorbell = doorbell
        ordered = sorted(queues) if strategy == "sorted" else queues
        self.cycle = list(dict.fromkeys(ordered))
        self.rotate = strategy == "round_robin"
        self.polling_interval = polling_interval
        self.credit_changed = asyncio.Event()
        self.stopped = False

    def stop(self) -> None:
        """Stop after the current step. Cancellation alone is not enough: a cancel that lands just as a
        redis-py read times out can be swallowed there, and the loop would carry on."""
        self.stopped = True
        self.credit_changed.set()
        self.doorbell.interrupt()

    async def run(self, credit: Callable[[], int], accept: Callable[[list[Reserved]], None],
                  on_empty: Callable[[], bool]) -> None:
        """Loop until cancelled. ``on_empty`` returns True to stop (burst mode)."""
        delay = 0.05
        while not self.stopped:
            try:
                if await self._once(credit, accept, on_empty):
                    return
                raise_if_cancelled()
                delay = 0.05
            except REDIS_ERRORS as exc:  # connection loss, and also READONLY after a failover, OOM, ...
                log.warning("Broker error: %s; retrying in %.1fs", exc, delay)
                await self.doorbell.close()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _once(self, credit: Callable[[], int], accept: Callable[[list[Reserved]], None],
                    on_empty: Callable[[], bool]) -> bool:
        available = credit()
        if self.stopped:
            return True
        if available <= 0:
            self.credit_changed.clear()
            await self.credit_changed.wait()
            return False
        batch = await self.broker.reserve(self.cycle, available)
        if not batch:
            if on_empty():
                return True
            # Subscribing takes a moment: look once more afterwards, or a push in between is missed.
            if await self.doorbell.arm(self.broker.keys.poll_order(self.cycle)):
                batch = await self.broker.reserve(self.cycle, available)
            if not batch:
                await self.doorbell.wait(self.polling_interval)
                return False
        self.doorbell.busy()
        if len(batch) >= available:
            await self.doorbell.close()
        self._rotate(batch)
        accept(batch)
        return False

    def _rotate(self, batch: list[Reserved]) -> None:
        if not self.rotate:
            return
        for reserved in batch:
            if self.cycle[-1] != reserved.queue:
                self.cycle.remove(reserved.queue)
                self.cycle.append(reserved.queue)

    async def close(self) -> None:
        await self.doorbell.close()

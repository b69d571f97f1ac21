"""Warm and cold shutdown: let running tasks finish (or not), write what is done, put the rest back.

Whatever this worker still holds unacked goes back to the head of its queue, so it is the next thing any
worker runs; nothing is acked that did not finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from skqueue.broker.transport import Held, RedisBroker
from skqueue.worker.settle import RETRYABLE

if TYPE_CHECKING:
    from skqueue.worker.worker import Worker

log = logging.getLogger("skqueue.worker")


async def shutdown(worker: Worker) -> None:
    for delivery in worker.scheduled.values():
        if delivery.timer is not None:
            delivery.timer.cancel()
    worker.ready.clear()
    worker.scheduled.clear()
    await wait_running(worker)
    if worker.background_tasks:
        await asyncio.wait(worker.background_tasks, timeout=5.0)
    try:
        # Bounded: with Redis gone the flush retries forever; what is not acked stays in Redis and comes
        # back through a reaper or the visibility timeout, so stopping loses nothing.
        timeout = 0.5 if worker.cold else worker.options.shutdown_timeout
        await asyncio.wait_for(worker.settler.drain(), timeout=timeout)
    except TimeoutError:
        log.error("Results and acks could not be written before shutdown (is Redis reachable?); the "
                  "unacknowledged messages will be redelivered")
        return
    if worker.holding:
        moved = await requeue_safely(worker.broker, [d.held() for d in worker.holding.values()])
        log.warning("Restoring %d unacknowledged message(s)", moved)
    worker.holding.clear()
    await requeue_strays(worker)


async def requeue_strays(worker: Worker) -> None:
    """Requeue deliveries Redis says this process holds that it does not know about: a reservation whose
    reply was lost (a connection drop, or a cancel landing mid-call) must not wait for the visibility
    timeout."""
    with contextlib.suppress(*RETRYABLE):
        strays = await worker.broker.load_held(await worker.broker.owned_tags())
        if strays:
            moved = await requeue_safely(worker.broker, strays)
            log.warning("Restoring %d unacknowledged message(s) whose reservation reply was lost", moved)


async def wait_running(worker: Worker) -> None:
    """Warm: give running tasks the grace period. Cold (or past it): cancel them; they are requeued."""
    runners = [d.runner for d in worker.running.values() if d.runner is not None]
    if not runners:
        return
    grace = 0.0 if worker.cold else worker.options.shutdown_timeout
    _, pending = await asyncio.wait(runners, timeout=grace) if grace else (set(), set(runners))
    for runner in pending:
        runner.cancel()
    if pending:
        log.warning("%d task(s) still running after the grace period: requeueing them", len(pending))
        await asyncio.wait(pending, timeout=2.0)


async def requeue_safely(broker: RedisBroker, held: list[Held]) -> int:
    """Requeue to the head, retrying a lost connection for a while before giving up (the messages then
    come back after the visibility timeout)."""
    delay = 0.1
    for _ in range(20):
        try:
            return await broker.requeue(held, head=True)
        except RETRYABLE as exc:
            log.warning("Redis unavailable while requeueing (%s); retrying", exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
    log.error("Could not requeue %d message(s); they return after the visibility timeout", len(held))
    return 0

"""Periodic care of what a worker holds: lease refresh, restoring dead workers' deliveries, revokes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

from skqueue.broker.pubsub import raise_if_cancelled
from skqueue.worker.settle import REDIS_ERRORS

if TYPE_CHECKING:
    from skqueue.worker.worker import Worker

log = logging.getLogger("skqueue.worker")


async def maintain(worker: Worker) -> None:
    """Refresh the leases of everything held (well within the visibility timeout, so no restore takes
    them), restore deliveries whose lease expired (their worker is gone), and pick up revokes recorded
    while this worker was not listening."""
    vt = worker.settings.broker_transport_options.visibility_timeout
    refresh_every = max(min(vt / 4, 60.0), 0.05)
    restore_every = max(min(vt / 2, 100.0), 0.1)
    last_restore = time.monotonic()
    while True:
        await asyncio.sleep(refresh_every)
        try:
            await worker.broker.refresh_leases(list(worker.holding))
            if time.monotonic() - last_restore >= restore_every:
                last_restore = time.monotonic()
                await restore_visible(worker)
                await load_revoked(worker)
        except REDIS_ERRORS as exc:
            log.warning("Lease refresh failed: %s", exc)
        raise_if_cancelled()


async def restore_visible(worker: Worker) -> None:
    vt = worker.settings.broker_transport_options.visibility_timeout
    with contextlib.suppress(*REDIS_ERRORS):
        await worker.broker.restore_visible(vt)


async def load_revoked(worker: Worker) -> None:
    with contextlib.suppress(*REDIS_ERRORS):
        worker.revoked |= await worker.revoked_store.load()

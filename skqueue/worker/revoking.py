"""Revoking deliveries a worker holds, and storing REVOKED for tasks that have not run anywhere yet."""

from __future__ import annotations

from typing import TYPE_CHECKING

from skqueue.protocol import states

if TYPE_CHECKING:
    from skqueue.worker.state import Delivery
    from skqueue.worker.worker import Worker

# Celery >= 5.6 stores REVOKED at revoke time for tasks in these states.
REVOCABLE_STATES = (states.PENDING, states.RECEIVED, states.RETRY, states.REJECTED)


def revoke_held(worker: Worker, ids: set[str], terminate: bool) -> list[Delivery]:
    """Settle held deliveries of ``ids`` that have not started as REVOKED; with ``terminate`` stop the
    running ones too. Returns the deliveries acted on."""
    acted = []
    for delivery in list(worker.holding.values()):
        if delivery.message.id not in ids:
            continue
        if delivery.tag in worker.scheduled:
            worker.scheduled.pop(delivery.tag)
            if delivery.timer is not None:
                delivery.timer.cancel()
            worker.refuse(delivery)
            acted.append(delivery)
        elif delivery in worker.ready:
            worker.ready.remove(delivery)
            worker.inflight -= 1
            worker.refuse(delivery)
            acted.append(delivery)
        elif terminate and delivery.tag in worker.running and delivery.running is not None:
            delivery.running.terminate()
            acted.append(delivery)
    return acted


async def store_revoked_pending(worker: Worker, ids: list[str]) -> None:
    if worker.results is None or not ids:
        return
    writes = [worker.metas.revoked_id(task_id, "revoked") for task_id in ids]
    await worker.results.store_if_pending(writes, REVOCABLE_STATES)

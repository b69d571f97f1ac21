"""The demo's tasks, as a SenangKira-style app would define them for skqueue."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from skqueue import App, TaskContext

app = App(
    "demo",
    task_default_queue="default",
    task_acks_late=True,
    task_routes={
        "demo.invoice_total": {"queue": "high_priority"},
        "demo.monthly_report": {"queue": "analytics"},
    },
)

SST_RATE = Decimal("0.08")
CENT = Decimal("0.01")


@app.task(name="demo.add")
def add(x: int, y: int) -> int:
    """A plain function: runs in a worker thread, off the event loop."""
    return x + y


@app.task(name="demo.invoice_total")
async def invoice_total(lines: list[dict[str, Any]]) -> dict[str, Any]:
    """An ``async def`` task: runs on the event loop. Decimal in, Decimal out (kombu's tagged JSON)."""
    await asyncio.sleep(0)
    subtotal = sum((Decimal(str(line["qty"])) * Decimal(str(line["unit_price"])) for line in lines), Decimal(0))
    tax = (subtotal * SST_RATE).quantize(CENT, rounding=ROUND_HALF_UP)
    return {"subtotal": subtotal.quantize(CENT), "sst": tax, "total": (subtotal + tax).quantize(CENT)}


@app.task(name="demo.monthly_report", bind=True)
async def monthly_report(self: TaskContext, month: str) -> dict[str, Any]:
    """A bound task: it sees its own request (id, eta, delivery info)."""
    await asyncio.sleep(0.2)
    return {
        "month": month,
        "task_id": self.request.id,
        "eta": self.eta.isoformat() if self.eta else None,
        "ran_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "queue": self.delivery_info["routing_key"],
    }


@app.task(name="demo.fail")
def fail(reason: str) -> None:
    raise ValueError(reason)

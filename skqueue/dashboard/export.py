"""Export a user's dashboard as JSON, CSV or a PDF report, into ``export_dir``.

The export covers ``date_range`` (both days included) or, without one, the current month. It holds the
dashboard figures of that range and every invoice issued and expense dated in it; the CSV is that ledger
(one row per invoice or expense). Files land in ``<export_dir>/<user id>/`` and are recorded in
``dashboard_export`` so :mod:`skqueue.dashboard.cleanup` can remove them later.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
import os
import re
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import select

from skqueue.config import Settings
from skqueue.dashboard.periods import Period, parse_date_range, period_of
from skqueue.dashboard.refresh import cached, compute, today_in
from skqueue.dashboard.runtime import Runtime
from skqueue.dashboard.store import Store, User, UserId
from skqueue.errors import InvalidArguments

FORMATS = ("json", "csv", "pdf")
COLUMNS = ("type", "date", "reference", "party", "category", "status", "subtotal", "tax", "total", "due_date",
           "paid_at")


def check_format(value: Any) -> str:
    fmt = value.strip().lower() if isinstance(value, str) else value
    if fmt not in FORMATS:
        raise InvalidArguments(f"unknown export format {value!r}: use json, csv or pdf")
    return str(fmt)


def export_dir(settings: Settings) -> Path:
    return Path(settings.export_dir or Path(settings.skqueue_home) / "exports").resolve()


def _amount(value: Any) -> str:
    return str(Decimal(value).quantize(Decimal("0.01")))


async def transactions(store: Store, owner: UserId, period: Period) -> list[dict[str, Any]]:
    """Invoices issued and expenses dated in ``period``, by date, as ledger rows."""
    inv, cl, e = store.tables.invoices, store.tables.clients, store.tables.expenses
    invoices = (select(inv.c.issue_date, inv.c.invoice_number, cl.c.name, inv.c.status, inv.c.subtotal,
                       inv.c.tax_amount, inv.c.total_amount, inv.c.due_date, inv.c.paid_at)
                .select_from(inv.join(cl, inv.c.client_id == cl.c.id))
                .where(inv.c.owner_id == owner, inv.c.issue_date.between(period.start, period.end)))
    expenses = (select(e.c.date, e.c.description, e.c.category, e.c.amount, e.c.is_reimbursable)
                .where(e.c.owner_id == owner, e.c.date.between(period.start, period.end)))
    async with store.connect() as conn:
        rows = [_invoice_row(row) for row in await conn.execute(invoices)]
        rows += [_expense_row(row) for row in await conn.execute(expenses)]
    return sorted(rows, key=lambda row: (row["date"], row["type"], row["reference"]))


def _invoice_row(row: Any) -> dict[str, Any]:
    paid = row.paid_at.replace(tzinfo=row.paid_at.tzinfo or UTC).isoformat(timespec="seconds") if row.paid_at else ""
    return {"type": "invoice", "date": row.issue_date.isoformat(), "reference": row.invoice_number, "party": row.name,
            "category": "", "status": row.status, "subtotal": _amount(row.subtotal), "tax": _amount(row.tax_amount),
            "total": _amount(row.total_amount), "due_date": row.due_date.isoformat(), "paid_at": paid}


def _expense_row(row: Any) -> dict[str, Any]:
    return {"type": "expense", "date": row.date.isoformat(), "reference": row.description, "party": "",
            "category": row.category, "status": "reimbursable" if row.is_reimbursable else "",
            "subtotal": _amount(row.amount), "tax": "0.00", "total": _amount(row.amount), "due_date": "",
            "paid_at": ""}


def render(fmt: str, user: User, period: Period, summary: dict[str, Any], rows: list[dict[str, Any]]) -> bytes:
    """The file's bytes (CPU-bound for PDF: call it in a thread)."""
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return buffer.getvalue().encode()
    if fmt == "pdf":
        from skqueue.dashboard.pdf import report

        return report(user, period, summary, rows)
    document = {"user": {"id": str(user.id), "email": user.email, "company_name": user.company_name},
                "period": period.as_dict(), "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "summary": summary, "transactions": rows}
    return json.dumps(document, indent=2).encode()


def _write(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(content)
    os.replace(partial, path)


async def export(rt: Runtime, user_id: Any, export_format: Any, date_range: Any, task_id: str) -> dict[str, Any]:
    """Write the export and return where it is and what it holds."""
    fmt = check_format(export_format)
    chosen = parse_date_range(date_range)
    store = await rt.store()
    user = await store.user(user_id)
    today = today_in(rt)
    period = chosen or period_of("monthly", today)
    if chosen is not None:
        summary = await compute(rt, store, user.id, period, today)
    else:
        summary, _ = await cached(rt, store, user.id, period, today)
    rows = await transactions(store, user.id, period)
    content = await asyncio.to_thread(render, fmt, user, period, summary, rows)
    stamp = datetime.now(UTC)
    name = f"dashboard_{period.start:%Y%m%d}-{period.end:%Y%m%d}_{stamp:%Y%m%dT%H%M%S}_{_file_safe(task_id)[:8]}.{fmt}"
    path = export_dir(rt.settings) / str(user.id) / name
    await asyncio.to_thread(_write, path, content)
    digest = hashlib.sha256(content).hexdigest()
    await store.insert("exports", {"id": uuid.uuid4(), "owner_id": user.id, "export_format": fmt, "path": str(path),
                                   "size_bytes": len(content), "row_count": len(rows), "sha256": digest,
                                   "period_start": period.start, "period_end": period.end, "created_at": stamp})
    return {"user_id": str(user.id), "format": fmt, "path": str(path), "size": len(content), "rows": len(rows),
            "sha256": digest, "period": period.as_dict(), "exported_at": stamp.isoformat(timespec="seconds")}


def _file_safe(text: str) -> str:
    """Only letters, digits and dashes from a task id (it comes from the message, so it must not be able
    to add a path component to the export file name)."""
    return re.sub(r"[^A-Za-z0-9-]", "", text) or "task"

"""Helpers for the dashboard tests: seeded databases, and an independent computation of every dashboard
figure in plain Python over the raw rows (the oracle the SQL is checked against)."""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from skqueue.dashboard.periods import Period, months_ending
from skqueue.dashboard.schema import Schema
from skqueue.dashboard.seed import seed
from skqueue.dashboard.store import create_engine, init_schema

CENT = Decimal("0.01")
TABLES = ("users", "clients", "quotes", "invoices", "expenses")


def sqlite_url(path: Any) -> str:
    return f"sqlite+aiosqlite:///{path}"


async def seeded(url: str, users: int, today: date, *, seed_value: int = 7, id_kind: str = "uuid"
                 ) -> tuple[AsyncEngine, Schema]:
    engine = create_engine(make_url(url))
    tables = await init_schema(engine, id_kind)
    await seed(engine, tables, users, seed=seed_value, today=today)
    return engine, tables


async def load(engine: AsyncEngine, tables: Schema) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    async with engine.connect() as conn:
        for name in TABLES:
            found[name] = [dict(row) for row in (await conn.execute(select(getattr(tables, name)))).mappings()]
    return found


def seed_sync(url: str, users: int, today: date, **kwargs: Any) -> None:
    async def run() -> None:
        engine, _ = await seeded(url, users, today, **kwargs)
        await engine.dispose()

    asyncio.run(run())


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _pct(part: Decimal, whole: Decimal) -> Decimal | None:
    return (part * 100 / whole).quantize(CENT) if whole else None


@dataclass
class Oracle:
    """Every figure of one user, period and day, computed row by row."""

    rows: dict[str, list[dict[str, Any]]]
    owner: Any
    tz: tzinfo
    today: date

    def mine(self, table: str) -> list[dict[str, Any]]:
        return [r for r in self.rows[table] if r["owner_id"] == self.owner]

    def local(self, value: datetime) -> date:
        return _aware(value).astimezone(self.tz).date()

    def revenue(self, p: Period) -> Decimal:
        return sum((r["total_amount"] for r in self.mine("invoices") if r["status"] == "paid" and r["paid_at"]
                    and p.start <= self.local(r["paid_at"]) <= p.end), Decimal(0))

    def expenses(self, p: Period) -> list[dict[str, Any]]:
        return [r for r in self.mine("expenses") if p.start <= r["date"] <= p.end]

    def outstanding(self) -> list[dict[str, Any]]:
        return [r for r in self.mine("invoices") if r["status"] in ("sent", "viewed", "overdue")]

    def overdue(self) -> list[dict[str, Any]]:
        return [r for r in self.outstanding() if r["status"] == "overdue" or r["due_date"] < self.today]

    def issued(self, table: str, p: Period) -> list[dict[str, Any]]:
        return [r for r in self.mine(table) if p.start <= r["issue_date"] <= p.end]

    def new_clients(self, p: Period) -> int:
        return sum(1 for r in self.mine("clients") if p.start <= self.local(r["created_at"]) <= p.end)

    def categories(self, p: Period) -> list[tuple[str, Decimal, int]]:
        amounts: defaultdict[str, Decimal] = defaultdict(Decimal)
        counts: Counter[str] = Counter()
        for r in self.expenses(p):
            amounts[r["category"]] += r["amount"]
            counts[r["category"]] += 1
        return sorted(((c, amounts[c], counts[c]) for c in amounts), key=lambda item: (-item[1], item[0]))

    def top_clients(self, p: Period) -> list[tuple[str, Decimal]]:
        names = {c["id"]: c["name"] for c in self.mine("clients")}
        revenue: defaultdict[Any, Decimal] = defaultdict(Decimal)
        for r in self.mine("invoices"):
            if r["status"] == "paid" and r["paid_at"] and p.start <= self.local(r["paid_at"]) <= p.end:
                revenue[r["client_id"]] += r["total_amount"]
        ranked = sorted(revenue.items(), key=lambda item: (-item[1], names[item[0]]))
        return [(names[cid], amount) for cid, amount in ranked if amount > 0][:5]

    def figures(self, p: Period) -> dict[str, Any]:
        prev = p.previous()
        revenue, spent = self.revenue(p), sum((r["amount"] for r in self.expenses(p)), Decimal(0))
        quotes = self.issued("quotes", p)
        approved = sum(1 for q in quotes if q["status"] == "approved")
        issued = self.issued("invoices", p)
        months = months_ending(min(p.end, self.today))
        return {
            "revenue": revenue, "expenses": spent, "expense_count": len(self.expenses(p)),
            "reimbursable": sum((r["amount"] for r in self.expenses(p) if r["is_reimbursable"]), Decimal(0)),
            "outstanding": (sum((r["total_amount"] for r in self.outstanding()), Decimal(0)), len(self.outstanding())),
            "overdue": (sum((r["total_amount"] for r in self.overdue()), Decimal(0)), len(self.overdue())),
            "net": revenue - spent, "margin": _pct(revenue - spent, revenue),
            "issued": len(issued), "issued_value": sum((r["total_amount"] for r in issued), Decimal(0)),
            "quotes": (len(quotes), approved, _pct(Decimal(approved), Decimal(len(quotes)))),
            "active_clients": sum(1 for c in self.mine("clients") if c["is_active"]),
            "new_clients": self.new_clients(p), "new_clients_prev": self.new_clients(prev),
            "categories": self.categories(p), "top": self.top_clients(p),
            "monthly": [(m.start.strftime("%Y-%m"), self.revenue(m),
                         sum((r["amount"] for r in self.expenses(m)), Decimal(0))) for m in months],
            "revenue_prev": self.revenue(prev),
            "expenses_prev": sum((r["amount"] for r in self.expenses(prev)), Decimal(0)),
            "issued_prev": len(self.issued("invoices", prev)),
        }


def assert_matches(result: dict[str, Any], want: dict[str, Any]) -> None:
    """Every figure of a computed dashboard against the oracle's."""
    d = Decimal
    assert d(result["revenue"]) == want["revenue"]
    assert d(result["expenses"]["total"]) == want["expenses"]
    assert result["expenses"]["count"] == want["expense_count"]
    assert d(result["expenses"]["reimbursable"]) == want["reimbursable"]
    assert (d(result["outstanding"]["amount"]), result["outstanding"]["count"]) == want["outstanding"]
    assert (d(result["overdue"]["amount"]), result["overdue"]["count"]) == want["overdue"]
    assert d(result["net_profit"]) == want["net"]
    assert (d(result["profit_margin"]) if result["profit_margin"] else None) == want["margin"]
    assert result["invoices"]["issued"] == want["issued"]
    assert d(result["invoices"]["issued_value"]) == want["issued_value"]
    issued, approved, rate = want["quotes"]
    assert (result["quotes"]["issued"], result["quotes"]["approved"]) == (issued, approved)
    assert (d(result["quotes"]["conversion_rate"]) if result["quotes"]["conversion_rate"] else None) == rate
    assert result["clients"] == {"active": want["active_clients"], "new": want["new_clients"]}
    assert [(c["category"], d(c["amount"]), c["count"]) for c in result["expenses"]["by_category"]] == \
        want["categories"]
    assert [(c["name"], d(c["revenue"])) for c in result["top_clients"]] == want["top"]
    assert [(m["month"], d(m["income"]), d(m["expenses"])) for m in result["monthly"]] == want["monthly"]
    kpis = result["kpis"]
    assert d(kpis["revenue"]["previous"]) == want["revenue_prev"]
    assert d(kpis["expenses"]["previous"]) == want["expenses_prev"]
    assert d(kpis["invoices_issued"]["previous"]) == want["issued_prev"]
    assert d(kpis["new_clients"]["previous"]) == want["new_clients_prev"]

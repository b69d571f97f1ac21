"""The dashboard figures of one user and period, computed in SQL.

Six aggregate queries per user and period, each one pass over one table (invoices, expenses, expense
categories, clients, quotes, top clients); nothing is fetched row by row. Money is summed as integer
cents, so SQLite (which stores decimals as floating point) gives exact totals too.

Definitions (the original's bugs fixed, see the spec's section 9):

* revenue: ``paid`` invoices whose ``paid_at`` falls in the period (in the app's timezone);
* outstanding: invoices ``sent``, ``viewed`` or ``overdue``, whenever issued;
* overdue: outstanding invoices marked ``overdue`` or past their ``due_date``;
* expenses: by ``date`` in the period; net profit = revenue - expenses; margin = net / revenue;
* invoices and quotes "issued" by ``issue_date``; quote conversion = ``approved`` / issued;
* clients: active (all time) and new (``created_at`` in the period);
* monthly: income (paid) and expenses of the six calendar months up to the period's end (or today);
* KPIs: each headline figure against the previous period of the same type.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, and_, case, cast, desc, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from skqueue.dashboard.periods import Period, months_ending, utc_bounds
from skqueue.dashboard.schema import Schema
from skqueue.dashboard.store import UserId

CENT = Decimal("0.01")
OUTSTANDING = ("sent", "viewed", "overdue")
TOP_CLIENTS = 5


@dataclass(frozen=True)
class Window:
    """What one computation covers: the period, the one before it, the month series and "today"."""

    period: Period
    today: date
    tz: tzinfo

    @property
    def previous(self) -> Period:
        return self.period.previous()

    @property
    def months(self) -> list[Period]:
        return months_ending(min(self.period.end, self.today))


def money(cents: Any) -> Decimal:
    return (Decimal(int(cents or 0)) / 100).quantize(CENT)


def text(value: Decimal | None) -> str | None:
    return None if value is None else str(value.quantize(CENT))


def percentage(part: Decimal, whole: Decimal) -> Decimal | None:
    return None if not whole else (part * 100 / whole).quantize(CENT)


def _cents(column: Any) -> ColumnElement[Any]:
    return cast(func.round(column * 100), BigInteger)


def _sum_if(condition: ColumnElement[bool], column: Any) -> ColumnElement[Any]:
    return func.coalesce(func.sum(case((condition, _cents(column)), else_=0)), 0)


def _count_if(condition: ColumnElement[bool]) -> ColumnElement[Any]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


class Figures:
    """Runs the queries for one user and window; :meth:`compute` assembles the result."""

    def __init__(self, conn: AsyncConnection, tables: Schema, owner: UserId, window: Window) -> None:
        self.conn = conn
        self.t = tables
        self.owner = owner
        self.w = window

    def _paid_in(self, period: Period) -> ColumnElement[bool]:
        inv = self.t.invoices
        low, high = utc_bounds(period.start, period.end, self.w.tz)
        return and_(inv.c.status == "paid", inv.c.paid_at >= low, inv.c.paid_at < high)

    def _outstanding(self) -> ColumnElement[bool]:
        return self.t.invoices.c.status.in_(OUTSTANDING)

    def _overdue(self) -> ColumnElement[bool]:
        inv = self.t.invoices
        return and_(self._outstanding(), or_(inv.c.status == "overdue", inv.c.due_date < self.w.today))

    async def invoices(self) -> Any:
        inv, cur, prev = self.t.invoices, self.w.period, self.w.previous
        total = inv.c.total_amount
        issued = inv.c.issue_date.between(cur.start, cur.end)
        columns = [
            _sum_if(self._paid_in(cur), total).label("revenue"), _count_if(self._paid_in(cur)).label("paid"),
            _sum_if(self._paid_in(prev), total).label("revenue_prev"),
            _sum_if(self._outstanding(), total).label("outstanding"), _count_if(self._outstanding()).label("n_out"),
            _sum_if(self._overdue(), total).label("overdue"), _count_if(self._overdue()).label("n_overdue"),
            _count_if(issued).label("issued"), _sum_if(issued, total).label("issued_value"),
            _count_if(inv.c.issue_date.between(prev.start, prev.end)).label("issued_prev"),
            *[_sum_if(self._paid_in(month), total).label(f"m{i}") for i, month in enumerate(self.w.months)],
        ]
        return (await self.conn.execute(select(*columns).where(inv.c.owner_id == self.owner))).one()

    async def expenses(self) -> Any:
        e, cur, prev = self.t.expenses, self.w.period, self.w.previous
        within = e.c.date.between(cur.start, cur.end)
        columns = [
            _sum_if(within, e.c.amount).label("total"), _count_if(within).label("count"),
            _sum_if(and_(within, e.c.is_reimbursable.is_(True)), e.c.amount).label("reimbursable"),
            _sum_if(e.c.date.between(prev.start, prev.end), e.c.amount).label("total_prev"),
            *[_sum_if(e.c.date.between(m.start, m.end), e.c.amount).label(f"m{i}")
              for i, m in enumerate(self.w.months)],
        ]
        return (await self.conn.execute(select(*columns).where(e.c.owner_id == self.owner))).one()

    async def categories(self) -> list[Any]:
        e, cur = self.t.expenses, self.w.period
        amount = func.sum(_cents(e.c.amount))
        query = (select(e.c.category, amount.label("cents"), func.count().label("count"))
                 .where(e.c.owner_id == self.owner, e.c.date.between(cur.start, cur.end))
                 .group_by(e.c.category).order_by(desc(amount), e.c.category))
        return list(await self.conn.execute(query))

    async def clients(self) -> Any:
        c = self.t.clients
        low, high = utc_bounds(self.w.period.start, self.w.period.end, self.w.tz)
        plow, phigh = utc_bounds(self.w.previous.start, self.w.previous.end, self.w.tz)
        columns = [_count_if(c.c.is_active.is_(True)).label("active"),
                   _count_if(and_(c.c.created_at >= low, c.c.created_at < high)).label("new"),
                   _count_if(and_(c.c.created_at >= plow, c.c.created_at < phigh)).label("new_prev")]
        return (await self.conn.execute(select(*columns).where(c.c.owner_id == self.owner))).one()

    async def quotes(self) -> Any:
        q, cur, prev = self.t.quotes, self.w.period, self.w.previous
        now, before = q.c.issue_date.between(cur.start, cur.end), q.c.issue_date.between(prev.start, prev.end)
        approved = q.c.status == "approved"
        columns = [_count_if(now).label("issued"), _count_if(and_(now, approved)).label("approved"),
                   _count_if(before).label("issued_prev"), _count_if(and_(before, approved)).label("approved_prev")]
        return (await self.conn.execute(select(*columns).where(q.c.owner_id == self.owner))).one()

    async def top_clients(self) -> list[Any]:
        inv, c = self.t.invoices, self.t.clients
        revenue = _sum_if(self._paid_in(self.w.period), inv.c.total_amount)
        query = (select(c.c.id, c.c.name, revenue.label("revenue"),
                        _count_if(self._paid_in(self.w.period)).label("paid"),
                        _sum_if(self._outstanding(), inv.c.total_amount).label("outstanding"))
                 .select_from(inv.join(c, inv.c.client_id == c.c.id))
                 .where(inv.c.owner_id == self.owner).group_by(c.c.id, c.c.name)
                 .having(revenue > 0).order_by(desc(revenue), c.c.name).limit(TOP_CLIENTS))
        return list(await self.conn.execute(query))

    async def compute(self) -> dict[str, Any]:
        rows = Rows(await self.invoices(), await self.expenses(), await self.categories(), await self.clients(),
                    await self.quotes(), await self.top_clients())
        return assemble(self.owner, self.w, rows)


async def compute(conn: AsyncConnection, tables: Schema, owner: UserId, period: Period, *, today: date,
                  tz: tzinfo) -> dict[str, Any]:
    """The dashboard of ``owner`` for ``period`` as a JSON-ready dict (money as "1234.50" strings)."""
    return await Figures(conn, tables, owner, Window(period, today, tz)).compute()


@dataclass(frozen=True)
class Rows:
    """What the queries returned."""

    invoices: Any
    expenses: Any
    categories: list[Any]
    clients: Any
    quotes: Any
    top_clients: list[Any]


def assemble(owner: UserId, w: Window, rows: Rows) -> dict[str, Any]:
    inv, exp, clients, quotes = rows.invoices, rows.expenses, rows.clients, rows.quotes
    revenue, expenses = money(inv.revenue), money(exp.total)
    net = revenue - expenses
    conversion = percentage(Decimal(quotes.approved), Decimal(quotes.issued))
    return {
        "user_id": str(owner), "period": w.period.as_dict(), "previous_period": w.previous.as_dict(),
        "as_of": w.today.isoformat(), "computed_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "revenue": text(revenue), "paid_invoices": int(inv.paid),
        "outstanding": {"amount": text(money(inv.outstanding)), "count": int(inv.n_out)},
        "overdue": {"amount": text(money(inv.overdue)), "count": int(inv.n_overdue)},
        "expenses": {"total": text(expenses), "count": int(exp.count), "reimbursable": text(money(exp.reimbursable)),
                     "by_category": _categories(rows.categories, expenses)},
        "net_profit": text(net), "profit_margin": text(percentage(net, revenue)),
        "invoices": {"issued": int(inv.issued), "issued_value": text(money(inv.issued_value)),
                     "average_value": text(money(inv.issued_value) / int(inv.issued)) if inv.issued else None},
        "quotes": {"issued": int(quotes.issued), "approved": int(quotes.approved), "conversion_rate": text(conversion)},
        "clients": {"active": int(clients.active), "new": int(clients.new)},
        "top_clients": [{"client_id": str(row.id), "name": row.name, "revenue": text(money(row.revenue)),
                         "paid_invoices": int(row.paid), "outstanding": text(money(row.outstanding))}
                        for row in rows.top_clients],
        "monthly": _monthly(w, inv, exp),
        "kpis": _kpis(rows, revenue, expenses),
    }


def _categories(rows: list[Any], total: Decimal) -> list[dict[str, Any]]:
    return [{"category": row.category, "display": str(row.category).replace("_", " ").title(),
             "amount": text(money(row.cents)), "count": int(row.count),
             "percentage": text(percentage(money(row.cents), total))} for row in rows]


def _monthly(w: Window, inv: Any, exp: Any) -> list[dict[str, Any]]:
    series = []
    for i, month in enumerate(w.months):
        income, spent = money(getattr(inv, f"m{i}")), money(getattr(exp, f"m{i}"))
        series.append({"month": month.start.strftime("%Y-%m"), "income": text(income), "expenses": text(spent),
                       "net": text(income - spent)})
    return series


def _kpi(current: Decimal | None, previous: Decimal | None) -> dict[str, Any]:
    change = None
    if current is not None and previous:
        change = ((current - previous) * 100 / abs(previous)).quantize(CENT)
    trend = "flat"
    if current is not None and previous is not None and current != previous:
        trend = "up" if current > previous else "down"
    return {"current": text(current), "previous": text(previous), "change_percentage": text(change), "trend": trend}


def _kpis(rows: Rows, revenue: Decimal, expenses: Decimal) -> dict[str, Any]:
    inv, exp, clients, quotes = rows.invoices, rows.expenses, rows.clients, rows.quotes
    revenue_prev, expenses_prev = money(inv.revenue_prev), money(exp.total_prev)
    return {
        "revenue": _kpi(revenue, revenue_prev),
        "expenses": _kpi(expenses, expenses_prev),
        "net_profit": _kpi(revenue - expenses, revenue_prev - expenses_prev),
        "profit_margin": _kpi(percentage(revenue - expenses, revenue),
                              percentage(revenue_prev - expenses_prev, revenue_prev)),
        "invoices_issued": _kpi(Decimal(inv.issued), Decimal(inv.issued_prev)),
        "new_clients": _kpi(Decimal(clients.new), Decimal(clients.new_prev)),
        "quote_conversion_rate": _kpi(percentage(Decimal(quotes.approved), Decimal(quotes.issued)),
                                      percentage(Decimal(quotes.approved_prev), Decimal(quotes.issued_prev))),
    }


def snapshot_row(data: dict[str, Any]) -> dict[str, Any]:
    """The ``dashboard_dashboardsnapshot`` columns for a computed dashboard."""
    now = datetime.now(UTC)
    return {
        "period_type": data["period"]["type"], "total_revenue": Decimal(data["revenue"]),
        "total_expenses": Decimal(data["expenses"]["total"]), "net_profit": Decimal(data["net_profit"]),
        "outstanding_amount": Decimal(data["outstanding"]["amount"]), "total_clients": data["clients"]["active"],
        "new_clients": data["clients"]["new"], "total_invoices": data["invoices"]["issued"],
        "total_quotes": data["quotes"]["issued"],
        "quote_conversion_rate": Decimal(data["quotes"]["conversion_rate"] or 0),
        "average_invoice_value": Decimal(data["invoices"]["average_value"] or 0),
        "total_expense_count": data["expenses"]["count"],
        "reimbursable_expenses": Decimal(data["expenses"]["reimbursable"]), "created_at": now, "updated_at": now,
    }

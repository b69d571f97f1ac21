"""The PDF dashboard report (reportlab, pure Python): headline figures, the six-month income vs expenses
chart, expenses by category, top clients and the ledger of the period."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from reportlab.graphics.charts.barcharts import VerticalBarChart
from reportlab.graphics.charts.legends import Legend
from reportlab.graphics.shapes import Drawing, String
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Flowable, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from skqueue.dashboard.periods import Period
from skqueue.dashboard.store import User

INCOME = colors.HexColor("#2e7d32")
EXPENSE = colors.HexColor("#c62828")
HEADER = colors.HexColor("#263238")
WIDTH = A4[0] - 30 * mm


def rm(value: str | None) -> str:
    """Ringgit, with thousands separators: ``RM 12,345.60`` (``-`` when there is no value)."""
    if value is None:
        return "-"
    amount = Decimal(value)
    return f"{'-' if amount < 0 else ''}RM {abs(amount):,.2f}"


def _pct(value: str | None) -> str:
    return "-" if value is None else f"{value} %"


def _table(rows: list[list[str]], widths: list[float], *, numeric_from: int = 1) -> Table:
    table = Table(rows, colWidths=widths, repeatRows=1)
    table.setStyle(TableStyle([
        ("BACKGROUND", (0, 0), (-1, 0), HEADER), ("TEXTCOLOR", (0, 0), (-1, 0), colors.white),
        ("FONTNAME", (0, 0), (-1, 0), "Helvetica-Bold"), ("FONTSIZE", (0, 0), (-1, -1), 8.5),
        ("ALIGN", (numeric_from, 1), (-1, -1), "RIGHT"),
        ("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, colors.HexColor("#f2f4f5")]),
        ("GRID", (0, 0), (-1, -1), 0.25, colors.HexColor("#b0bec5")),
    ]))
    return table


def chart(monthly: list[dict[str, Any]]) -> Drawing:
    """Grouped bars: income (paid invoices) and expenses per month."""
    drawing = Drawing(WIDTH, 190)
    bars = VerticalBarChart()
    bars.x, bars.y, bars.width, bars.height = 45, 35, int(WIDTH - 60), 130
    bars.data = [[float(m["income"]) for m in monthly], [float(m["expenses"]) for m in monthly]]
    bars.categoryAxis.categoryNames = [m["month"] for m in monthly]
    bars.valueAxis.valueMin = 0
    bars.valueAxis.labelTextFormat = lambda v: f"{v / 1000:,.0f}k"
    bars.bars[0].fillColor, bars.bars[1].fillColor = INCOME, EXPENSE
    bars.groupSpacing = 8
    legend = Legend()
    legend.x, legend.y, legend.alignment = 50, 182, "right"
    legend.columnMaximum, legend.fontSize = 1, 8
    legend.colorNamePairs = [(INCOME, "Income (paid invoices)"), (EXPENSE, "Expenses")]
    drawing.add(bars)
    drawing.add(legend)
    drawing.add(String(5, 10, "RM", fontSize=7))
    return drawing


def _summary(summary: dict[str, Any]) -> Table:
    kpis = summary["kpis"]

    def change(name: str) -> str:
        value = kpis[name]["change_percentage"]
        return "-" if value is None else f"{'+' if not value.startswith('-') else ''}{value} %"

    rows = [["Figure", "This period", "Previous period", "Change"],
            ["Revenue (paid invoices)", rm(summary["revenue"]), rm(kpis["revenue"]["previous"]), change("revenue")],
            ["Expenses", rm(summary["expenses"]["total"]), rm(kpis["expenses"]["previous"]), change("expenses")],
            ["Net profit", rm(summary["net_profit"]), rm(kpis["net_profit"]["previous"]), change("net_profit")],
            ["Profit margin", _pct(summary["profit_margin"]), _pct(kpis["profit_margin"]["previous"]),
             change("profit_margin")],
            ["Outstanding (sent, viewed, overdue)",
             f"{rm(summary['outstanding']['amount'])} ({summary['outstanding']['count']})", "", ""],
            ["Overdue", f"{rm(summary['overdue']['amount'])} ({summary['overdue']['count']})", "", ""],
            ["Quote conversion (approved)", _pct(summary["quotes"]["conversion_rate"]),
             _pct(kpis["quote_conversion_rate"]["previous"]), change("quote_conversion_rate")]]
    return _table(rows, [WIDTH * 0.4, WIDTH * 0.22, WIDTH * 0.22, WIDTH * 0.16])


def _sections(summary: dict[str, Any], rows: list[dict[str, Any]]) -> list[tuple[str, Flowable]]:
    categories = [["Category", "Amount", "Count", "Share"]] + [
        [c["display"], rm(c["amount"]), str(c["count"]), _pct(c["percentage"])]
        for c in summary["expenses"]["by_category"]]
    clients = [["Client", "Revenue", "Paid invoices", "Outstanding"]] + [
        [c["name"], rm(c["revenue"]), str(c["paid_invoices"]), rm(c["outstanding"])] for c in summary["top_clients"]]
    ledger = [["Date", "Type", "Reference", "Client / category", "Status", "Total"]] + [
        [r["date"], r["type"], r["reference"][:38], (r["party"] or r["category"])[:34], r["status"], rm(r["total"])]
        for r in rows]
    return [
        ("Income vs expenses, last six months", chart(summary["monthly"])),
        ("Expenses by category", _table(categories, [WIDTH * w for w in (0.4, 0.25, 0.15, 0.2)])),
        ("Top clients", _table(clients, [WIDTH * w for w in (0.4, 0.2, 0.15, 0.25)])),
        (f"Ledger ({len(rows)} entries)", _table(ledger, [WIDTH * w for w in (0.12, 0.09, 0.28, 0.25, 0.13, 0.13)],
                                                   numeric_from=5)),
    ]


def report(user: User, period: Period, summary: dict[str, Any], rows: list[dict[str, Any]]) -> bytes:
    """The report as PDF bytes."""
    styles = getSampleStyleSheet()
    buffer = io.BytesIO()
    company = user.company_name or user.email
    doc = SimpleDocTemplate(buffer, pagesize=A4, leftMargin=15 * mm, rightMargin=15 * mm, topMargin=15 * mm,
                            bottomMargin=15 * mm, title=f"{company}: dashboard {period.start} to {period.end}",
                            author="skqueue")
    story: list[Flowable] = [
        Paragraph(company, styles["Title"]),
        Paragraph(f"Dashboard report, {period.start:%d %b %Y} to {period.end:%d %b %Y}", styles["Heading2"]),
        Paragraph(f"Prepared for {user.email} on {datetime.now(UTC):%d %b %Y %H:%M} UTC. Amounts in ringgit.",
                  styles["Normal"]),
        Spacer(1, 6 * mm), _summary(summary),
    ]
    for title, flowable in _sections(summary, rows):
        story += [Spacer(1, 6 * mm), Paragraph(title, styles["Heading3"]), flowable]
    doc.build(story)
    return buffer.getvalue()

"""Dashboard figures computed in SQL, checked against an independent Python computation on seeded data."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, date, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from skqueue.dashboard import stats
from skqueue.dashboard.periods import PERIOD_TYPES, Period, months_ending, parse_date_range, period_of
from skqueue.errors import InvalidArguments
from tests.dashboard_support import Oracle, assert_matches, load, seeded, sqlite_url

TODAY = date(2026, 11, 20)
KL = ZoneInfo("Asia/Kuala_Lumpur")


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    path = tmp_path_factory.mktemp("stats") / "senangkira.db"

    async def prepare() -> dict[str, Any]:
        engine, tables = await seeded(sqlite_url(path), 3, TODAY)
        rows = await load(engine, tables)
        await engine.dispose()
        return {"rows": rows, "tables": tables, "url": sqlite_url(path)}

    yield asyncio.run(prepare())


def _compute(database: dict[str, Any], owner: Any, period: Period, today: date, tz: Any) -> dict[str, Any]:
    from sqlalchemy.engine import make_url

    from skqueue.dashboard.store import create_engine

    async def run() -> dict[str, Any]:
        engine = create_engine(make_url(database["url"]))
        try:
            async with engine.connect() as conn:
                return await stats.compute(conn, database["tables"], owner, period, today=today, tz=tz)
        finally:
            await engine.dispose()

    return asyncio.run(run())


@pytest.mark.parametrize("kind", PERIOD_TYPES)
def test_every_figure_matches_an_independent_computation(database: dict[str, Any], kind: str) -> None:
    for user in database["rows"]["users"]:
        period = period_of(kind, TODAY)
        result = _compute(database, user["id"], period, TODAY, UTC)
        assert_matches(result, Oracle(database["rows"], user["id"], UTC, TODAY).figures(period))
        assert result["user_id"] == str(user["id"]) and result["period"] == period.as_dict()


@pytest.mark.parametrize(("start", "end", "today"), [
    (date(2026, 1, 1), date(2026, 3, 31), TODAY),
    (date(2025, 11, 15), date(2026, 2, 14), date(2026, 2, 14)),
    (date(2026, 6, 1), date(2026, 6, 30), date(2026, 7, 3)),
])
def test_custom_ranges_and_a_malaysian_timezone(database: dict[str, Any], start: date, end: date, today: date) -> None:
    user = database["rows"]["users"][1]
    period = Period("custom", start, end)
    for tz in (UTC, KL):
        result = _compute(database, user["id"], period, today, tz)
        assert_matches(result, Oracle(database["rows"], user["id"], tz, today).figures(period))


def test_seeded_data_exercises_every_rule(database: dict[str, Any]) -> None:
    rows = database["rows"]
    assert {r["status"] for r in rows["invoices"]} == {"draft", "sent", "viewed", "paid", "overdue", "cancelled"}
    assert {r["status"] for r in rows["quotes"]} == {"draft", "sent", "approved", "declined", "expired"}
    assert len({r["category"] for r in rows["expenses"]}) == 12
    # invoices past due that nobody marked overdue: the overdue figure must catch them by due_date
    assert any(r["status"] in ("sent", "viewed") and r["due_date"] < TODAY for r in rows["invoices"])


def test_kpis_compare_with_the_previous_period(database: dict[str, Any]) -> None:
    user = database["rows"]["users"][0]
    result = _compute(database, user["id"], period_of("monthly", TODAY), TODAY, UTC)
    revenue = result["kpis"]["revenue"]
    assert revenue["current"] == result["revenue"]
    current, previous = float(revenue["current"]), float(revenue["previous"])
    assert revenue["trend"] == ("up" if current > previous else "down" if current < previous else "flat")
    assert float(revenue["change_percentage"]) == pytest.approx((current - previous) / abs(previous) * 100, abs=0.01)
    assert [m["month"] for m in result["monthly"]] == ["2026-06", "2026-07", "2026-08", "2026-09", "2026-10",
                                                       "2026-11"]


def test_snapshot_row_carries_the_figures(database: dict[str, Any]) -> None:
    user = database["rows"]["users"][0]
    result = _compute(database, user["id"], period_of("monthly", TODAY), TODAY, UTC)
    row = stats.snapshot_row(result)
    assert row["period_type"] == "monthly"
    assert str(row["total_revenue"]) == result["revenue"] and str(row["net_profit"]) == result["net_profit"]
    assert row["total_invoices"] == result["invoices"]["issued"]


def test_a_user_with_no_data_gets_zeros_not_errors(database: dict[str, Any]) -> None:
    import uuid

    result = _compute(database, uuid.uuid4(), period_of("monthly", TODAY), TODAY, UTC)
    assert result["revenue"] == "0.00" and result["profit_margin"] is None
    assert result["quotes"]["conversion_rate"] is None and result["top_clients"] == []
    assert result["kpis"]["revenue"] == {"current": "0.00", "previous": "0.00", "change_percentage": None,
                                         "trend": "flat"}


@pytest.mark.parametrize(("kind", "start", "end"), [
    ("daily", date(2024, 6, 15), date(2024, 6, 15)),
    ("weekly", date(2024, 6, 10), date(2024, 6, 16)),
    ("monthly", date(2024, 6, 1), date(2024, 6, 30)),
    ("quarterly", date(2024, 4, 1), date(2024, 6, 30)),
    ("yearly", date(2024, 1, 1), date(2024, 12, 31)),
])
def test_period_boundaries(kind: str, start: date, end: date) -> None:
    period = period_of(kind, date(2024, 6, 15))
    assert (period.start, period.end) == (start, end)
    previous = period.previous()
    assert previous.end == start - timedelta(days=1)
    assert previous.kind == kind


def test_months_and_previous_of_custom_periods() -> None:
    assert [m.start for m in months_ending(date(2026, 2, 10), 3)] == [date(2025, 12, 1), date(2026, 1, 1),
                                                                       date(2026, 2, 1)]
    custom = Period("custom", date(2026, 3, 1), date(2026, 3, 10))
    assert (custom.previous().start, custom.previous().end) == (date(2026, 2, 19), date(2026, 2, 28))
    assert period_of("monthly", date(2024, 12, 31)).previous().start == date(2024, 11, 1)


@pytest.mark.parametrize("value", [
    "2026-01", {"start": "2026-01-01"}, {"start": "2026-02-01", "end": "2026-01-01"},
    {"start": "yesterday", "end": "2026-01-01"}, {"start": "2000-01-01", "end": "2026-01-01"},
    {"start": "2026-01-01", "end": "2026-01-02", "extra": 1},
])
def test_bad_date_ranges_are_rejected(value: Any) -> None:
    with pytest.raises(InvalidArguments, match="date_range"):
        parse_date_range(value)


def test_date_ranges_accept_dates_and_timestamps() -> None:
    assert parse_date_range(None) is None
    period = parse_date_range({"start": "2026-01-01", "end": "2026-01-31T23:59:59+08:00"})
    assert period == Period("custom", date(2026, 1, 1), date(2026, 1, 31))
    with pytest.raises(InvalidArguments, match="period type"):
        period_of("hourly", TODAY)


def test_module_has_no_import_time_io(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = "import skqueue.dashboard, sys; print(sorted(m for m in sys.modules if m.startswith('reportlab')))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=True)
    assert done.stdout.strip() == "[]"
    assert not list(tmp_path.iterdir())

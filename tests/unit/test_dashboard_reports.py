"""Export rendering (JSON, CSV, a readable PDF) and the performance report's arithmetic."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import UTC, date
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader

from skqueue.broker.telemetry import TaskRecord
from skqueue.dashboard import export, performance, stats
from skqueue.dashboard.periods import Period
from skqueue.dashboard.store import Store, User
from skqueue.errors import InvalidArguments
from tests.dashboard_support import seeded, sqlite_url

TODAY = date(2026, 11, 20)
PERIOD = Period("custom", date(2026, 8, 1), date(2026, 10, 31))


@pytest.fixture(scope="module")
def material(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path = tmp_path_factory.mktemp("reports") / "senangkira.db"

    async def prepare() -> dict[str, Any]:
        engine, tables = await seeded(sqlite_url(path), 1, TODAY)
        store = await Store.open(engine)
        user = await store.user((await store.user_ids())[0])
        async with engine.connect() as conn:
            summary = await stats.compute(conn, tables, user.id, PERIOD, today=TODAY, tz=UTC)
        rows = await export.transactions(store, user.id, PERIOD)
        await engine.dispose()
        return {"user": user, "summary": summary, "rows": rows}

    return asyncio.run(prepare())


def test_ledger_rows_cover_the_range(material: dict[str, Any]) -> None:
    rows = material["rows"]
    assert rows and all(PERIOD.start.isoformat() <= r["date"] <= PERIOD.end.isoformat() for r in rows)
    assert {r["type"] for r in rows} == {"invoice", "expense"}
    assert [r["date"] for r in rows] == sorted(r["date"] for r in rows)
    assert material["summary"]["invoices"]["issued"] == sum(r["type"] == "invoice" for r in rows)
    assert material["summary"]["expenses"]["count"] == sum(r["type"] == "expense" for r in rows)


def test_csv_and_json(material: dict[str, Any]) -> None:
    user: User = material["user"]
    parsed = list(csv.DictReader(io.StringIO(export.render("csv", user, PERIOD, material["summary"],
                                                           material["rows"]).decode())))
    assert parsed == material["rows"]
    document = json.loads(export.render("json", user, PERIOD, material["summary"], material["rows"]))
    assert document["summary"] == material["summary"] and document["transactions"] == material["rows"]
    assert document["period"] == {"type": "custom", "start": "2026-08-01", "end": "2026-10-31"}
    assert document["user"]["id"] == str(user.id)


def test_pdf_is_a_readable_report(material: dict[str, Any], tmp_path: Path) -> None:
    user: User = material["user"]
    content = export.render("pdf", user, PERIOD, material["summary"], material["rows"])
    assert content.startswith(b"%PDF-")
    reader = PdfReader(io.BytesIO(content))
    text = "\n".join(page.extract_text() for page in reader.pages)
    assert user.company_name and user.company_name in text
    assert "Income vs expenses, last six months" in text and "Expenses by category" in text
    assert "2026-08" in text and "2026-10" in text  # the chart's month labels
    revenue = float(material["summary"]["revenue"])
    assert f"RM {revenue:,.2f}" in text
    first_invoice = next(r for r in material["rows"] if r["type"] == "invoice")
    assert first_invoice["reference"] in text
    assert reader.metadata is not None and reader.metadata.title.startswith(user.company_name)


@pytest.mark.parametrize("fmt", ["xlsx", "", None, 3])
def test_unknown_formats_are_rejected(fmt: Any) -> None:
    with pytest.raises(InvalidArguments, match="unknown export format"):
        export.check_format(fmt)
    assert export.check_format(" PDF ") == "pdf"


def _record(name: str, state: str, runtime: float, exception: str = "") -> TaskRecord:
    return TaskRecord("id", name, "default", state, runtime, 1.0, 1.0 if runtime >= 0 else 0.0, 2.0, "w@h", 0,
                      exception)


def test_percentiles_and_rates() -> None:
    assert performance.percentile([], 0.5) is None
    assert performance.percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert performance.percentile([float(i) for i in range(1, 101)], 0.95) == 95.0
    records = [_record("a", "SUCCESS", i / 100) for i in range(1, 19)]
    records += [_record("a", "FAILURE", 0.5, "ValueError"), _record("a", "RETRY", 0.2, "OperationalError"),
                _record("a", "FAILURE", 0.3, "ValueError")]
    summary = performance.per_task(records)["a"]
    assert (summary["attempts"], summary["succeeded"], summary["failed"], summary["retries"]) == (21, 18, 2, 1)
    assert summary["error_rate"] == round(2 / 20, 4)
    assert summary["exceptions"] == {"ValueError": 2}
    assert summary["p50_seconds"] == 0.11 and summary["max_seconds"] == 0.5


def test_recommendations() -> None:
    tasks = performance.per_task([_record("slow", "SUCCESS", 90.0) for _ in range(5)]
                                 + [_record("bad", "FAILURE", 0.1, "KeyError") for _ in range(5)])
    advice = performance.recommend(tasks, {"low_priority": 500, "default": 0}, 0.5, 100, workers=1)
    text = "\n".join(advice)
    assert "slow is slow" in text and "bad fails 100%" in text and "KeyError" in text
    assert "Queue low_priority has 500" in text and "hit ratio is 50%" in text
    assert performance.status_of(tasks, 1, advice) == "critical"
    assert performance.recommend({}, {}, None, 0, workers=0)[0].startswith("No worker")
    healthy = performance.per_task([_record("ok", "SUCCESS", 0.01) for _ in range(10)])
    assert performance.recommend(healthy, {"default": 1}, 0.9, 50, workers=2) == []
    assert performance.status_of(healthy, 2, []) == "healthy"

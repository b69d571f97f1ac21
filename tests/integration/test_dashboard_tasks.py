"""The seven dashboard tasks end to end: a real Celery client sends, an skqueue worker runs them against a
seeded SQLite database and the private Redis, and the results, rows, files and cache are checked."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader

from skqueue.broker.telemetry import decode_record
from skqueue.dashboard import stats, tasks
from skqueue.dashboard.periods import PERIOD_TYPES, period_of
from skqueue.dashboard.tasks import ROUTES
from tests.integration.dashboard_env import TODAY, configure, rows, seeded_file, smtp_server, user_ids
from tests.support import free_port, wait_for

pytestmark = pytest.mark.timeout(60)

REFRESH = "dashboard.tasks.refresh_dashboard_cache"
WARM = "dashboard.tasks.warm_dashboard_cache"
EXPORT = "dashboard.tasks.export_dashboard_data"
NOTIFY = "dashboard.tasks.send_notification"


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return seeded_file(tmp_path_factory.mktemp("dashboard"))


@pytest.fixture
def app(server: Any, seeded: Path, tmp_path: Path) -> Any:
    return configure(server, seeded, tmp_path)


@pytest.fixture
def client(celery_factory: Any) -> Any:
    return celery_factory(task_routes=ROUTES)


@pytest.fixture
def worker(app: Any, start_worker: Any) -> Any:
    return start_worker(app, hostname="dash@test")


def _records(server: Any, task_id: str) -> list[Any]:
    return [decode_record(f[b"r"]) for _, f in server.client(0).xrange("skqueue.task_events")
            if decode_record(f[b"r"]).task_id == task_id]


def test_refresh_one_user_fills_the_shared_cache_and_writes_snapshots(app: Any, client: Any, worker: Any,
                                                                      server: Any) -> None:
    uid = user_ids(app)[0]
    result = client.send_task(REFRESH, kwargs={"user_id": uid}).get(timeout=20)
    assert result["user_id"] == uid and result["as_of"] == TODAY.isoformat()
    assert set(result["periods"]) == set(PERIOD_TYPES) and result["cached"] == result["snapshots"] == 5
    monthly = period_of("monthly", TODAY)
    key = f"skqueue.dashboard.{uid}.0.monthly.{monthly.start.isoformat()}"
    redis = server.client(0)
    assert 0 < redis.pttl(key) <= 1_800_000
    cached = json.loads(redis.get(key))
    assert cached["revenue"] == result["periods"]["monthly"]["revenue"]
    assert cached["period"] == monthly.as_dict() and len(cached["monthly"]) == 6
    snapshots = rows(app, "SELECT period_type, total_revenue FROM dashboard_dashboardsnapshot WHERE owner_id = ? "
                          "AND snapshot_date = ?", uuid.UUID(uid).hex, TODAY.isoformat())
    assert sorted(p for p, _ in snapshots) == sorted(PERIOD_TYPES)
    # a second refresh replaces the day's snapshots rather than adding to them
    client.send_task(REFRESH, kwargs={"user_id": uid}).get(timeout=20)
    assert len(rows(app, "SELECT id FROM dashboard_dashboardsnapshot WHERE owner_id = ?", uuid.UUID(uid).hex)) == 5


def test_refresh_every_user_reports_one_failure_and_finishes_the_rest(app: Any, client: Any, worker: Any,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    ids = user_ids(app)
    original = stats.Figures.compute

    async def flaky(self: stats.Figures) -> dict[str, Any]:
        if str(self.owner) == ids[1]:
            raise RuntimeError("corrupt ledger")
        return await original(self)

    monkeypatch.setattr(stats.Figures, "compute", flaky)
    result = client.send_task(REFRESH).get(timeout=30)
    assert result == {"users": 3, "succeeded": 2, "batches": 1,
                      "failed": [{"user_id": ids[1], "error": "RuntimeError: corrupt ledger"}]}
    owners = {r[0] for r in rows(app, "SELECT owner_id FROM dashboard_dashboardsnapshot")}
    assert owners == {uuid.UUID(ids[0]).hex, uuid.UUID(ids[2]).hex}


def test_warm_fills_only_missing_or_expiring_entries(app: Any, client: Any, worker: Any, server: Any) -> None:
    uid = user_ids(app)[2]
    first = client.send_task(WARM, kwargs={"user_id": uid}).get(timeout=20)
    assert (first["filled"], first["fresh"], first["busy"]) == (list(PERIOD_TYPES), [], [])
    again = client.send_task(WARM, kwargs={"user_id": uid}).get(timeout=20)
    assert (again["filled"], again["fresh"]) == ([], list(PERIOD_TYPES))
    redis = server.client(0)

    def key(kind: str, prefix: str = "skqueue.dashboard.", generation: str = ".0") -> str:
        start = period_of(kind, TODAY).start.isoformat()
        return f"{prefix}{uid}{generation}.{kind}.{start}" if generation else f"{prefix}{uid}.{kind}.{start}"

    redis.pexpire(key("monthly"), 100_000)  # less than the refresh-ahead margin (300 s)
    redis.delete(key("daily"), key("weekly"))
    redis.set(key("weekly", "skqueue.dashboard.lock.", ""), b"another-process", px=30_000)
    third = client.send_task(WARM, kwargs={"user_id": uid}).get(timeout=20)
    assert (third["filled"], third["fresh"], third["busy"]) == (["daily", "monthly"], ["quarterly", "yearly"],
                                                                ["weekly"])
    redis.incr(f"skqueue.dashboard.gen.{uid}")  # invalidate: every entry of the user is gone at once
    fourth = client.send_task(WARM, kwargs={"user_id": uid}).get(timeout=20)
    assert fourth["filled"] == ["daily", "monthly", "quarterly", "yearly"] and fourth["busy"] == ["weekly"]
    assert redis.exists(key("monthly", generation=".1"))


@pytest.mark.parametrize(("name", "kwargs", "error", "text"), [
    (REFRESH, {"user_id": str(uuid.UUID(int=1))}, "UserNotFound", "not found"),
    (REFRESH, {"user_id": "robert'); DROP TABLE auth_user;--"}, "InvalidArguments", "neither a UUID"),
    (EXPORT, {"export_format": "xlsx"}, "InvalidArguments", "unknown export format"),
    (EXPORT, {"date_range": {"start": "2026-03-01", "end": "2026-01-01"}}, "InvalidArguments", "before it starts"),
    (NOTIFY, {"message": "hi", "notification_type": "urgent"}, "InvalidArguments", "notification_type"),
    ("dashboard.tasks.cleanup_old_data", {"days_old": -1}, "InvalidArguments", "days_old"),
])
def test_bad_arguments_fail_at_once_and_are_not_retried(app: Any, client: Any, worker: Any, server: Any, name: str,
                                                        kwargs: dict[str, Any], error: str, text: str) -> None:
    if name in (EXPORT, NOTIFY):
        kwargs = {"user_id": user_ids(app)[0], **kwargs}
    result = client.send_task(name, kwargs=kwargs)
    with pytest.raises(Exception) as caught:
        result.get(timeout=10)
    assert type(caught.value).__name__ == error and text in str(caught.value)
    records = wait_for(lambda: _records(server, result.id))
    assert [r.state for r in records] == ["FAILURE"]


@pytest.mark.parametrize("fmt", ["json", "csv", "pdf"])
def test_export_writes_the_file_and_describes_it(app: Any, client: Any, worker: Any, fmt: str) -> None:
    uid = user_ids(app)[0]
    start, end = TODAY - timedelta(days=120), TODAY - timedelta(days=30)
    span = {"start": start.isoformat(), "end": end.isoformat()}
    result = client.send_task(EXPORT, args=(uid, fmt, span)).get(timeout=30)
    path = Path(result["path"])
    content = path.read_bytes()
    assert path.parent == Path(app.conf.export_dir) / uid and path.suffix == f".{fmt}"
    assert result["size"] == len(content) and result["sha256"] == hashlib.sha256(content).hexdigest()
    assert result["period"] == {"type": "custom", **span}
    invoices = rows(app, "SELECT count(*) FROM invoicing_invoice WHERE owner_id = ? AND issue_date BETWEEN ? AND ?",
                    uuid.UUID(uid).hex, span["start"], span["end"])[0][0]
    expenses = rows(app, "SELECT count(*) FROM expenses_expense WHERE owner_id = ? AND date BETWEEN ? AND ?",
                    uuid.UUID(uid).hex, span["start"], span["end"])[0][0]
    assert result["rows"] == invoices + expenses > 0
    if fmt == "csv":
        assert len(content.decode().splitlines()) == result["rows"] + 1
    elif fmt == "json":
        assert len(json.loads(content)["transactions"]) == result["rows"]
    else:
        text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)
        assert "Income vs expenses, last six months" in text and f"Ledger ({result['rows']} entries)" in text
    recorded = rows(app, "SELECT export_format, sha256, row_count FROM dashboard_export")
    assert recorded == [(fmt, result["sha256"], result["rows"])]


def test_export_without_a_range_uses_the_cached_month(app: Any, client: Any, worker: Any, server: Any) -> None:
    uid = user_ids(app)[1]
    client.send_task(REFRESH, args=(uid,)).get(timeout=20)
    result = client.send_task(EXPORT, args=(uid,)).get(timeout=20)
    assert result["format"] == "json" and result["period"] == period_of("monthly", TODAY).as_dict()
    assert json.loads(Path(result["path"]).read_bytes())["summary"]["period"]["type"] == "monthly"
    assert server.client(0).hgetall("skqueue.dashboard.cache_stats") == {b"hits": b"1"}


def test_notification_is_stored_and_emailed(app: Any, client: Any, server: Any, start_worker: Any,
                                            tmp_path: Path, seeded: Path) -> None:
    port = free_port()
    smtp, mailbox = smtp_server(port)
    try:
        configured = configure(server, seeded, tmp_path, smtp_host="127.0.0.1", smtp_port=port,
                               smtp_username="senangkira", smtp_password="s3cret", smtp_from="billing@senangkira.my")
        start_worker(configured, hostname="mail@test")
        uid = user_ids(configured)[0]
        text = "Invoice INV-2026-0042 is 14 days overdue.\nPlease follow up with the client."
        result = client.send_task(NOTIFY, args=(uid, text, "alert")).get(timeout=20)
    finally:
        smtp.stop()
    email = rows(configured, "SELECT email FROM auth_user WHERE id = ?", uuid.UUID(uid).hex)[0][0]
    assert result["email"]["status"] == "sent" and result["email"]["to"] == email and result["type"] == "alert"
    assert mailbox.logins == [("senangkira", "s3cret")]
    assert mailbox.envelopes == [("billing@senangkira.my", [email])]
    message = mailbox.messages[0]
    assert message["Subject"] == "[SenangKira] Alert: Invoice INV-2026-0042 is 14 days overdue."
    assert "Please follow up with the client." in message.get_payload()
    assert message["Message-ID"] == result["email"]["message_id"]
    stored = rows(configured, "SELECT message, notification_type, email_status, email_attempts "
                              "FROM dashboard_notification")
    assert stored == [(text, "alert", "sent", 1)]


def test_smtp_failures_are_retried_with_backoff(app: Any, client: Any, server: Any, start_worker: Any,
                                                tmp_path: Path, seeded: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # exponential backoff from 1 s instead of 60 s, so the test does not wait a minute
    task = tasks.app.get_task(NOTIFY)
    assert (task.options.retry_backoff, task.options.max_retries, task.options.retry_jitter) == (60, 2, False)
    monkeypatch.setattr(task, "options", dataclasses.replace(task.options, retry_backoff=1))
    port = free_port()  # nothing listens there yet
    configured = configure(server, seeded, tmp_path, smtp_host="127.0.0.1", smtp_port=port, smtp_timeout=2)
    start_worker(configured, hostname="retry@test")
    uid = user_ids(configured)[1]
    result = client.send_task(NOTIFY, args=(uid, "Your SST return is due on the 30th.", "warning"))
    wait_for(lambda: rows(configured, "SELECT email_status FROM dashboard_notification") == [("failed",)])
    smtp, mailbox = smtp_server(port)
    try:
        outcome = result.get(timeout=20)
    finally:
        smtp.stop()
    assert outcome["email"]["status"] == "sent" and len(mailbox.messages) == 1
    assert rows(configured, "SELECT email_status, email_attempts FROM dashboard_notification") == [("sent", 2)]
    records = wait_for(lambda: (found := _records(server, result.id)) and len(found) == 2 and found)
    assert [(r.state, r.retries, r.exception) for r in records] == [("RETRY", 0, "Retry"), ("SUCCESS", 1, "")]


def test_cleanup_deletes_each_kind_older_than_the_cutoff(app: Any, client: Any, worker: Any, server: Any) -> None:
    uid = user_ids(app)[0]
    exports = Path(app.conf.export_dir)
    redis = server.client(0)
    redis.xadd("skqueue.task_events", {"r": b"{}"}, id=f"{int((time.time() - 60 * 86_400) * 1000)}-0")
    client.send_task(REFRESH, args=(uid,)).get(timeout=20)
    fresh_export = Path(client.send_task(EXPORT, args=(uid, "csv")).get(timeout=20)["path"])
    old_day = TODAY - timedelta(days=60)
    old = (datetime.now(UTC) - timedelta(days=60)).strftime("%Y-%m-%d %H:%M:%S.000000")
    owner = uuid.UUID(uid).hex
    stale_file = exports / uid / "old.csv"
    stale_file.write_text("x")
    stray = exports / "stray.pdf"
    stray.write_text("y")
    for path in (stale_file, stray):
        os.utime(path, (time.time() - 60 * 86_400,) * 2)
    rows(app, "UPDATE dashboard_dashboardsnapshot SET snapshot_date = ? WHERE period_type = 'daily'",
         old_day.isoformat())
    rows(app, "INSERT INTO dashboard_export VALUES (?, ?, 'csv', ?, 1, 1, 'x', ?, ?, ?)", uuid.uuid4().hex, owner,
         str(stale_file), old_day.isoformat(), old_day.isoformat(), old)
    rows(app, "INSERT INTO dashboard_notification (id, owner_id, message, notification_type, created_at, "
              "email_status, email_attempts) VALUES (?, ?, 'old', 'info', ?, 'sent', 1)", uuid.uuid4().hex, owner, old)
    before = redis.xlen("skqueue.task_events")
    result = client.send_task("dashboard.tasks.cleanup_old_data", kwargs={"days_old": 30}).get(timeout=20)
    assert result["days_old"] == 30
    assert result["deleted"] == {"snapshots": 1, "exports": 1, "notifications": 1, "performance_reports": 0,
                                 "export_files": 2, "task_events": 1}
    assert fresh_export.exists() and not stale_file.exists() and not stray.exists()
    assert redis.xlen("skqueue.task_events") >= before - 1
    assert len(rows(app, "SELECT id FROM dashboard_dashboardsnapshot")) == 4


def test_performance_analysis_reads_the_worker_telemetry(app: Any, client: Any, worker: Any, server: Any) -> None:
    uid = user_ids(app)[0]
    for _ in range(5):
        client.send_task("dashboard.tasks.debug_task").get(timeout=10)
    client.send_task(REFRESH, args=(uid,)).get(timeout=20)
    with pytest.raises(Exception, match="not found"):
        client.send_task(REFRESH, args=(str(uuid.UUID(int=5)),)).get(timeout=10)
    client.send_task(EXPORT, args=(uid,)).get(timeout=20)  # a cache hit
    wait_for(lambda: server.client(0).xlen("skqueue.task_events") == 8)
    report = client.send_task("dashboard.tasks.performance_analysis").get(timeout=20)
    debug = report["tasks"]["dashboard.tasks.debug_task"]
    assert (debug["attempts"], debug["succeeded"], debug["error_rate"]) == (5, 5, 0.0)
    assert 0 <= debug["p50_seconds"] <= debug["p95_seconds"] <= debug["max_seconds"]
    refresh = report["tasks"][REFRESH]
    assert (refresh["succeeded"], refresh["failed"], refresh["error_rate"]) == (1, 1, 0.5)
    assert refresh["exceptions"] == {"UserNotFound": 1}
    assert set(report["queue_backlog"]) == {"default", "high_priority", "cache_operations", "analytics",
                                            "low_priority"}
    assert report["cache"] == {"hits": 1, "misses": 0, "hit_ratio": 1.0}
    assert report["workers"] == 1 and report["all_time"]["SUCCESS"] == 7
    stored = rows(app, "SELECT id, status, report FROM dashboard_performancereport")
    assert [(uuid.UUID(hex=i), s) for i, s, _ in stored] == [(uuid.UUID(report["report_id"]), report["status"])]
    assert json.loads(stored[0][2]) == report


def test_debug_task(app: Any, client: Any, worker: Any) -> None:
    result = client.send_task("dashboard.tasks.debug_task").get(timeout=10)
    assert result["queue"] == "default" and result["hostname"] == "dash@test" and result["retries"] == 0

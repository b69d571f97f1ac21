"""Prometheus metrics after a known workload, and the shipped Grafana dashboard and alert rules."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from skqueue.api.metrics import EXPORTED
from skqueue.broker.telemetry import BUCKET_LABELS
from tests.integration.api_support import READER, api_client
from tests.support import ROOT, RedisServer, wait_for

pytestmark = pytest.mark.timeout(60)
METRICS = "/api/dashboard/metrics/prometheus/"


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _value(samples: dict[Any, float], name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def test_metrics_after_ten_successes_and_three_failures(server: RedisServer, celery_app: Any,
                                                        start_worker: Any) -> None:
    with api_client(server) as client:
        start_worker(hostname="metrics@test")
        ok = [celery_app.send_task("wire.add", args=(i, i)) for i in range(10)]
        bad = [celery_app.send_task("wire.fail", args=(f"boom {i}",)) for i in range(3)]
        [r.get(timeout=10) for r in ok]
        for result in bad:
            with pytest.raises(ValueError):
                result.get(timeout=10)
        for _ in range(2):
            celery_app.send_task("wire.reminder")  # nobody consumes "reminders"
        wait_for(lambda: server.client(0).xlen("skqueue.task_events") == 13)
        response = client.get(METRICS, headers=READER)
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
        again = client.get(METRICS, headers=READER).text

    samples = _samples(response.text)
    assert _samples(again) == samples  # a scrape counts nothing
    assert _value(samples, "celery_tasks_total", queue="default", status="success") == 10
    assert _value(samples, "celery_tasks_total", queue="default", status="failure") == 3
    assert {k for k in samples if k[0] == "celery_tasks_total"} == {
        ("celery_tasks_total", (("queue", "default"), ("status", "success"))),
        ("celery_tasks_total", (("queue", "default"), ("status", "failure")))}
    assert _value(samples, "celery_task_errors_total", queue="default", task="wire.fail", error_type="ValueError") == 3
    assert _value(samples, "celery_task_duration_seconds_count", queue="default", task="wire.add") == 10
    assert _value(samples, "celery_task_duration_seconds_count", queue="default", task="wire.fail") == 3
    buckets = [_value(samples, "celery_task_duration_seconds_bucket", queue="default", task="wire.add", le=le)
               for le in (*BUCKET_LABELS, "+Inf")]
    assert buckets[0] is not None and buckets == sorted(buckets) and buckets[-1] == 10  # cumulative
    assert BUCKET_LABELS[0] == "0.005" and BUCKET_LABELS[-1] == "3600"
    assert 0 < (_value(samples, "celery_task_duration_seconds_sum", queue="default", task="wire.add") or 0) < 5
    assert _value(samples, "celery_workers_count") == 1
    assert _value(samples, "celery_queues_backlog", queue="reminders", state="ready") == 2
    assert _value(samples, "celery_queues_backlog", queue="default", state="in_flight") == 0
    assert _value(samples, "skqueue_dead_letters") == 0
    names = {name for name, _ in samples}
    assert names <= EXPORTED | {"celery_tasks_created", "celery_task_errors_created"}


# ---------------------------------------------------------------- dashboards and alert rules
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool",
             "offset", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression reads (functions, keywords, labels and strings left out)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)  # strings (label values, Grafana variables)
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges and subqueries
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    found = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        rest = text[match.end():].lstrip()
        if rest.startswith("(") or match.group().lower() in _KEYWORDS:
            continue
        if match.start() > 0 and (text[match.start() - 1].isdigit() or text[match.start() - 1] == "$"):
            continue
        found.add(match.group())
    return found


def _grafana_exprs(dashboard: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        query = variable.get("query")
        text = query.get("query") if isinstance(query, dict) else None
        if text and (found := re.fullmatch(r"label_values\((\w+),\s*\w+\)", text)):
            exprs.append(found.group(1))
    return exprs


def test_metric_name_extraction() -> None:
    expr = ('histogram_quantile(0.95, sum by (le, queue) (rate(celery_task_duration_seconds_bucket'
            '{queue=~"$queue"}[$__rate_interval]))) / on (queue) group_left celery_workers_count > 1e3')
    assert metric_names(expr) == {"celery_task_duration_seconds_bucket", "celery_workers_count"}


def test_grafana_dashboard_uses_only_exported_metrics() -> None:
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "skqueue.json").read_text())
    exprs = _grafana_exprs(dashboard)
    used = set().union(*map(metric_names, exprs))
    assert used <= EXPORTED, used - EXPORTED
    for needed in ("celery_workers_count", "celery_queues_backlog", "celery_tasks_total",
                   "celery_task_duration_seconds_bucket", "celery_task_errors_total"):
        assert needed in used
    assert "queue" in {v["name"] for v in dashboard["templating"]["list"]}
    assert all('queue=~"$queue"' in e for e in exprs if "celery_tasks_total" in e or "backlog{" in e)
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])


def test_alert_rules_use_only_exported_metrics() -> None:
    rules = yaml.safe_load(Path(ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
    alerts = {r["alert"]: r for g in rules["groups"] for r in g["rules"]}
    assert {"SkqueueNoWorkers", "SkqueueBacklogGrowing", "SkqueueFailureRatioHigh"} <= set(alerts)
    for rule in alerts.values():
        used = metric_names(rule["expr"])
        assert used and used <= EXPORTED, (rule["alert"], used - EXPORTED)
        assert rule["labels"]["severity"] in ("warning", "critical") and rule["annotations"]["summary"]

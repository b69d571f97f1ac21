"""The monitoring API's endpoints against a real skqueue worker and Redis."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.integration.api_support import CELERY, READER, STAFF, api_client
from tests.support import RedisServer, wait_for

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def client(server: RedisServer) -> Iterator[TestClient]:
    with api_client(server) as api:
        yield api


def _get(client: TestClient, path: str, **params: Any) -> dict[str, Any]:
    response = client.get(f"{CELERY}{path}", headers=READER, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _post(client: TestClient, path: str, body: Any = None, status: int = 200) -> dict[str, Any]:
    response = client.post(f"{CELERY}{path}", headers=STAFF, json=body)
    assert response.status_code == status, response.text
    found: dict[str, Any] = response.json()
    return found


def test_status_without_workers_is_critical_and_without_history_has_no_rate(client: TestClient) -> None:
    body = _get(client, "/status/")
    assert body["status"] == "critical" and body["message"] == "No active workers"
    assert body["worker_count"] == 0 and body["active_tasks"] == 0
    assert body["success_rate"] is None and body["rule"] and body["timestamp"].endswith("+00:00")


def test_status_workers_and_queues_with_a_running_task(client: TestClient, celery_app: Any,
                                                       start_worker: Any) -> None:
    start_worker(hostname="api@test", concurrency=2)
    running = celery_app.send_task("wire.sleep", args=(3,))
    later = celery_app.send_task("wire.add", args=(1, 2), countdown=30)

    def held() -> dict[str, Any] | None:
        queues = _get(client, "/queues/")
        backlog = queues["queues"]["default"]["backlog"]
        return queues if backlog["scheduled"] == 1 and backlog["in_flight"] == 1 else None

    queues = wait_for(held, timeout=10)
    default = queues["queues"]["default"]
    assert default["workers"] == ["api@test"] and default["count"] == 1 and default["name"] == "default"
    assert default["backlog"] == {"ready": 0, "scheduled": 1, "in_flight": 1, "total": 2}
    assert queues["total_queues"] == len(queues["queues"]) and "unknown" not in queues["queues"]

    status = _get(client, "/status/")
    assert status["status"] == "healthy" and status["worker_count"] == 1 and status["active_tasks"] == 1

    workers = _get(client, "/workers/")
    assert workers["workers"]["count"] == 1
    detail = workers["workers"]["details"]["api@test"]
    assert detail["active"] == [running.id] and detail["concurrency"] == 2 and "default" in detail["queues"]
    stats = workers["stats"]["api@test"]
    assert stats["pool"]["max-concurrency"] == 2 and stats["pool"]["processes"] == [detail["pid"]]
    running.get(timeout=10)
    wait_for(lambda: _get(client, "/workers/")["stats"]["api@test"]["total"].get("wire.sleep") == 1)
    later.revoke()


def test_ready_backlog_counts_every_priority_band(client: TestClient, celery_app: Any) -> None:
    for priority in (0, 5, 9):
        celery_app.send_task("wire.analytics", priority=priority)
    backlog = _get(client, "/queues/")["queues"]["analytics"]["backlog"]
    assert backlog == {"ready": 3, "scheduled": 0, "in_flight": 0, "total": 3}


def test_in_flight_held_by_others_is_reported_under_unknown(client: TestClient, server: RedisServer) -> None:
    server.client(0).hset("unacked", "tag-1", json.dumps([{}, "", "default"]))
    assert _get(client, "/queues/")["queues"]["unknown"]["backlog"]["in_flight"] == 1


def test_task_list_newest_first_with_filters_and_cursor(client: TestClient, celery_app: Any,
                                                        start_worker: Any) -> None:
    start_worker(concurrency=1)
    ids = []
    for i in range(6):  # one at a time, so the stream order is the send order
        result = celery_app.send_task("wire.add" if i % 2 else "wire.fail", args=(i, i) if i % 2 else ("x",))
        with pytest.raises(Exception) if i % 2 == 0 else contextlib.nullcontext():
            result.get(timeout=5)
        ids.append(result.id)
    wait_for(lambda: _get(client, "/tasks/")["count"] == 6)
    everything = _get(client, "/tasks/")
    assert [t["task_id"] for t in everything["tasks"]] == ids[::-1]
    first = everything["tasks"][0]
    assert first["name"] == "wire.add" and first["status"] == "SUCCESS" and first["queue"] == "default"
    assert first["duration"] >= 0 and first["started_at"] and first["completed_at"] >= first["started_at"]

    page = _get(client, "/tasks/", limit=2)
    assert [t["task_id"] for t in page["tasks"]] == ids[:-3:-1] and page["count"] == 2
    rest = _get(client, "/tasks/", limit=10, cursor=page["next_cursor"])
    assert [t["task_id"] for t in rest["tasks"]] == ids[-3::-1] and rest["next_cursor"] is None

    failed = _get(client, "/tasks/", state="failure")
    assert [t["task_id"] for t in failed["tasks"]] == ids[::2][::-1]
    assert all(t["exception"] == "ValueError" for t in failed["tasks"])
    assert _get(client, "/tasks/", name="wire.add")["count"] == 3
    assert _get(client, "/tasks/", queue="nope")["count"] == 0


@pytest.mark.parametrize("params", [{"limit": "-1"}, {"limit": "abc"}, {"limit": "0"}, {"limit": "100000"},
                                    {"state": "BOGUS"}, {"cursor": "not-a-cursor"}])
def test_task_list_rejects_bad_parameters(client: TestClient, params: dict[str, str]) -> None:
    response = client.get(f"{CELERY}/tasks/", headers=READER, params=params)
    assert response.status_code == 400 and response.json()["error"]


def test_task_detail_of_a_failure_with_attempts_and_traceback(client: TestClient, celery_app: Any,
                                                              start_worker: Any) -> None:
    start_worker()
    result = celery_app.send_task("wire.fail", args=("x" * 10_000,))
    with pytest.raises(ValueError):
        result.get(timeout=5)
    detail = wait_for(lambda: (d := _get(client, f"/tasks/{result.id}/"))["attempts"] and d)
    assert detail["status"] == "FAILURE" and detail["name"] == "wire.fail" and detail["queue"] == "default"
    assert detail["exception"]["type"] == "ValueError" and detail["exception"]["module"] == "builtins"
    assert "truncated" in detail["exception"]["message"] and len(detail["exception"]["message"]) < 3000
    assert "Traceback" in detail["traceback"] and detail["date_done"]
    assert [a["status"] for a in detail["attempts"]] == ["FAILURE"] and detail["history_complete"]


def test_task_detail_of_a_success_and_of_an_unknown_id(client: TestClient, celery_app: Any,
                                                       start_worker: Any) -> None:
    start_worker()
    result = celery_app.send_task("wire.add", args=(2, 3))
    assert result.get(timeout=5) == 5
    detail = _get(client, f"/tasks/{result.id}/")
    assert detail["status"] == "SUCCESS" and detail["result"] == 5 and detail["exception"] is None
    unknown = _get(client, "/tasks/never-seen-id/")
    assert unknown["status"] == "PENDING" and unknown["attempts"] == [] and unknown["result"] is None


def test_execute_sends_a_registered_task(client: TestClient, start_worker: Any, server: RedisServer) -> None:
    start_worker()
    sent = _post(client, "/tasks/wire.add/execute/", {"args": [20, 22]}, status=202)
    assert sent["queue"] == "default" and sent["status"] == "queued" and sent["task_name"] == "wire.add"
    done = wait_for(lambda: (d := _get(client, f"/tasks/{sent['task_id']}/"))["status"] == "SUCCESS" and d)
    assert done["result"] == 42 and done["args"] == [20, 22]
    routed = _post(client, "/tasks/wire.analytics/execute/", {}, status=202)
    assert routed["queue"] == "analytics"


def test_execute_injects_user_id(client: TestClient, start_worker: Any) -> None:
    start_worker()
    sent = _post(client, "/tasks/wire.echo/execute/", {"args": [1], "user_id": "u-7"}, status=202)
    done = wait_for(lambda: (d := _get(client, f"/tasks/{sent['task_id']}/"))["status"] == "SUCCESS" and d)
    assert done["result"]["kwargs"] == {"user_id": "u-7"}


@pytest.mark.parametrize(("name", "body", "status", "text"), [
    ("wire.nope", {}, 404, "Unknown task: wire.nope"),
    ("wire.add", {"args": [1]}, 400, "bad arguments for wire.add"),
    ("wire.add", {"args": [1, 2, 3]}, 400, "bad arguments"),
    ("wire.add", {"args": [1], "kwargs": {"z": 1}}, 400, "bad arguments"),
    ("wire.add", {"args": "1,2"}, 400, "args must be a JSON array"),
    ("wire.add", {"kwargs": []}, 400, "kwargs must be a JSON object"),
    ("wire.add", [1, 2], 400, "must be a JSON object"),
    ("wire.add", {"args": [1, 2], "countdown": 5}, 400, "unknown field"),
    ("wire.add", {"args": [1], "user_id": 5}, 400, "bad arguments"),
])
def test_execute_rejects_unknown_tasks_and_bad_arguments(client: TestClient, name: str, body: Any, status: int,
                                                         text: str) -> None:
    response = client.post(f"{CELERY}/tasks/{name}/execute/", headers=STAFF, json=body)
    assert response.status_code == status and text in response.json()["error"]


def test_execute_rejects_a_body_that_is_not_json_or_too_large(client: TestClient) -> None:
    url = f"{CELERY}/tasks/wire.add/execute/"
    response = client.post(url, headers={**STAFF, "Content-Type": "application/json"}, content=b"{nope")
    assert response.status_code == 400 and "not valid JSON" in response.json()["error"]
    response = client.post(url, headers=STAFF, json={"args": ["x" * 70_000, 1]})
    assert response.status_code == 413


def test_revoke_a_waiting_task(client: TestClient, celery_app: Any, server: RedisServer) -> None:
    result = celery_app.send_task("wire.add", args=(1, 1))
    revoked = _post(client, f"/tasks/{result.id}/revoke/")
    assert revoked["revoked"] is True and revoked["status"] == "REVOKED"
    assert server.client(0).zscore("skqueue.revoked", result.id) is not None
    assert result.state == "REVOKED"


def test_revoke_terminates_a_running_task(client: TestClient, celery_app: Any, start_worker: Any) -> None:
    start_worker()
    result = celery_app.send_task("wire.sleep", args=(30,))
    wait_for(lambda: _get(client, f"/tasks/{result.id}/")["running_on"] == "w1@test")
    assert _post(client, f"/tasks/{result.id}/revoke/", {"terminate": True})["terminate"] is True
    wait_for(lambda: result.state == "REVOKED", timeout=10)
    bad = client.post(f"{CELERY}/tasks/{result.id}/revoke/", headers=STAFF, json={"signal": "SIGNOPE"})
    assert bad.status_code == 400


def test_retry_sends_a_failed_task_again_with_its_arguments(client: TestClient, start_worker: Any) -> None:
    start_worker()
    sent = _post(client, "/tasks/wire.fail/execute/", {"args": ["first"]}, status=202)
    wait_for(lambda: _get(client, f"/tasks/{sent['task_id']}/")["status"] == "FAILURE")
    again = _post(client, f"/tasks/{sent['task_id']}/retry/", status=202)
    assert again["retry_of"] == sent["task_id"] and again["task_id"] != sent["task_id"]
    done = wait_for(lambda: (d := _get(client, f"/tasks/{again['task_id']}/"))["status"] == "FAILURE" and d)
    assert done["exception"]["message"] == ["first"] and done["args"] == ["first"]


def test_retry_uses_extended_results_for_tasks_sent_by_celery(server: RedisServer, celery_app: Any,
                                                             start_worker: Any) -> None:
    with api_client(server, result_extended=True) as client:
        start_worker()
        result = celery_app.send_task("wire.fail", args=("celery",))
        with pytest.raises(ValueError):
            result.get(timeout=5)
        again = _post(client, f"/tasks/{result.id}/retry/", status=202)
        wait_for(lambda: _get(client, f"/tasks/{again['task_id']}/")["status"] == "FAILURE")


def test_retry_refuses_what_it_cannot_retry(client: TestClient, celery_app: Any, start_worker: Any) -> None:
    start_worker()
    ok = celery_app.send_task("wire.add", args=(1, 1))
    ok.get(timeout=5)
    bad = celery_app.send_task("wire.fail", args=("no extended results",))
    with pytest.raises(ValueError):
        bad.get(timeout=5)
    unknown = client.post(f"{CELERY}/tasks/never-seen/retry/", headers=STAFF)
    assert unknown.status_code == 404
    success = client.post(f"{CELERY}/tasks/{ok.id}/retry/", headers=STAFF)
    assert success.status_code == 409 and "only FAILURE" in success.json()["error"]
    no_args = client.post(f"{CELERY}/tasks/{bad.id}/retry/", headers=STAFF)
    assert no_args.status_code == 409 and "result_extended" in no_args.json()["error"]


def test_health_check_round_trip(client: TestClient, start_worker: Any) -> None:
    start_worker()
    report = _post(client, "/health_check/")
    assert report["healthy"] is True and report["status"] == "healthy"
    assert set(report["checks"]) == {"broker", "result_backend", "worker"}
    assert all(c["ok"] and c["ms"] >= 0 for c in report["checks"].values())
    assert report["checks"]["worker"]["task"] == "wire.debug_task"
    assert report["system_status"]["worker_count"] == 1 and report["recommendations"] == []


def test_health_check_without_a_worker_fails_the_worker_check(server: RedisServer) -> None:
    with api_client(server, api_health_timeout=0.3) as client:
        response = client.post(f"{CELERY}/health_check/", headers=STAFF)
    assert response.status_code == 503
    report = response.json()
    assert report["healthy"] is False and report["checks"]["broker"]["ok"] and report["checks"]["result_backend"]["ok"]
    assert not report["checks"]["worker"]["ok"] and "timed out" in report["checks"]["worker"]["error"]
    assert server.client(0).zscore("skqueue.revoked", report["checks"]["worker"]["task_id"]) is not None
    assert report["system_status"]["status"] == "critical" and report["recommendations"]


def test_unknown_paths_and_methods_answer_json(client: TestClient) -> None:
    missing = client.get("/api/dashboard/nope/", headers=READER)
    assert missing.status_code == 404 and missing.json()["error"]
    wrong = client.get(f"{CELERY}/health_check/", headers=STAFF)
    assert wrong.status_code == 405
    assert missing.headers["x-content-type-options"] == "nosniff"


def test_redis_down_gives_503(server: RedisServer) -> None:
    with api_client(server) as client:
        server.stop()
        response = client.get(f"{CELERY}/status/", headers=READER)
    assert response.status_code == 503 and "unavailable" in response.json()["error"]

"""The schedule endpoints: list, pause, resume and trigger the app's ``beat_schedule`` entries."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.api_support import CELERY, READER, STAFF, api_client
from tests.support import RedisServer, wait_for

pytestmark = pytest.mark.timeout(60)
SCHEDULE = {"add-hourly": {"task": "wire.add", "schedule": "0 * * * *", "args": [1, 2]},
            "analytics-often": {"task": "wire.analytics", "schedule": 60}}


def _entries(client: Any) -> dict[str, dict[str, Any]]:
    response = client.get(f"{CELERY}/schedules/", headers=READER)
    assert response.status_code == 200, response.text
    return {entry["name"]: entry for entry in response.json()["schedules"]}


def test_list_pause_resume_and_trigger(server: RedisServer, start_worker: Any) -> None:
    with api_client(server, with_schedule=True, beat_schedule=SCHEDULE) as client:
        listing = client.get(f"{CELERY}/schedules/", headers=READER).json()
        assert listing["count"] == 2 and listing["leader"] is None
        entry = _entries(client)["add-hourly"]
        assert entry["task"] == "wire.add" and entry["queue"] == "default" and entry["schedule"]
        assert entry["next_run"].endswith("+00:00") and entry["next_run"][14:19] == "00:00"
        assert entry["paused"] is False and entry["run_count"] == 0 and entry["last_run"] is None
        assert _entries(client)["analytics-often"]["queue"] == "analytics"

        url = f"{CELERY}/schedules/add-hourly"
        assert client.post(f"{url}/pause/", headers=READER).status_code == 403
        paused = client.post(f"{url}/pause/", headers=STAFF)
        assert paused.status_code == 200 and paused.json()["schedule"]["paused"] is True
        assert _entries(client)["add-hourly"]["paused"] is True
        resumed = client.post(f"{url}/resume/", headers=STAFF)
        assert resumed.status_code == 200 and resumed.json()["schedule"]["paused"] is False

        start_worker()
        sent = client.post(f"{url}/trigger/", headers=STAFF)
        assert sent.status_code == 202, sent.text
        task_id = sent.json()["task_id"]
        assert sent.json()["queue"] == "default" and sent.json()["task_name"] == "wire.add"
        done = wait_for(lambda: (d := client.get(f"{CELERY}/tasks/{task_id}/", headers=READER).json())
                        ["status"] == "SUCCESS" and d)
        assert done["result"] == 3
        assert _entries(client)["add-hourly"]["last_task_id"] == task_id


def test_unknown_entries_and_an_api_without_schedule(server: RedisServer) -> None:
    with api_client(server, with_schedule=True, beat_schedule=SCHEDULE) as client:
        for action in ("pause", "resume", "trigger"):
            response = client.post(f"{CELERY}/schedules/nope/{action}/", headers=STAFF)
            assert response.status_code == 404 and "nope" in response.json()["error"]
    with api_client(server) as client:
        assert client.get(f"{CELERY}/schedules/", headers=READER).status_code == 404

"""Helpers for the monitoring API tests: the API on the wire app and the private Redis, and tokens."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from starlette.testclient import TestClient

from skqueue.api.app import create_app
from skqueue.api.auth import mint
from skqueue.wiring import schedule_book
from tests.conftest import configure_wire
from tests.support import RedisServer

SECRET = "test-secret-of-at-least-32-bytes-length!"
CELERY = "/api/dashboard/celery"


def token(*, staff: bool = False, ttl: float = 600, user_id: str = "u-1", **kw: Any) -> str:
    return mint(SECRET, user_id=user_id, staff=staff, ttl=ttl, **kw)


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


READER = bearer(token())
STAFF = bearer(token(staff=True))


@contextlib.contextmanager
def api_client(server: RedisServer, *, with_schedule: bool = False, **settings: Any) -> Iterator[TestClient]:
    """The API (lifespan included) for the ``wire`` app on ``server``; ``with_schedule``: given the app's
    ``beat_schedule`` as ``skqueue api`` is."""
    values = {"jwt_secret": SECRET, "api_health_task": "wire.debug_task", "api_health_timeout": 5.0, **settings}
    app = configure_wire(server, **values)
    book = schedule_book(app) if with_schedule else None
    with TestClient(create_app(app.conf, app, schedules=book), raise_server_exceptions=True) as client:
        yield client

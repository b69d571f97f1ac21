"""Fixtures for the pure unit tests: a real Celery client whose publishes are captured in-process.

kombu's virtual transports hand every message to ``Channel._put(queue, message)`` as the exact dict the
Redis transport would ``LPUSH`` (as ``kombu.utils.json.dumps(message)``). Patching the memory transport's
``_put`` captures what a Celery client publishes without any broker.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from celery import Celery
from kombu.transport import memory
from kombu.utils.json import dumps


@dataclass
class Published:
    """One captured publish: the queue it went to and the envelope dict kombu built."""

    queue: str
    message: dict[str, Any]

    @property
    def raw(self) -> bytes:
        """The bytes the Redis transport would store (kombu's ``dumps`` of the envelope)."""
        return dumps(self.message).encode("utf-8")

    @property
    def headers(self) -> dict[str, Any]:
        return self.message["headers"]

    @property
    def properties(self) -> dict[str, Any]:
        return self.message["properties"]


@dataclass
class CeleryClient:
    """Builds Celery client apps on ``memory://`` and records everything they publish."""

    published: list[Published] = field(default_factory=list)
    apps: list[Celery] = field(default_factory=list)

    def app(self, **conf: Any) -> Celery:
        capp = Celery("unitclient", broker="memory://", set_as_current=False)
        capp.conf.update({"task_default_queue": "default", **conf})
        self.apps.append(capp)
        return capp

    def send(self, capp: Celery, name: str, *args: Any, **options: Any) -> Published:
        """``capp.send_task(name, ...)`` and return the single message it published."""
        before = len(self.published)
        capp.send_task(name, *args, **options)
        assert len(self.published) == before + 1, "expected exactly one publish"
        return self.published[-1]

    def last(self) -> Published:
        return self.published[-1]


@pytest.fixture
def celery_client(monkeypatch: pytest.MonkeyPatch) -> Iterator[CeleryClient]:
    client = CeleryClient()

    def _put(self: Any, queue: str, message: dict[str, Any], **kwargs: Any) -> None:
        client.published.append(Published(queue, copy.deepcopy(message)))

    monkeypatch.setattr(memory.Channel, "_put", _put)
    yield client
    for capp in client.apps:
        capp.close()

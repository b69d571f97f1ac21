"""Turning what happened to a request into the result metas Celery clients read, and log lines."""

from __future__ import annotations

import logging
import os
from typing import Any

from skqueue.app import Task
from skqueue.broker.results import MetaWrite
from skqueue.config import Settings
from skqueue.errors import NotRegistered, Retry
from skqueue.protocol import results, states
from skqueue.protocol.events import safe_repr
from skqueue.protocol.message import TaskMessage
from skqueue.worker.execute import Outcome

log = logging.getLogger("skqueue.worker")


class MetaFactory:
    """Builds ``celery-task-meta`` writes with the TTL and optional fields the settings ask for."""

    def __init__(self, settings: Settings, hostname: str) -> None:
        self.ttl = settings.result_expires
        self.extended = settings.result_extended
        self.hostname = hostname
        self.pid = os.getpid()

    def _common(self, message: TaskMessage, queue: str) -> dict[str, Any]:
        common: dict[str, Any] = {"group_id": message.group, "parent_id": message.parent_id}
        if self.extended:
            common["extended"] = {
                "name": message.task, "args": message.args, "kwargs": message.kwargs,
                "worker": self.hostname, "retries": message.retries, "queue": message.routing_key or queue,
            }
        return common

    def write(self, meta: results.ResultMeta) -> MetaWrite:
        """A meta as a write with the configured expiry."""
        return MetaWrite(meta.task_id, meta.to_json(), self.ttl)


    def started(self, message: TaskMessage, queue: str) -> MetaWrite:
        return self.write(results.started(message.id, self.pid, self.hostname, **self._common(message, queue)))

    def finished(self, message: TaskMessage, queue: str, outcome: Outcome,
                 children: list[Any] | None = None) -> MetaWrite:
        common = self._common(message, queue)
        if outcome.state == states.SUCCESS:
            try:
                meta = results.success(message.id, outcome.value, children=children, **common)
                return self.write(meta)
            except TypeError as exc:
                # The return value cannot be stored as JSON: report it as the task's failure.
                outcome.state, outcome.exc, outcome.traceback = states.FAILURE, exc, None
        assert outcome.exc is not None
        meta = results.failure(message.id, results.encode_exception(outcome.exc), outcome.traceback, **common)
        return self.write(meta)

    def retry(self, message: TaskMessage, queue: str, retry: Retry, traceback: str | None,
              children: list[Any]) -> MetaWrite:
        """RETRY: the exception passed to ``retry(exc=...)`` (or null), the traceback, the retry as child."""
        value = results.encode_exception(retry.exc).as_dict() if retry.exc is not None else None
        meta = results.ResultMeta(message.id, states.RETRY, value, traceback, children=children,
                                  **self._common(message, queue))
        return self.write(meta)

    def not_registered(self, message: TaskMessage, queue: str) -> MetaWrite:
        exc = results.encode_exception(NotRegistered(message.task))
        return self.write(results.failure(message.id, exc, None, **self._common(message, queue)))

    def revoked_id(self, task_id: str, reason: str) -> MetaWrite:
        """REVOKED for a task known only by id (a revoke that arrives before any worker holds it)."""
        return self.write(results.revoked(task_id, reason))

    def revoked(self, message: TaskMessage, queue: str, reason: str) -> MetaWrite:
        return self.write(results.revoked(message.id, reason, **self._common(message, queue)))


def log_outcome(task: Task, message: TaskMessage, outcome: Outcome) -> None:
    if outcome.state == states.SUCCESS:
        if log.isEnabledFor(logging.INFO):
            log.info("Task %s[%s] succeeded in %.6fs: %s", task.name, message.id, outcome.runtime,
                     safe_repr(outcome.value, 200))
    elif outcome.state == states.RETRY:
        log.info("Task %s[%s] retry: %s", task.name, message.id, outcome.exc)
    elif outcome.state == states.REVOKED:
        log.warning("Task %s[%s] terminated (revoked)", task.name, message.id)
    else:
        log.error("Task %s[%s] raised unexpected: %r\n%s", task.name, message.id, outcome.exc,
                  outcome.traceback or "")

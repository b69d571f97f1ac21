"""Every exception skqueue raises, rooted at :class:`SkqueueError`.

::

    SkqueueError
    ├── ConfigError (ValueError)          a setting is missing, unknown where that matters, or unusable
    ├── ProtocolError (ValueError)        a message cannot be decoded; carries the reason
    │   └── ContentDisallowed             a serializer other than JSON (pickle, yaml, msgpack)
    ├── BrokerError                       Redis is unreachable or answered unexpectedly
    │   └── EmbeddedBrokerError           the embedded Valkey server could not be started
    ├── MonitorError                      a monitoring API request cannot be carried out
    │   ├── InvalidRequest (ValueError)   bad parameters or arguments (HTTP 400)
    │   ├── NotFound (LookupError)        no such task or schedule (HTTP 404)
    │   └── Conflict                      the task's state does not allow it (HTTP 409)
    ├── DashboardError                    raised on purpose by the SenangKira tasks (skqueue.dashboard)
    │   ├── InvalidArguments (ValueError) bad task arguments: the task fails at once, never retried
    │   │   └── UserNotFound (LookupError) no such user in the data store
    │   └── DeliveryError                 an e-mail could not be sent (retried with backoff)
    └── TaskError                         raised around the execution of one task
        ├── NotRegistered (KeyError)      no task of that name
        ├── TaskRevokedError              revoked, expired or terminated
        ├── Retry                         raised by ``ctx.retry()``: the task will run again
        ├── MaxRetriesExceededError       ``retry()`` past ``max_retries`` with no exception to re-raise
        ├── ChordError                    a chord's body cannot run: a header task failed
        ├── SoftTimeLimitExceeded         raised inside a task at its soft time limit
        ├── TimeLimitExceeded             the task hit its hard time limit and was abandoned
        └── WorkerLostError               the process running the task died

Each is written to the result backend under the module name a Celery worker uses (``celery.exceptions``
or ``billiard.exceptions``), so a Celery client rebuilds its own exception classes from them.
"""

from __future__ import annotations


class SkqueueError(Exception):
    """Root of every skqueue error."""


class ConfigError(SkqueueError, ValueError):
    """A setting is missing, malformed or has a value skqueue cannot honour."""


class ProtocolError(SkqueueError, ValueError):
    """A broker message cannot be decoded. ``str(exc)`` is the reason recorded in the dead-letter list."""


class ContentDisallowed(ProtocolError):
    """The message uses a serializer skqueue refuses to load (only JSON is ever deserialized)."""


class BrokerError(SkqueueError):
    """Redis could not be reached or answered in an unexpected way."""


class EmbeddedBrokerError(BrokerError):
    """The embedded Valkey server could not be started or reached."""


class MonitorError(SkqueueError):
    """A monitoring request (query or command) cannot be carried out; ``str(exc)`` says why."""


class InvalidRequest(MonitorError, ValueError):
    """The request's parameters or the task's arguments are invalid."""


class NotFound(MonitorError, LookupError):
    """The task, task name or schedule named does not exist."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class Conflict(MonitorError):
    """The request is valid but the current state does not allow it (retrying a task that did not fail)."""


class TaskError(SkqueueError):
    """Base of errors raised around the execution of a task."""


class NotRegistered(TaskError, KeyError):
    """The message names a task this worker does not know."""

    celery_module = "celery.exceptions"

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class TaskRevokedError(TaskError):
    """The task was revoked or its ``expires`` time passed before it ran."""

    celery_module = "celery.exceptions"


class Retry(TaskError):
    """Raised by ``ctx.retry()``: the task is republished with ``retries + 1`` and an ``eta``."""

    celery_module = "celery.exceptions"

    def __init__(self, message: str | None = None, exc: BaseException | None = None,
                 when: float | None = None, **options: object) -> None:
        self.exc = exc
        self.when = when
        self.options = options
        if message is None:
            message = f"Retry in {when:g}s" if when is not None else "Retry"
            if exc is not None:
                message = f"{message}: {exc!r}"
        super().__init__(message)

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (str(self), self.exc, self.when))


class MaxRetriesExceededError(TaskError):
    celery_module = "celery.exceptions"


class ChordError(TaskError):
    """Stored as a chord body's FAILURE when a header task failed (``Dependency <id> raised <exc>``)."""

    celery_module = "celery.exceptions"


class SoftTimeLimitExceeded(TaskError):
    """The soft time limit passed: raised inside the task so it can clean up."""

    celery_module = "billiard.exceptions"


class TimeLimitExceeded(TaskError):
    celery_module = "billiard.exceptions"


class WorkerLostError(TaskError):
    celery_module = "billiard.exceptions"


class DashboardError(SkqueueError):
    """Base of the errors the SenangKira dashboard tasks raise on purpose."""


class InvalidArguments(DashboardError, ValueError):
    """The task's arguments cannot be honoured (unknown format, bad date range, ...). Retrying would not
    help, so the dashboard tasks never list it in ``autoretry_for``."""


class UserNotFound(InvalidArguments, LookupError):
    """The user id names no user in the data store."""


class DeliveryError(DashboardError):
    """A notification e-mail could not be handed to the SMTP server (retried with backoff)."""

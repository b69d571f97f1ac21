"""Every exception skqueue raises, rooted at :class:`SkqueueError`.

::

    SkqueueError
    ├── ConfigError (ValueError)          a setting is missing, unknown where that matters, or unusable
    ├── ProtocolError (ValueError)        a message cannot be decoded; carries the reason
    │   └── ContentDisallowed             a serializer other than JSON (pickle, yaml, msgpack)
    ├── BrokerError                       Redis is unreachable or answered unexpectedly
    │   └── EmbeddedBrokerError           the embedded Valkey server could not be started
    └── TaskError                         raised around the execution of one task
        ├── NotRegistered (KeyError)      no task of that name (exc_module "celery.exceptions")
        └── TaskRevokedError              revoked or expired (exc_module "celery.exceptions")

``NotRegistered`` and ``TaskRevokedError`` are written to the result backend under Celery's module
name, so a Celery client rebuilds its own exception classes from them.
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

"""skqueue: an asyncio-native worker for Celery clients on Redis."""

from skqueue.app import App, Task
from skqueue.errors import (
    BrokerError,
    ConfigError,
    NotRegistered,
    ProtocolError,
    SkqueueError,
    TaskError,
    TaskRevokedError,
)
from skqueue.worker.context import TaskContext

__version__ = "0.1.0"

__all__ = [
    "App",
    "BrokerError",
    "ConfigError",
    "NotRegistered",
    "ProtocolError",
    "SkqueueError",
    "Task",
    "TaskContext",
    "TaskError",
    "TaskRevokedError",
]

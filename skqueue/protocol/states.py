"""Celery's task state names."""

from typing import Final

PENDING: Final = "PENDING"
RECEIVED: Final = "RECEIVED"
STARTED: Final = "STARTED"
SUCCESS: Final = "SUCCESS"
FAILURE: Final = "FAILURE"
REVOKED: Final = "REVOKED"
REJECTED: Final = "REJECTED"
RETRY: Final = "RETRY"

READY_STATES: Final = frozenset({SUCCESS, FAILURE, REVOKED})
EXCEPTION_STATES: Final = frozenset({RETRY, FAILURE, REVOKED})

"""Logging in Celery's format: ``[2024-01-15 10:30:00,123: INFO/MainProcess] message``."""

from __future__ import annotations

import logging
import sys

FORMAT = "[%(asctime)s: %(levelname)s/%(processName)s] %(message)s"
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "warn": logging.WARNING,
          "error": logging.ERROR, "critical": logging.CRITICAL, "fatal": logging.CRITICAL}


def level_of(name: str) -> int:
    try:
        return LEVELS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown log level {name!r}; use one of {', '.join(LEVELS)}") from None


def setup(level: str = "warning") -> None:
    """Configure the root logger once; called only by the command line."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level_of(level))
    for noisy in ("asyncio",):
        logging.getLogger(noisy).setLevel(logging.WARNING)

"""A Lamport clock, as kombu's ``LamportClock``: remote control replies and events share one per worker."""

from __future__ import annotations

from typing import Any


class LamportClock:
    """Logical time: ``forward()`` before sending, ``adjust(other)`` on receiving."""

    def __init__(self, initial: int = 0) -> None:
        self.value = initial

    def forward(self) -> int:
        """Tick for an outgoing message and return the new time."""
        self.value += 1
        return self.value

    def adjust(self, other: Any) -> int:
        """Merge a received clock value (non-numbers are ignored) and return the new time."""
        try:
            seen = int(other)
        except (TypeError, ValueError):
            seen = 0
        self.value = max(self.value, seen) + 1
        return self.value

    def __str__(self) -> str:
        return str(self.value)

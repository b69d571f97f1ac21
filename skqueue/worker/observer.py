"""Hooks the worker calls as deliveries move through it (events for monitors, for instance).

Observers run on the event loop and must not block: queue the work and return.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from skqueue.worker.execute import Outcome
    from skqueue.worker.worker import Delivery


class Observer(Protocol):
    def task_received(self, delivery: Delivery) -> None: ...

    def task_started(self, delivery: Delivery) -> None: ...

    def task_finished(self, delivery: Delivery, outcome: Outcome) -> None:
        """SUCCESS, FAILURE, RETRY or REVOKED (terminated) after running."""

    def task_revoked(self, delivery: Delivery, reason: str, *, expired: bool, terminated: bool) -> None:
        """Not run: revoked or expired before it started."""

    def task_rejected(self, delivery: Delivery, *, requeue: bool) -> None: ...


class Observers:
    """Fans each call out to every registered observer."""

    def __init__(self, observers: list[Any] | None = None) -> None:
        self.observers: list[Observer] = list(observers or [])

    def add(self, observer: Observer) -> None:
        self.observers.append(observer)

    def task_received(self, delivery: Delivery) -> None:
        for observer in self.observers:
            observer.task_received(delivery)

    def task_started(self, delivery: Delivery) -> None:
        for observer in self.observers:
            observer.task_started(delivery)

    def task_finished(self, delivery: Delivery, outcome: Outcome) -> None:
        for observer in self.observers:
            observer.task_finished(delivery, outcome)

    def task_revoked(self, delivery: Delivery, reason: str, *, expired: bool, terminated: bool) -> None:
        for observer in self.observers:
            observer.task_revoked(delivery, reason, expired=expired, terminated=terminated)

    def task_rejected(self, delivery: Delivery, *, requeue: bool) -> None:
        for observer in self.observers:
            observer.task_rejected(delivery, requeue=requeue)

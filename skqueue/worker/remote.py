"""The components that make a worker visible to Celery's tools: events and remote control."""

from __future__ import annotations

from skqueue.config import Settings
from skqueue.protocol.clock import LamportClock
from skqueue.worker.control import RemoteControl
from skqueue.worker.events import EventDispatcher, WorkerEvents
from skqueue.worker.state import WorkerOptions
from skqueue.worker.worker import Component


def remote_components(settings: Settings, options: WorkerOptions) -> list[Component]:
    """Worker events (with the task-event observer) and, unless turned off, the remote control; both
    stamp their messages with one Lamport clock, as a Celery worker's ``app.clock``."""
    clock = LamportClock()
    dispatcher = EventDispatcher(options.hostname, clock,
                                 task_events=options.task_events or settings.worker_send_task_events,
                                 exchange=settings.event_exchange)
    events = WorkerEvents(dispatcher, heartbeat=options.heartbeat, interval=options.heartbeat_interval)
    components: list[Component] = [events]
    if options.remote_control and settings.worker_enable_remote_control:
        components.append(RemoteControl(clock, events, namespace=settings.control_exchange))
    return components

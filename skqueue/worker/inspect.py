"""What ``celery inspect`` (and Flower) read about a worker, in the shapes a Celery worker answers with.

Every function takes a snapshot of the worker's public state; nothing here waits or writes.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import re
import sys
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from skqueue import __version__
from skqueue.protocol.clock import LamportClock
from skqueue.protocol.events import SW_IDENT

if TYPE_CHECKING:
    from skqueue.worker.state import Delivery
    from skqueue.worker.worker import Worker

# A Celery worker reports its ETA timer entries with this priority.
SCHEDULED_PRIORITY = 6
_RUSAGE_FIELDS = ("utime", "stime", "maxrss", "ixrss", "idrss", "isrss", "minflt", "majflt", "nswap", "inblock",
                  "oublock", "msgsnd", "msgrcv", "nsignals", "nvcsw", "nivcsw")


def request_info(worker: Worker, delivery: Delivery, *, active: bool = False) -> dict[str, Any]:
    """One delivery as Celery's ``Request.info()``."""
    message = delivery.message
    task = worker.app.tasks.get(message.task)
    return {
        "id": message.id,
        "name": message.shadow or message.task,
        "args": message.args,
        "kwargs": message.kwargs,
        "type": message.task,
        "hostname": worker.options.hostname,
        "time_start": (delivery.started or None) if active else None,
        # Early-ack tasks are acked when they start; acks_late ones only when they finish.
        "acknowledged": bool(active and task is not None and not task.acks_late),
        "delivery_info": {
            "exchange": message.exchange,
            "routing_key": message.routing_key or delivery.queue,
            "priority": message.priority,
            "redelivered": message.redelivered,
        },
        "worker_pid": os.getpid() if active else None,
    }


def active(worker: Worker) -> list[dict[str, Any]]:
    """Running now."""
    return [request_info(worker, d, active=True) for d in list(worker.running.values())]


def reserved(worker: Worker) -> list[dict[str, Any]]:
    """Received and due, waiting for a free slot (not running, not waiting for an ETA)."""
    return [request_info(worker, d) for d in list(worker.ready)]


def scheduled(worker: Worker) -> list[dict[str, Any]]:
    """Held until their ETA/countdown."""
    return [
        {"eta": d.message.eta.isoformat() if d.message.eta else None, "priority": SCHEDULED_PRIORITY,
         "request": request_info(worker, d)}
        for d in list(worker.scheduled.values())
    ]


def query(worker: Worker, ids: Iterable[str]) -> dict[str, list[Any]]:
    """Celery's ``query_task``: ``{id: [state, info]}`` for the ids this worker holds."""
    wanted = set(ids)
    found: dict[str, list[Any]] = {}
    groups = (("active", worker.running.values()), ("reserved", worker.ready),
              ("scheduled", worker.scheduled.values()))
    for state, deliveries in groups:
        for delivery in list(deliveries):
            if delivery.message.id in wanted:
                found[delivery.message.id] = [state, request_info(worker, delivery, active=state == "active")]
    return found


def registered(worker: Worker) -> list[str]:
    """The names of the tasks this worker runs, sorted."""
    return sorted(worker.app.tasks)


def active_queues(worker: Worker) -> list[dict[str, Any]]:
    """The consumed queues as kombu's ``Queue.as_dict(recurse=True)`` (each on its own direct exchange)."""
    return [_queue_dict(name) for name in worker.queues]


def _queue_dict(name: str) -> dict[str, Any]:
    exchange = {"name": name, "type": "direct", "arguments": None, "durable": True, "passive": False,
                "auto_delete": False, "delivery_mode": None, "no_declare": False}
    return {"name": name, "exchange": exchange, "routing_key": name, "queue_arguments": None,
            "binding_arguments": None, "consumer_arguments": None, "durable": True, "exclusive": False,
            "auto_delete": False, "no_ack": False, "alias": None, "bindings": [], "no_declare": None,
            "expires": None, "message_ttl": None, "max_length": None, "max_length_bytes": None,
            "max_priority": None}


def stats(worker: Worker, clock: LamportClock) -> dict[str, Any]:
    """Celery's ``stats`` reply (``pool.processes`` is what celery-exporter counts as concurrency)."""
    conf = worker.settings
    pid = os.getpid()
    return {
        "total": dict(worker.stats.by_task),
        "pid": pid,
        "clock": str(clock.value),
        "uptime": round(time.time() - worker.started_at),
        "pool": {
            "implementation": SW_IDENT,
            "max-concurrency": worker.options.concurrency,
            "processes": [pid],
            "max-tasks-per-child": getattr(worker.options, "max_tasks_per_child", None) or "N/A",
            "put-guarded-by-semaphore": False,
            "timeouts": [conf.task_soft_time_limit or 0, conf.task_time_limit or 0],
        },
        "broker": broker_info(worker),
        "prefetch_count": worker.max_inflight,
        "rusage": rusage(),
        "skqueue": counters(worker),
    }


def counters(worker: Worker) -> dict[str, int]:
    """skqueue's own counters (extra keys; Celery tools ignore them)."""
    counts = {f.name: getattr(worker.stats, f.name) for f in dataclasses.fields(worker.stats)
              if isinstance(getattr(worker.stats, f.name), int)}
    counts.update(running=len(worker.running), reserved=len(worker.ready), scheduled=len(worker.scheduled),
                  held=len(worker.holding))
    return counts


def broker_info(worker: Worker) -> dict[str, Any]:
    """The broker connection as kombu's ``Connection.info()`` describes it (never the password)."""
    kwargs: Mapping[str, Any] = getattr(worker.broker.client.connection_pool, "connection_kwargs", {})
    return {
        "hostname": kwargs.get("host") or kwargs.get("path"),
        "userid": kwargs.get("username"),
        "virtual_host": str(kwargs.get("db", 0)),
        "port": kwargs.get("port"),
        "insist": False,
        "ssl": "ssl_cert_reqs" in kwargs,
        "transport": "redis",
        "connect_timeout": kwargs.get("socket_connect_timeout"),
        "transport_options": json_safe(dataclasses.asdict(worker.settings.broker_transport_options)),
        "login_method": None,
        "uri_prefix": None,
        "heartbeat": 0,
        "failover_strategy": "round-robin",
        "alternates": [],
    }


def rusage() -> dict[str, Any] | str:
    """This process's resource usage, as ``getrusage`` reports it."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Windows
        return "N/A"
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {name: getattr(usage, f"ru_{name}") for name in _RUSAGE_FIELDS}


def conf(worker: Worker) -> dict[str, Any]:
    """The worker's settings under their Celery names, JSON-safe, URL passwords hidden."""
    settings = worker.settings
    table = {f.name: json_safe(getattr(settings, f.name)) for f in dataclasses.fields(settings)}
    for name, value in table.items():
        if _SECRET.search(name) and value:
            table[name] = "********"
        elif isinstance(value, str) and "://" in value:
            table[name] = redact(value)
    return table


# Settings whose values never leave the worker (Flower and `celery inspect conf` show this reply).
_SECRET = re.compile(r"secret|password|passwd|token|private|key$", re.IGNORECASE)


def report(worker: Worker) -> str:
    """A short ``celery report``-style description of this worker."""
    return "\n".join([
        f"software -> {SW_IDENT}:{__version__} (Celery-compatible worker) {platform.python_implementation()} "
        f"{platform.python_version()}",
        f"platform -> system:{platform.system()} arch:{platform.machine()} kernel version:{platform.release()}",
        f"app -> {worker.app.main} ({len(worker.app.tasks)} tasks) node:{worker.options.hostname} "
        f"pid:{os.getpid()}",
        f"executable -> {sys.executable}",
        f"broker_url: {redact(worker.settings.broker_url or 'embedded')}",
        f"result_backend: {redact(worker.settings.result_backend or 'disabled')}",
        f"queues: {', '.join(worker.queues)}",
    ])


def json_safe(value: Any) -> Any:
    """``value`` with containers copied and anything JSON cannot carry replaced by its ``repr``."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return json_safe(dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(item) for item in value]
    return repr(value)


def redact(url: str) -> str:
    """Hide the credentials of a URL (``redis://:secret@host`` -> ``redis://***@host``)."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
    return url

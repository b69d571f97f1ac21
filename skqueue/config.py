"""Typed settings under Celery's names, read from a config object and the environment.

Precedence, lowest first: defaults, ``App(**settings)``, ``config_from_object``, ``CELERY_<NAME>``
environment variables, ``SKQUEUE_<NAME>`` environment variables, command-line flags. Nothing here reads
the environment at import time: :func:`load_environ` is called by the CLI and by ``App.config_from_env``.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from skqueue.errors import ConfigError

log = logging.getLogger("skqueue.config")

DEFAULT_SEP = "\x06\x16"
DEFAULT_PRIORITY_STEPS = (0, 3, 6, 9)


@dataclass(frozen=True, slots=True)
class TransportOptions:
    """kombu's Redis transport options that change key names or timing; must match the clients'."""

    sep: str = DEFAULT_SEP
    priority_steps: tuple[int, ...] = DEFAULT_PRIORITY_STEPS
    visibility_timeout: float = 3600.0
    global_keyprefix: str = ""
    queue_order_strategy: str = "round_robin"
    unacked_key: str = "unacked"
    unacked_index_key: str = "unacked_index"
    unacked_mutex_key: str = "unacked_mutex"
    unacked_mutex_expire: float = 300.0
    polling_interval: float = 1.0

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> TransportOptions:
        data = dict(data or {})
        known = {f.name for f in dataclasses.fields(cls)}
        ignored = {"ack_emulation", "fanout_prefix", "fanout_patterns", "socket_timeout", "socket_connect_timeout",
                   "socket_keepalive", "retry_on_timeout", "max_connections", "health_check_interval",
                   "client_name", "unacked_restore_limit", "unacked_restore_interval", "unacked_restore_throttle",
                   "max_retries", "interval_start", "interval_step", "interval_max", "body_encoding"}
        unknown = set(data) - known - ignored
        if unknown:
            log.warning("Unknown broker transport option(s) ignored: %s", ", ".join(sorted(unknown)))
        if data.get("ack_emulation") is False:
            raise ConfigError("broker_transport_options ack_emulation=False is not supported: skqueue always acks")
        values = {k: v for k, v in data.items() if k in known}
        if "priority_steps" in values:
            values["priority_steps"] = tuple(sorted(int(s) for s in values["priority_steps"]))
        for name in ("visibility_timeout", "unacked_mutex_expire", "polling_interval"):
            if name in values:
                values[name] = float(values[name])
        strategy = values.get("queue_order_strategy", "round_robin")
        if strategy not in ("round_robin", "priority", "sorted"):
            raise ConfigError(f"queue_order_strategy must be round_robin, priority or sorted, not {strategy!r}")
        return cls(**values)


def _seconds(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, timedelta):
        return value.total_seconds()
    return float(value)


@dataclass(frozen=True, slots=True)
class Settings:
    """The settings skqueue honours, named as Celery names them (lower case, no namespace)."""

    broker_url: str | None = None
    result_backend: str | None = None
    task_routes: Any = None
    task_default_queue: str = "celery"
    task_default_priority: int | None = None
    task_acks_late: bool = False
    task_acks_on_failure_or_timeout: bool = True
    task_reject_on_worker_lost: bool = False
    task_track_started: bool = False
    task_ignore_result: bool = False
    task_time_limit: float | None = None
    task_soft_time_limit: float | None = None
    task_serializer: str = "json"
    result_serializer: str = "json"
    accept_content: tuple[str, ...] = ("json",)
    result_expires: float | None = 86400.0
    result_extended: bool = False
    result_chord_expires: float | None = None  # Celery 5.7: chord keys' expiry; None = result_expires
    timezone: str = "UTC"
    enable_utc: bool = True
    worker_concurrency: int | None = None
    worker_prefetch_multiplier: int = 4
    worker_send_task_events: bool = False
    worker_enable_remote_control: bool = True
    control_exchange: str = "celery"
    event_exchange: str = "celeryev"
    worker_lost_timeout: float = 30.0  # skqueue: a worker silent this long is dead; its deliveries return
    worker_poison_deliveries: int = 3  # skqueue: deliveries that may kill their worker before dead-lettering
    broker_transport_options: TransportOptions = field(default_factory=TransportOptions)
    result_backend_transport_options: Mapping[str, Any] = field(default_factory=dict)
    skqueue_home: str = ".skqueue"
    # skqueue: chord bookkeeping protocol, "auto" (Celery 5.7's, readable with every client), "5.3" (for
    # fleets with Celery 5.3-5.6 workers) or "5.7"; see skqueue.broker.chords
    skqueue_chord_protocol: str = "auto"
    # Celery's periodic task schedule, read by ``skqueue scheduler`` (see skqueue.scheduler.entries)
    beat_schedule: Mapping[str, Any] | None = None
    beat_lease_seconds: float = 15.0  # skqueue: a dead scheduler leader is replaced within this time
    # The monitoring API (``skqueue api``): JWT bearer auth, HS256 with ``jwt_secret`` and/or RS256 with
    # ``jwt_public_key`` (PEM text or a file path); ``jwt_staff_claim`` must be true for commands.
    jwt_secret: str | None = None
    jwt_public_key: str | None = None
    jwt_staff_claim: str = "is_staff"
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    api_metrics_auth: str = "token"  # "none", "token" (any valid token) or "staff"
    api_health_task: str = "dashboard.tasks.debug_task"  # what the health check's worker round trip runs
    api_health_timeout: float = 10.0
    api_max_value_chars: int = 2000  # longer args, results and tracebacks are cut with a marker
    # The SenangKira dashboard tasks (skqueue.dashboard). database_url None: an SQLite file in skqueue_home;
    # export_dir None: <skqueue_home>/exports; smtp_host None: notifications are stored, not e-mailed.
    database_url: str | None = None
    export_dir: str | None = None
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_use_tls: bool = False  # STARTTLS
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_from: str = "noreply@senangkira.com"
    smtp_timeout: float = 30.0
    dashboard_cache_ttl: float = 1800.0
    dashboard_cache_refresh_ahead: float = 300.0  # warm recomputes entries with less time than this left

    def tz(self) -> tzinfo:
        try:
            return ZoneInfo(self.timezone or "UTC")
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ConfigError(f"unknown timezone {self.timezone!r}") from exc

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes`` (raw values, coerced like any other source)."""
        return merge(self, changes, source="arguments")


# Celery settings that are valid but do nothing on the worker side of skqueue (client-side or not
# applicable); they are accepted silently so an existing settings module loads unchanged.
_ACCEPTED = frozenset(
    {
        "task_send_sent_event", "task_create_missing_queues", "task_default_exchange",
        "task_default_exchange_type", "task_default_routing_key", "task_default_delivery_mode",
        "task_compression", "task_protocol", "broker_connection_retry_on_startup", "broker_connection_retry",
        "broker_connection_max_retries", "broker_pool_limit", "broker_heartbeat", "result_backend_always_retry",
        "result_accept_content", "worker_hijack_root_logger", "worker_redirect_stdouts",
        "worker_log_color", "beat_scheduler", "beat_schedule_filename", "task_always_eager",
        "task_eager_propagates", "task_store_eager_result", "result_cache_max", "redis_max_connections",
        "redis_socket_timeout", "redis_socket_connect_timeout", "redis_retry_on_timeout",
        "redis_socket_keepalive", "redis_backend_health_check_interval", "worker_disable_rate_limits",
        "task_inherit_parent_priority", "task_queue_max_priority", "result_persistent",
    }
)

_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}
_ALIASES = {"broker": "broker_url", "backend": "result_backend", "home": "skqueue_home",
            "chord_protocol": "skqueue_chord_protocol"}


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off", ""):
            return False
        raise ConfigError(f"expected a boolean, got {value!r}")
    return bool(value)


def _maybe_json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"expected JSON, got {value!r}") from exc
    return value


def _optional_float(value: Any) -> float | None:
    if isinstance(value, str) and value.strip().lower() in ("", "none", "null"):
        return None
    return _seconds(value)


def _optional_int(value: Any) -> int | None:
    return None if value is None or value == "" else int(value)


def _content(value: Any) -> tuple[str, ...]:
    items = _maybe_json(value) if isinstance(value, str) and value.startswith("[") else value
    if isinstance(items, str):
        items = [part.strip() for part in items.split(",")]
    return tuple(str(item) for item in items)


# Celery 5.3 to 5.6 keep chords alike.
_CHORD_PROTOCOLS = {"auto": "auto", "5.3": "5.3", "5.4": "5.3", "5.5": "5.3", "5.6": "5.3", "5.7": "5.7"}


_COERCE: dict[str, Callable[[Any], Any]] = {
    "task_routes": _maybe_json,
    "task_default_priority": _optional_int,
    "worker_concurrency": _optional_int,
    "worker_lost_timeout": float,
    "worker_poison_deliveries": int,
    "worker_prefetch_multiplier": int,
    "result_expires": _optional_float,
    "result_chord_expires": _optional_float,
    "skqueue_chord_protocol": lambda v: _CHORD_PROTOCOLS.get(str(v).strip().lower(), str(v)),
    "task_time_limit": _optional_float,
    "task_soft_time_limit": _optional_float,
    "accept_content": _content,
    "broker_transport_options": lambda v: TransportOptions.from_mapping(_maybe_json(v)),
    "result_backend_transport_options": lambda v: dict(_maybe_json(v) or {}),
    "beat_schedule": lambda v: None if v is None else dict(_maybe_json(v)),
    "beat_lease_seconds": float,
    "smtp_port": int,
    "smtp_timeout": float,
    "dashboard_cache_ttl": float,
    "dashboard_cache_refresh_ahead": float,
    "api_health_timeout": float,
    "api_max_value_chars": int,
}


def _coerce(name: str, value: Any) -> Any:
    if name in _COERCE:
        if isinstance(value, TransportOptions):
            return value
        return _COERCE[name](value)
    kind = _FIELDS[name].type
    if kind == "bool":
        return _as_bool(value)
    if kind in {"str", "str | None"}:
        return None if value is None and kind == "str | None" else str(value)
    return value


def _validate(settings: Settings) -> Settings:
    for name in ("task_serializer", "result_serializer"):
        if getattr(settings, name) != "json":
            raise ConfigError(f"{name}={getattr(settings, name)!r}: skqueue only speaks JSON")
    if settings.worker_prefetch_multiplier < 1:
        raise ConfigError("worker_prefetch_multiplier must be at least 1")
    if settings.skqueue_chord_protocol not in ("auto", "5.3", "5.7"):
        raise ConfigError(f"skqueue_chord_protocol must be auto, 5.3 (Celery 5.3-5.6) or 5.7, not "
                          f"{settings.skqueue_chord_protocol!r}")
    if settings.api_metrics_auth not in ("none", "token", "staff"):
        raise ConfigError(f"api_metrics_auth must be none, token or staff, not {settings.api_metrics_auth!r}")
    settings.tz()
    return settings


def merge(base: Settings, values: Mapping[str, Any], *, source: str) -> Settings:
    """Apply ``values`` (setting name -> raw value) to ``base``; unknown names are reported, not dropped."""
    changes: dict[str, Any] = {}
    unknown: list[str] = []
    for raw_name, value in values.items():
        name = _ALIASES.get(raw_name, raw_name)
        if name in _FIELDS:
            try:
                changes[name] = _coerce(name, value)
            except (ValueError, TypeError) as exc:
                raise ConfigError(f"{source}: bad value for {raw_name}: {exc}") from exc
        elif name not in _ACCEPTED:
            unknown.append(raw_name)
    if unknown:
        log.warning("%s: unknown setting(s) not used by skqueue: %s", source, ", ".join(sorted(unknown)))
    return _validate(dataclasses.replace(base, **changes)) if changes else base


def _resolve_object(obj: Any) -> Any:
    if not isinstance(obj, str):
        return obj
    module_name, _, attr = obj.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import settings object {obj!r}: {exc}") from exc
    return getattr(module, attr) if attr else module


def _items(obj: Any) -> Iterable[tuple[str, Any]]:
    if isinstance(obj, Mapping):
        return obj.items()
    return ((name, getattr(obj, name)) for name in dir(obj) if not name.startswith("_"))


def read_object(obj: Any, namespace: str | None = "CELERY") -> dict[str, Any]:
    """Setting values found on ``obj`` (module, class, mapping or dotted path), keyed by Celery name.

    With ``namespace="CELERY"`` only ``CELERY_*`` names are read (Django style); with ``None`` the
    lower-case Celery names are read.
    """
    target = _resolve_object(obj)
    prefix = f"{namespace}_" if namespace else ""
    found: dict[str, Any] = {}
    for name, value in _items(target):
        if prefix:
            if name.startswith(prefix):
                found[name[len(prefix):].lower()] = value
        elif name.islower() and (not callable(value) or name in _FIELDS or name in _ACCEPTED):
            found[name] = value
    return found


def load_environ(environ: Mapping[str, str]) -> dict[str, Any]:
    """Settings from ``CELERY_<NAME>`` and ``SKQUEUE_<NAME>`` variables; the ``SKQUEUE_`` one wins."""
    found: dict[str, Any] = {}
    for prefix in ("CELERY_", "SKQUEUE_"):
        for name in list(_FIELDS) + list(_ALIASES):
            key = prefix + name.upper()
            if key in environ:
                found[_ALIASES.get(name, name)] = environ[key]
    if "SKQUEUE_HOME" in environ:
        found["skqueue_home"] = environ["SKQUEUE_HOME"]
    return found


def from_environ(base: Settings, environ: Mapping[str, str] | None = None) -> Settings:
    return merge(base, load_environ(os.environ if environ is None else environ), source="environment")

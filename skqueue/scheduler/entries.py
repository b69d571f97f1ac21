"""Schedule entries read from ``beat_schedule`` (``CELERY_BEAT_SCHEDULE``), in Celery's shape plus
skqueue's own per-entry options. Pure: parsing and validation only.

::

    CELERY_BEAT_SCHEDULE = {
        "refresh-dashboard-cache-hourly": {
            "task": "dashboard.tasks.refresh_dashboard_cache",
            "schedule": crontab(minute=0),           # or "0 * * * *", or 3600, or timedelta(hours=1)
            "args": (), "kwargs": {},
            "options": {"queue": "high_priority", "priority": 0, "expires": 3000},
            # skqueue's options (a schedule using them is no longer readable by celery beat):
            "catch_up": "latest",                    # after downtime: "skip", "latest" or "all"
            "catch_up_window": 86400,                # seconds; older missed firings are never sent
            "jitter": 0,                             # seconds of random delay (the same in every process)
            "overlap": "allow",                      # "skip": not while the previous run is unfinished
            "timezone": "Asia/Kuala_Lumpur",         # default: the ``timezone`` setting
        },
    }
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from skqueue.app import App
from skqueue.errors import ConfigError
from skqueue.protocol import tagged_json
from skqueue.scheduler.cron import Cron, Interval, parse_schedule
from skqueue.scheduler.senangkira import DEFAULT_SCHEDULE

log = logging.getLogger("skqueue.scheduler")

CATCH_UP = ("skip", "latest", "all")
OVERLAP = ("allow", "skip")
DEFAULT_CATCH_UP_WINDOW = 86400.0
_CELERY_KEYS = frozenset({"task", "schedule", "args", "kwargs", "options", "relative"})
_SKQUEUE_KEYS = frozenset({"catch_up", "catch_up_window", "jitter", "overlap", "timezone"})
_OPTIONS = frozenset({"queue", "priority", "expires", "time_limit", "soft_time_limit", "headers", "shadow",
                      "ignore_result"})


@dataclass(frozen=True, slots=True)
class PublishOptions:
    """``options`` of an entry: how its messages are sent (as ``apply_async`` takes them)."""

    queue: str | None = None
    priority: int | None = None
    expires: float | None = None
    time_limit: float | None = None
    soft_time_limit: float | None = None
    headers: Mapping[str, Any] = field(default_factory=dict)
    shadow: str | None = None
    ignore_result: bool | None = None


@dataclass(frozen=True, slots=True)
class Entry:
    """One periodic task."""

    name: str
    task: str
    schedule: Interval | Cron
    tz: tzinfo
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    options: PublishOptions = field(default_factory=PublishOptions)
    catch_up: str = "latest"
    catch_up_window: float = DEFAULT_CATCH_UP_WINDOW
    jitter: float = 0.0
    overlap: str = "allow"


def _seconds(name: str, value: Any, *, positive: bool = False) -> float:
    number = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(number, bool) or not isinstance(number, int | float):
        raise ConfigError(f"{name} must be a number of seconds, not {value!r}")
    if number < 0 or (positive and number == 0):
        raise ConfigError(f"{name} must be {'positive' if positive else 'zero or more'}, not {value!r}")
    return float(number)


def _zone(name: Any, default: tzinfo) -> tzinfo:
    if name is None:
        return default
    try:
        return ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"unknown timezone {name!r}") from exc


def _queue(value: Any) -> str | None:
    name = getattr(value, "name", value)  # a kombu Queue is accepted by its name
    return str(name) if name else None


def _options(raw: Any) -> PublishOptions:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"options must be a mapping, not {raw!r}")
    unknown = set(raw) - _OPTIONS
    if unknown:
        raise ConfigError(f"unsupported option(s) {', '.join(sorted(unknown))} "
                          f"(supported: {', '.join(sorted(_OPTIONS))})")
    limits = {name: _seconds(name, raw[name]) if raw.get(name) is not None else None
              for name in ("expires", "time_limit", "soft_time_limit")}
    priority = raw.get("priority")
    headers = raw.get("headers") or {}
    if not isinstance(headers, Mapping):
        raise ConfigError(f"options.headers must be a mapping, not {headers!r}")
    return PublishOptions(
        queue=_queue(raw.get("queue")), priority=None if priority is None else int(priority),
        headers=dict(headers), shadow=raw.get("shadow"), ignore_result=raw.get("ignore_result"), **limits,
    )


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")
    return str(value)


def _check_keys(raw: Mapping[str, Any]) -> None:
    unknown = set(raw) - _CELERY_KEYS - _SKQUEUE_KEYS
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(sorted(unknown))}")
    if not isinstance(raw.get("task"), str) or not raw["task"]:
        raise ConfigError("'task' (the task name) is required")
    if raw.get("schedule") is None:
        raise ConfigError("'schedule' is required")


def _arguments(raw: Mapping[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    args, kwargs = raw.get("args") or (), raw.get("kwargs") or {}
    if not isinstance(args, list | tuple) or not isinstance(kwargs, Mapping):
        raise ConfigError("'args' must be a list or tuple and 'kwargs' a mapping")
    try:
        tagged_json.dumps([list(args), dict(kwargs)])
    except TypeError as exc:
        raise ConfigError(f"args/kwargs cannot be sent as JSON: {exc}") from exc
    return tuple(args), dict(kwargs)


def parse_entry(name: str, raw: Any, default_tz: tzinfo) -> Entry:
    """One entry; raises :class:`ConfigError` naming the entry and what is wrong with it."""
    try:
        if not isinstance(raw, Mapping):
            raise ConfigError(f"must be a mapping, not {raw!r}")
        _check_keys(raw)
        tz = _zone(raw.get("timezone"), default_tz)
        args, kwargs = _arguments(raw)
        entry = Entry(
            name=str(name), task=raw["task"], schedule=parse_schedule(raw["schedule"], tz), tz=tz,
            args=args, kwargs=kwargs, options=_options(raw.get("options") or {}),
            catch_up=_choice("catch_up", raw.get("catch_up", "latest"), CATCH_UP),
            catch_up_window=_seconds("catch_up_window", raw.get("catch_up_window", DEFAULT_CATCH_UP_WINDOW),
                                     positive=True),
            jitter=_seconds("jitter", raw.get("jitter", 0)),
            overlap=_choice("overlap", raw.get("overlap", "allow"), OVERLAP),
        )
    except ConfigError as exc:
        raise ConfigError(f"beat_schedule entry {name!r}: {exc}") from exc
    if entry.overlap == "skip" and entry.options.ignore_result:
        raise ConfigError(f"beat_schedule entry {name!r}: overlap 'skip' needs results (ignore_result is set)")
    return entry


def parse_entries(raw: Mapping[str, Any] | None, default_tz: tzinfo) -> list[Entry]:
    """Every entry of a ``beat_schedule`` mapping, in its order."""
    if raw is None:
        return []
    if not isinstance(raw, Mapping):
        raise ConfigError(f"beat_schedule must be a mapping of entry name to entry, not {raw!r}")
    return [parse_entry(name, value, default_tz) for name, value in raw.items()]


def is_dashboard_app(app: App) -> bool:
    """Whether ``app`` registers the SenangKira dashboard tasks the default schedule sends."""
    return any(entry["task"] in app.tasks for entry in DEFAULT_SCHEDULE.values())


def schedule_of(app: App) -> list[Entry]:
    """The app's entries: its ``beat_schedule``, or SenangKira's default schedule for the dashboard app."""
    raw = app.conf.beat_schedule
    if not raw and is_dashboard_app(app):
        log.info("No beat_schedule in the settings of %s: using SenangKira's default schedule", app.main)
        raw = DEFAULT_SCHEDULE
    return parse_entries(raw, app.conf.tz())

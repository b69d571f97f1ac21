"""``App``: the task registry and settings a worker is built from (what ``-A module:attr`` names)."""

from __future__ import annotations

import fnmatch
import importlib
import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload

from skqueue import config
from skqueue.config import Settings
from skqueue.errors import ConfigError, NotRegistered

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class TaskOptions:
    """Per-task options; ``None`` means "use the app setting"."""

    queue: str | None = None
    bind: bool = False
    ignore_result: bool | None = None
    acks_late: bool | None = None
    track_started: bool | None = None
    reject_on_worker_lost: bool | None = None
    time_limit: float | None = None
    soft_time_limit: float | None = None
    priority: int | None = None
    max_retries: int | None = 3
    default_retry_delay: float = 180.0
    autoretry_for: tuple[type[BaseException], ...] = ()
    dont_autoretry_for: tuple[type[BaseException], ...] = ()
    retry_kwargs: Mapping[str, Any] = field(default_factory=dict)
    retry_backoff: bool | float = False
    retry_backoff_max: float = 600.0
    retry_jitter: bool = True
    extra: Mapping[str, Any] = field(default_factory=dict)


class Task:
    """A registered task. Calling it calls the function directly (as Celery's ``Task.__call__`` does)."""

    def __init__(self, app: App, fn: Callable[..., Any], name: str, options: TaskOptions) -> None:
        self.app = app
        self.fn = fn
        self.name = name
        self.options = options
        self.is_async = inspect.iscoroutinefunction(fn)
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<@task: {self.name} of {self.app.main}>"

    @property
    def ignore_result(self) -> bool:
        own = self.options.ignore_result
        return self.app.conf.task_ignore_result if own is None else own

    @property
    def acks_late(self) -> bool:
        own = self.options.acks_late
        return self.app.conf.task_acks_late if own is None else own

    @property
    def track_started(self) -> bool:
        own = self.options.track_started
        return self.app.conf.task_track_started if own is None else own

    @property
    def reject_on_worker_lost(self) -> bool:
        own = self.options.reject_on_worker_lost
        return self.app.conf.task_reject_on_worker_lost if own is None else own

    @property
    def time_limits(self) -> tuple[float | None, float | None]:
        """(hard, soft) seconds from the task's options, else the app settings."""
        hard = self.options.time_limit if self.options.time_limit is not None else self.app.conf.task_time_limit
        soft = self.options.soft_time_limit
        return hard, soft if soft is not None else self.app.conf.task_soft_time_limit


Router = Callable[[str], dict[str, Any] | None]


def _function_router(fn: Callable[..., Any]) -> Router:
    """A Celery router function ``(name, args, kwargs, options) -> route | None``."""

    def route(name: str) -> dict[str, Any] | None:
        found = fn(name, (), {}, {})
        if found is None:
            return None
        return {"queue": found} if isinstance(found, str) else dict(found)

    return route


def _pattern(pattern: Any) -> Callable[[str], bool] | None:
    """A matcher for a glob (``*``) or regex key, or ``None`` for an exact task name (Celery's MapRoute)."""
    if isinstance(pattern, re.Pattern):
        regex: re.Pattern[str] = pattern
        return lambda name: regex.match(name) is not None
    text = str(pattern)
    if "*" in text:
        return lambda name: fnmatch.fnmatchcase(name, text)
    return None


def _import_router(path: str) -> Router:
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    try:
        fn = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigError(f"cannot import router {path!r}: {exc}") from exc
    return _function_router(fn)


def _compile_routes(routes: Any) -> list[Router]:
    """Turn ``task_routes`` into routers, as Celery accepts it: a mapping, or a list whose items are
    mappings, lists of ``(pattern, route)`` pairs, router functions or dotted paths to them."""
    if routes is None:
        return []
    items = routes if isinstance(routes, list | tuple) else [routes]
    routers: list[Router] = []
    for item in items:
        if isinstance(item, Mapping):
            routers.append(_mapping_router(list(item.items())))
        elif isinstance(item, list | tuple):
            routers.append(_mapping_router([tuple(pair) for pair in item]))
        elif isinstance(item, str):
            routers.append(_import_router(item))
        elif callable(item):
            routers.append(_function_router(item))
        else:
            raise ConfigError(f"task_routes entry {item!r} is not a mapping, a list of pairs or a router")
    return routers


def _mapping_router(pairs: list[tuple[Any, Any]]) -> Router:
    """Exact task names first, then glob and regex patterns in order (Celery's MapRoute)."""
    exact: dict[str, dict[str, Any]] = {}
    patterns: list[tuple[Callable[[str], bool], dict[str, Any]]] = []
    for pattern, destination in pairs:
        target = {"queue": destination} if isinstance(destination, str) else dict(destination)
        matcher = _pattern(pattern)
        if matcher is None:
            exact.setdefault(str(pattern), target)
        else:
            patterns.append((matcher, target))

    def lookup(name: str) -> dict[str, Any] | None:
        if name in exact:
            return exact[name]
        for matches, target in patterns:
            if matches(name):
                return target
        return None

    return lookup


class App:
    """A set of tasks plus the settings shared with the Celery clients that send them.

    ``App("proj", broker_url=..., task_routes=...)`` takes settings under their Celery names.
    """

    def __init__(self, main: str = "skqueue", **settings: Any) -> None:
        self.main = main
        self.conf: Settings = config.merge(Settings(), settings, source=f"App({main!r})") if settings else Settings()
        self.tasks: dict[str, Task] = {}
        self._routers = _compile_routes(self.conf.task_routes)

    def __repr__(self) -> str:
        return f"<skqueue.App {self.main!r}: {len(self.tasks)} tasks>"

    def configure(self, settings: Settings) -> None:
        """Replace the settings (the CLI applies environment and flags this way)."""
        self.conf = settings
        self._routers = _compile_routes(settings.task_routes)

    def config_from_object(self, obj: Any, namespace: str | None = "CELERY") -> None:
        """Read Celery settings from a module, class, mapping or dotted path (Django's ``settings``)."""
        values = config.read_object(obj, namespace)
        self.configure(config.merge(self.conf, values, source=f"config_from_object({obj!r})"))

    def config_from_env(self, environ: Mapping[str, str] | None = None) -> None:
        self.configure(config.from_environ(self.conf, environ))

    @overload
    def task(self, fn: F, /) -> Task: ...

    @overload
    def task(self, fn: None = None, /, **options: Any) -> Callable[[Callable[..., Any]], Task]: ...

    def task(self, fn: Callable[..., Any] | None = None, /, **options: Any) -> Any:
        """Register ``fn`` (``async def`` or plain ``def``), with or without options."""
        if fn is not None:
            return self._register(fn, {})

        def decorator(func: Callable[..., Any]) -> Task:
            return self._register(func, options)

        return decorator

    def _register(self, fn: Callable[..., Any], options: dict[str, Any]) -> Task:
        options = dict(options)
        name = options.pop("name", None) or f"{fn.__module__}.{fn.__name__}"
        known = {f for f in TaskOptions.__dataclass_fields__ if f != "extra"}
        values = {k: v for k, v in options.items() if k in known}
        for option in ("autoretry_for", "dont_autoretry_for"):
            if option in values:
                values[option] = tuple(values[option])
        opts = TaskOptions(**values, extra={k: v for k, v in options.items() if k not in known})
        task = Task(self, fn, name, opts)
        self.tasks[name] = task
        return task

    def get_task(self, name: str) -> Task:
        try:
            return self.tasks[name]
        except KeyError:
            raise NotRegistered(name) from None

    def route(self, name: str) -> dict[str, Any]:
        """Routing options for task ``name``, in Celery's order: the task's own ``queue`` option wins over
        ``task_routes`` (Celery merges the route under the task's options), then the default queue."""
        task = self.tasks.get(name)
        if task is not None and task.options.queue:
            return {"queue": task.options.queue}
        for router in self._routers:
            found = router(name)
            if found:
                return dict(found)
        return {"queue": self.conf.task_default_queue}

    def queue_for(self, name: str) -> str:
        return str(self.route(name).get("queue") or self.conf.task_default_queue)

    def known_queues(self) -> list[str]:
        """The default queue, then every queue a registered task routes to, in first-seen order."""
        seen = [self.conf.task_default_queue]
        for name in self.tasks:
            queue = self.queue_for(name)
            if queue not in seen:
                seen.append(queue)
        return seen

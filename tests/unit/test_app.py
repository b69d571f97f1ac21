"""skqueue.app: task registration and routing. Routing is checked against where a real Celery client with
the same ``task_routes`` and task definitions publishes (captured in-process, no broker)."""

from __future__ import annotations

import re
from typing import Any, NamedTuple

import pytest

from skqueue.app import App, Task, TaskOptions
from skqueue.config import Settings
from skqueue.errors import ConfigError, NotRegistered
from tests.unit.conftest import CeleryClient


def add(x: int, y: int) -> int:
    return x + y


async def aadd(x: int, y: int) -> int:
    return x + y


def _router(name: str, args: Any, kwargs: Any, options: Any, task: Any = None, **kw: Any) -> dict[str, Any] | None:
    """A Celery router function (Celery's documented signature)."""
    if name.startswith("fn."):
        return {"queue": "fnq"}
    return None


def _string_router(name: str, args: Any, kwargs: Any, options: Any, task: Any = None, **kw: Any) -> str | None:
    return "strq" if name.endswith(".str") else None


# ---------------------------------------------------------------- registration


def test_bare_decorator_registers_under_module_and_function_name() -> None:
    app = App("t")
    task = app.task(add)
    assert isinstance(task, Task)
    assert task.name == f"{__name__}.add"
    assert app.tasks == {f"{__name__}.add": task}
    assert app.get_task(f"{__name__}.add") is task
    assert task(2, 3) == 5
    assert task.is_async is False
    assert task.__wrapped__ is add
    assert task.options == TaskOptions()


def test_async_function_is_detected() -> None:
    task = App("t").task(aadd)
    assert task.is_async is True
    assert task.name == f"{__name__}.aadd"


def test_decorator_with_options() -> None:
    app = App("t")
    task = app.task(name="proj.add", queue="math", bind=True, ignore_result=True, acks_late=True,
                    track_started=True, reject_on_worker_lost=True, time_limit=30, soft_time_limit=20,
                    priority=5, rate_limit="10/m", autoretry_for=(ValueError,))(add)
    assert task.name == "proj.add"
    assert "proj.add" in app.tasks
    assert f"{__name__}.add" not in app.tasks
    opts = task.options
    assert (opts.queue, opts.bind, opts.ignore_result, opts.acks_late) == ("math", True, True, True)
    assert (opts.track_started, opts.reject_on_worker_lost) == (True, True)
    assert (opts.time_limit, opts.soft_time_limit, opts.priority) == (30, 20, 5)
    assert opts.autoretry_for == (ValueError,)
    assert opts.extra == {"rate_limit": "10/m"}


def test_decorator_without_name_option_uses_default_name() -> None:
    task = App("t").task(queue="q")(add)
    assert task.name == f"{__name__}.add"
    assert task.options.queue == "q"


def test_reregistering_replaces() -> None:
    app = App("t")
    first = app.task(name="proj.x")(add)
    second = app.task(name="proj.x")(aadd)
    assert app.get_task("proj.x") is second is not first
    assert len(app.tasks) == 1


def test_unknown_task_raises_not_registered() -> None:
    app = App("t")
    with pytest.raises(NotRegistered) as info:
        app.get_task("proj.missing")
    assert isinstance(info.value, KeyError)
    assert str(info.value) == "proj.missing"


@pytest.mark.parametrize("attr", ["ignore_result", "acks_late", "track_started"])
def test_task_flags_fall_back_to_app_settings(attr: str) -> None:
    setting = {"ignore_result": "task_ignore_result", "acks_late": "task_acks_late",
               "track_started": "task_track_started"}[attr]
    app = App("t", **{setting: True})
    inherited = app.task(name="a")(add)
    overridden = app.task(name="b", **{attr: False})(add)
    assert getattr(inherited, attr) is True
    assert getattr(overridden, attr) is False
    app.configure(Settings())
    assert getattr(inherited, attr) is False


def test_app_settings_from_constructor() -> None:
    app = App("proj", broker_url="redis://h/0", task_default_queue="work")
    assert app.main == "proj"
    assert app.conf.broker_url == "redis://h/0"
    assert app.conf.task_default_queue == "work"
    assert App().conf == Settings()


# ---------------------------------------------------------------- routing

Routes = Any
TaskDefs = dict[str, str | None]  # task name -> its own ``queue`` option (None: no option)


class Case(NamedTuple):
    id: str
    routes: Routes
    tasks: TaskDefs
    name: str
    expected: str


ROUTING_CASES: list[Case] = [
    Case("exact", {"proj.add": {"queue": "math"}}, {}, "proj.add", "math"),
    Case("exact-miss", {"proj.add": {"queue": "math"}}, {}, "proj.sub", "default"),
    Case("exact-string-value", {"proj.add": "math"}, {}, "proj.add", "math"),
    Case("glob", {"proj.*": {"queue": "projq"}}, {}, "proj.tasks.add", "projq"),
    Case("glob-miss", {"proj.*": {"queue": "projq"}}, {}, "other.add", "default"),
    Case("glob-not-prefix", {"proj.*": "projq"}, {}, "myproj.add", "default"),
    Case("glob-middle", {"proj.*.heavy": "heavy"}, {}, "proj.reports.heavy", "heavy"),
    Case("glob-middle-miss", {"proj.*.heavy": "heavy"}, {}, "proj.reports.heavyish", "default"),
    Case("glob-string-value", {"*.add": "adders"}, {}, "x.add", "adders"),
    Case("regex", {re.compile(r"(video|image)\.tasks\..*"): {"queue": "media"}}, {}, "image.tasks.resize", "media"),
    Case("regex-miss", {re.compile(r"(video|image)\.tasks\..*"): {"queue": "media"}}, {}, "audio.tasks.x", "default"),
    Case("regex-anchored-at-start", {re.compile(r"tasks\."): "t"}, {}, "my.tasks.x", "default"),
    Case("regex-prefix-match", {re.compile(r"my\."): "mine"}, {}, "my.tasks.x", "mine"),
    Case("first-pattern-match-wins", {"a.*": "first", "a.b*": "second"}, {}, "a.bc", "first"),
    Case("router-function", _router, {}, "fn.work", "fnq"),
    Case("router-function-none", _router, {}, "other.work", "default"),
    Case("router-function-string", _string_router, {}, "x.str", "strq"),
    Case("list-function-then-map", [_router, {"x.*": "xq"}], {}, "x.y", "xq"),
    Case("list-function-first", [_router, {"fn.*": "mapq"}], {}, "fn.y", "fnq"),
    Case("list-first-map-wins", [{"p.add": "first"}, {"p.add": "second"}], {}, "p.add", "first"),
    Case("tuple", ({"p.add": "tq"},), {}, "p.add", "tq"),
    Case("task-queue-option", {"other.*": "o"}, {"p.own": "own"}, "p.own", "own"),
    Case("task-queue-option-no-routes", None, {"p.own": "own"}, "p.own", "own"),
    Case("registered-without-option", {"other.*": "o"}, {"p.plain": None}, "p.plain", "default"),
    Case("default", None, {}, "anything", "default"),
]

# Cases where skqueue and Celery disagree (see the test docstrings).
EXACT_BEATS_GLOB = Case("exact-beats-earlier-glob", {"proj.*": "globbed", "proj.add": "exact"}, {}, "proj.add",
                        "exact")
TASK_OPTION_BEATS_ROUTE = Case("task-option-beats-route", {"proj.*": "routed"}, {"proj.own": "own"}, "proj.own",
                               "own")
ROUTING_UNSUPPORTED: list[Case] = [
    Case("list-of-pairs", ([("feed.*", {"queue": "feeds"}), (re.compile(r"web\."), "web")],), {}, "feed.x",
         "feeds"),
    Case("dotted-router-string", (f"{__name__}._router",), {}, "fn.work", "fnq"),
]
ALL_CASES = [*ROUTING_CASES, EXACT_BEATS_GLOB, TASK_OPTION_BEATS_ROUTE, *ROUTING_UNSUPPORTED]


def _skqueue_queue(case: Case) -> str:
    app = App("t", task_default_queue="default", task_routes=case.routes)
    for task_name, queue in case.tasks.items():
        options: dict[str, Any] = {"name": task_name}
        if queue is not None:
            options["queue"] = queue
        app.task(**options)(add)
    return app.queue_for(case.name)


def _celery_queue(celery_client: CeleryClient, case: Case) -> str:
    capp = celery_client.app(task_routes=case.routes)
    for task_name, queue in case.tasks.items():
        options: dict[str, Any] = {"name": task_name}
        if queue is not None:
            options["queue"] = queue
        capp.task(**options)(add)
    if case.name in case.tasks:
        capp.tasks[case.name].apply_async((1, 2))
        return celery_client.last().queue
    return celery_client.send(capp, case.name, (1, 2)).queue


def _ids(cases: list[Case]) -> list[str]:
    return [case.id for case in cases]


@pytest.mark.parametrize("case", ROUTING_CASES, ids=_ids(ROUTING_CASES))
def test_routing(case: Case) -> None:
    assert _skqueue_queue(case) == case.expected


@pytest.mark.parametrize("case", ALL_CASES, ids=_ids(ALL_CASES))
def test_expected_routes_are_what_celery_does(celery_client: CeleryClient, case: Case) -> None:
    """The oracle for every expectation in this file: a Celery 5.7 client publishes to exactly that queue."""
    assert _celery_queue(celery_client, case) == case.expected


def test_exact_route_beats_an_earlier_glob() -> None:
    """Celery's MapRoute looks up the exact task name first and only then tries the patterns, whatever
    their order in the dict; skqueue's _mapping_router tries the entries in dict order."""
    assert _skqueue_queue(EXACT_BEATS_GLOB) == "exact"


def test_task_queue_option_beats_task_routes() -> None:
    """Celery's precedence: apply_async options > the task's own attributes (``queue=``) > task_routes
    (Router.route does ``lpmerge(route, options)``, and the task's queue is part of the options).
    """
    assert _skqueue_queue(TASK_OPTION_BEATS_ROUTE) == "own"


@pytest.mark.parametrize("case", ROUTING_UNSUPPORTED, ids=_ids(ROUTING_UNSUPPORTED))
def test_other_celery_route_forms(case: Case) -> None:
    assert _skqueue_queue(case) == case.expected


def test_route_returns_the_whole_route() -> None:
    app = App("t", task_routes={"p.add": {"queue": "q", "routing_key": "rk", "priority": 3}})
    assert app.route("p.add") == {"queue": "q", "routing_key": "rk", "priority": 3}
    assert app.route("p.other") == {"queue": "celery"}
    returned = app.route("p.add")
    returned["queue"] = "mutated"
    assert app.route("p.add")["queue"] == "q"


def test_route_without_queue_falls_back_to_default() -> None:
    app = App("t", task_default_queue="dq", task_routes={"p.add": {"routing_key": "rk"}})
    assert app.queue_for("p.add") == "dq"


def test_bad_task_routes_entry_is_config_error() -> None:
    with pytest.raises(ConfigError):
        App("t", task_routes=[42])


def test_router_function_gets_celery_arguments() -> None:
    seen: list[tuple[Any, ...]] = []

    def router(name: str, args: Any, kwargs: Any, options: Any, task: Any = None, **kw: Any) -> None:
        seen.append((name, args, kwargs, options))

    App("t", task_routes=router).queue_for("p.x")
    assert len(seen) == 1
    assert seen[0][0] == "p.x"


def test_configure_rebuilds_routes() -> None:
    app = App("t", task_routes={"p.add": "old"})
    assert app.queue_for("p.add") == "old"
    app.configure(Settings().replace(task_routes={"p.add": "new"}))
    assert app.queue_for("p.add") == "new"


# ---------------------------------------------------------------- known_queues


def _register(app: App, defs: list[tuple[str, str | None]]) -> None:
    for name, queue in defs:
        options: dict[str, Any] = {"name": name}
        if queue is not None:
            options["queue"] = queue
        app.task(**options)(add)


@pytest.mark.parametrize(
    ("default", "routes", "defs", "expected"),
    [
        ("default", None, [], ["default"]),
        ("celery", None, [("a", None)], ["celery"]),
        ("default", {"b": "q2", "d": "q1"}, [("a", "q1"), ("b", None), ("c", None), ("d", None), ("e", "q3")],
         ["default", "q1", "q2", "q3"]),
        ("default", {"x.*": "xq"}, [("x.1", None), ("y", "default"), ("x.2", None)], ["default", "xq"]),
    ],
)
def test_known_queues_order(default: str, routes: Routes, defs: list[tuple[str, str | None]],
                            expected: list[str]) -> None:
    app = App("t", task_default_queue=default, task_routes=routes)
    _register(app, defs)
    assert app.known_queues() == expected


def test_known_queues_follow_configure() -> None:
    app = App("t")
    _register(app, [("a", None)])
    assert app.known_queues() == ["celery"]
    app.configure(Settings().replace(task_default_queue="main", task_routes={"a": "aq"}))
    assert app.known_queues() == ["main", "aq"]


def test_repr() -> None:
    app = App("proj")
    task = app.task(name="p.add")(add)
    assert repr(app) == "<skqueue.App 'proj': 1 tasks>"
    assert repr(task) == "<@task: p.add of proj>"


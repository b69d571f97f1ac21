"""The ``skqueue`` command: parse arguments, build settings, call the right ``run_*``/``serve``."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import multiprocessing
import os
import sys
from collections.abc import Sequence
from typing import Any

from skqueue import logs
from skqueue.app import App
from skqueue.errors import ConfigError, SkqueueError

DEFAULT_APP = "skqueue.dashboard"


def load_app(target: str) -> App:
    """Import ``pkg.module[:attr]``; without ``attr`` take ``app``, ``celery`` or the only App in it."""
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import app module {module_name!r}: {exc}") from exc
    if attr:
        found: Any = getattr(module, attr, None)
    else:
        found = getattr(module, "app", None) or getattr(module, "celery", None)
        if not isinstance(found, App):
            apps = [value for value in vars(module).values() if isinstance(value, App)]
            found = apps[0] if len(apps) == 1 else None
    if not isinstance(found, App):
        raise ConfigError(f"{target!r} does not name a skqueue.App")
    return found


def _settings_from_args(app: App, args: argparse.Namespace) -> None:
    app.config_from_env(os.environ)
    overrides: dict[str, Any] = {}
    if getattr(args, "broker", None):
        overrides["broker_url"] = args.broker
    if getattr(args, "result_backend", None):
        overrides["result_backend"] = args.result_backend
    if overrides:
        app.configure(app.conf.replace(**overrides))


def _worker_options(app: App, args: argparse.Namespace) -> Any:
    from skqueue.worker.run import expand_hostname
    from skqueue.worker.worker import WorkerOptions

    queues = [q.strip() for q in args.queues.split(",") if q.strip()] if args.queues else app.known_queues()
    return WorkerOptions(
        queues=queues,
        concurrency=args.concurrency or app.conf.worker_concurrency or (os.cpu_count() or 1),
        prefetch_multiplier=args.prefetch_multiplier or app.conf.worker_prefetch_multiplier,
        hostname=expand_hostname(args.hostname), shutdown_timeout=args.shutdown_timeout, burst=args.burst,
        max_tasks_per_child=args.max_tasks_per_child, max_memory_per_child=args.max_memory_per_child,
        task_events=args.task_events, heartbeat=not args.without_heartbeat,
    )


def _cmd_worker(args: argparse.Namespace) -> int:
    from skqueue.worker.run import run_process, serve
    from skqueue.worker.supervisor import decode_spec

    app = load_app(args.app)
    _settings_from_args(app, args)
    options = _worker_options(app, args)
    if args.child:
        spec = decode_spec(args.child)
        multiprocessing.current_process().name = f"Worker-{spec.worker_id.rsplit(':', 2)[-2]}"
        run_process(serve(app, options, child=spec))
        return 0
    if args.burst or args.processes == 0:
        run_process(serve(app, options))
        return 0
    return asyncio.run(_supervise(app, args, options))


async def _supervise(app: App, args: argparse.Namespace, options: Any) -> int:
    from skqueue.worker.supervisor import Supervisor, encode_spec

    base = [sys.executable, "-m", "skqueue", *args.argv]

    def command(index: int, node: str, spec: Any) -> list[str]:
        return [*base, "-n", node, "--child", encode_spec(spec)]

    processes = args.processes or os.cpu_count() or 1
    supervisor = Supervisor(app, options.hostname, processes, options.concurrency, command,
                            kill_after=options.shutdown_timeout + 10)
    return await supervisor.run()


def _cmd_demo(args: argparse.Namespace) -> int:
    from skqueue.demo.run import main as run_demo

    return run_demo(home=args.home, keep=args.keep)


def _cmd_remote(args: argparse.Namespace) -> int:
    from skqueue.control_client import run_command

    app = load_app(args.app)
    _settings_from_args(app, args)
    arguments: dict[str, Any] = {}
    if args.method in ("revoke", "query_task"):
        if not args.ids:
            raise ConfigError(f"{args.method} needs at least one task id")
        arguments = {"task_id": args.ids} if args.method == "revoke" else {"ids": args.ids}
    if args.method == "revoke":
        arguments.update(terminate=args.terminate, signal=args.signal)
    destination = [d.strip() for d in args.destination.split(",") if d.strip()] if args.destination else None
    return run_command(app.conf, args.method, arguments, destination=destination, timeout=args.timeout,
                       as_json=args.json)


def _add_remote_parsers(sub: Any) -> None:
    from skqueue.control_client import CONTROL_COMMANDS, INSPECT_COMMANDS

    for name, commands, text in (("inspect", INSPECT_COMMANDS, "ask workers (skqueue or Celery) about their state"),
                                 ("control", CONTROL_COMMANDS, "send workers (skqueue or Celery) a command")):
        parser = sub.add_parser(name, help=text)
        parser.add_argument("method", choices=commands, metavar="COMMAND", help=", ".join(commands))
        parser.add_argument("ids", nargs="*", help="task ids (revoke, query_task)")
        parser.add_argument("-A", "--app", default=DEFAULT_APP, help="pkg.module[:attr] whose settings to use")
        parser.add_argument("--broker", help="redis://, rediss:// or unix:// URL (default: settings)")
        parser.add_argument("-d", "--destination", help="comma-separated node names (default: every node)")
        parser.add_argument("-t", "--timeout", type=float, default=1.0, help="seconds to wait for replies")
        parser.add_argument("-j", "--json", action="store_true", help="print the replies as JSON")
        if name == "control":
            parser.add_argument("--terminate", action="store_true", help="revoke: also stop the running task")
            parser.add_argument("--signal", help="revoke --terminate: signal name (Celery workers use it)")
        parser.set_defaults(func=_cmd_remote, terminate=False, signal=None)


def _cmd_dlq(args: argparse.Namespace) -> int:
    from skqueue import admin

    app = load_app(args.app)
    _settings_from_args(app, args)
    status, lines = asyncio.run(admin.dlq(app.conf, args.action, args.indexes, limit=args.limit, queue=args.queue))
    print("\n".join(lines))
    return status


def _cmd_purge(args: argparse.Namespace) -> int:
    from skqueue import admin

    app = load_app(args.app)
    _settings_from_args(app, args)
    queues = [q.strip() for q in args.queues.split(",") if q.strip()] if args.queues else app.known_queues()
    if not args.force and not args.queues:
        raise ConfigError(f"purge every queue of the app ({', '.join(queues)})? name them with -Q or pass -f")
    print("\n".join(asyncio.run(admin.purge(app.conf, queues))))
    return 0


def _add_admin_parsers(sub: Any) -> None:
    dlq = sub.add_parser("dlq", help="list, requeue or purge dead-lettered messages")
    dlq.add_argument("action", choices=("list", "requeue", "purge"))
    dlq.add_argument("indexes", nargs="*", type=int, help="requeue: positions from 'dlq list' (default: all)")
    dlq.add_argument("--limit", type=int, default=50, help="list: how many (default 50)")
    dlq.add_argument("--queue", help="requeue: to this queue instead of the original one")
    purge = sub.add_parser("purge", help="delete every waiting message of the given queues")
    purge.add_argument("-Q", "--queues", help="comma-separated queues (default with -f: the app's queues)")
    purge.add_argument("-f", "--force", action="store_true", help="purge the app's queues without naming them")
    for parser, func in ((dlq, _cmd_dlq), (purge, _cmd_purge)):
        parser.add_argument("-A", "--app", default=DEFAULT_APP, help="pkg.module[:attr] whose settings to use")
        parser.add_argument("--broker", help="redis://, rediss:// or unix:// URL (default: settings)")
        parser.set_defaults(func=func)


def _cmd_api(args: argparse.Namespace) -> int:
    from skqueue.api.app import run_api
    from skqueue.wiring import schedule_book

    app = load_app(args.app)
    _settings_from_args(app, args)
    return run_api(app.conf, app, args.host, args.port, schedules=schedule_book(app))


def _cmd_token(args: argparse.Namespace) -> int:
    from skqueue.api.auth import mint
    from skqueue.config import Settings, from_environ

    settings = from_environ(Settings())
    if not settings.jwt_secret:
        raise ConfigError("skqueue token signs with SKQUEUE_JWT_SECRET (HS256): set it")
    print(mint(settings.jwt_secret, user_id=args.user_id, staff=args.staff, ttl=args.ttl,
               staff_claim=settings.jwt_staff_claim))
    return 0


def _add_api_parser(sub: Any) -> None:
    api = sub.add_parser("api", help="serve the monitoring REST API and Prometheus metrics")
    api.add_argument("-A", "--app", default=DEFAULT_APP, help="pkg.module[:attr]: the tasks it may send, its settings")
    api.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    api.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    api.add_argument("--broker", help="redis://, rediss:// or unix:// URL (default: settings)")
    api.add_argument("--result-backend", help="redis:// URL for results (default: settings)")
    api.set_defaults(func=_cmd_api)
    token = sub.add_parser("token", help="print an HS256 API token signed with SKQUEUE_JWT_SECRET")
    token.add_argument("--staff", action="store_true", help="with the staff claim (execute, revoke, retry...)")
    token.add_argument("--user-id", default="skqueue", help="the user_id claim (default skqueue)")
    token.add_argument("--ttl", type=float, default=3600.0, help="seconds until it expires (default 3600)")
    token.set_defaults(func=_cmd_token)


def _cmd_scheduler(args: argparse.Namespace) -> int:
    from skqueue.scheduler.beat import run_scheduler

    app = load_app(args.app)
    _settings_from_args(app, args)
    return run_scheduler(app, lease_seconds=args.lease_seconds)


def _cmd_schedule(args: argparse.Namespace) -> int:
    from skqueue.scheduler.service import run_schedule_command

    app = load_app(args.app)
    _settings_from_args(app, args)
    status, lines = run_schedule_command(app, args.action, args.name)
    print("\n".join(lines))
    return status


def _add_scheduler_parsers(sub: Any) -> None:
    beat = sub.add_parser("scheduler", aliases=["beat"], help="send periodic tasks (celery beat; run any number)")
    beat.add_argument("--lease-seconds", type=float,
                      help="leader lease: a dead leader is replaced within this time (default: settings, 15)")
    beat.add_argument("-l", "--loglevel", dest="sub_loglevel", help=argparse.SUPPRESS)
    schedule = sub.add_parser("schedule", help="list, pause, resume or trigger periodic task entries")
    schedule.add_argument("action", choices=("list", "pause", "resume", "trigger"))
    schedule.add_argument("name", nargs="?", help="the entry (pause, resume, trigger)")
    for parser, func in ((beat, _cmd_scheduler), (schedule, _cmd_schedule)):
        parser.add_argument("-A", "--app", default=DEFAULT_APP, help="pkg.module[:attr] whose beat_schedule to use")
        parser.add_argument("--broker", help="redis://, rediss:// or unix:// URL (default: settings)")
        parser.set_defaults(func=func)


def _dashboard_app(args: argparse.Namespace) -> App:
    app = load_app(args.app)
    _settings_from_args(app, args)
    return app


def _cmd_db(args: argparse.Namespace) -> int:
    from skqueue.dashboard import commands

    app = _dashboard_app(args)
    if args.action == "init":
        print(asyncio.run(commands.db_init(app.conf, args.id_type)))
    else:
        print(asyncio.run(commands.db_seed(app.conf, args.users, args.seed)))
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    from skqueue.dashboard import commands

    app = _dashboard_app(args)
    ok, lines = asyncio.run(commands.check(app.conf, app, args.timeout))
    print("\n".join(lines))
    return 0 if ok else 1


def _cmd_run_task(args: argparse.Namespace) -> int:
    from skqueue.dashboard import commands

    app = _dashboard_app(args)
    kwargs = commands.task_kwargs(args.task, user_id=args.user_id, export_format=args.format, start=args.start,
                                  end=args.end, message=args.message, notification_type=args.type,
                                  days_old=args.days_old)
    return commands.run_task(app.conf, app, args.task, kwargs, sync=args.sync, timeout=args.timeout)


def _add_dashboard_parsers(sub: Any) -> None:
    db = sub.add_parser("db", help="the SenangKira database: create the tables, or seed generated data")
    db.add_argument("action", choices=("init", "seed"))
    db.add_argument("--users", type=int, default=10, help="seed: how many users to generate (default 10)")
    db.add_argument("--seed", type=int, default=1, help="seed: random seed; the same seed gives the same data")
    db.add_argument("--id-type", choices=("uuid", "int"), default="uuid", help="init: user id type (default uuid)")
    db.set_defaults(func=_cmd_db)
    check = sub.add_parser("check", help="broker reachable, workers answering, a debug_task round trip")
    check.add_argument("-t", "--timeout", type=float, default=10.0, help="seconds to wait for the round trip")
    check.set_defaults(func=_cmd_check)
    run = sub.add_parser("run-task", help="run a dashboard task through the workers (or --sync, in-process)")
    run.add_argument("task", help="refresh, warm, performance, export, notify, cleanup or debug")
    run.add_argument("--user-id", help="a user's UUID (or integer id); refresh/warm: every user without it")
    run.add_argument("--sync", action="store_true", help="run it here, without the queue (the cache still uses Redis)")
    run.add_argument("--format", default="json", help="export: json, csv or pdf")
    run.add_argument("--start", help="export: first day (YYYY-MM-DD)")
    run.add_argument("--end", help="export: last day (YYYY-MM-DD)")
    run.add_argument("--message", help="notify: the text")
    run.add_argument("--type", default="info", help="notify: info, warning or alert")
    run.add_argument("--days-old", type=int, default=30, help="cleanup: age in days (default 30)")
    run.add_argument("-t", "--timeout", type=float, default=120.0, help="seconds to wait for the result")
    run.set_defaults(func=_cmd_run_task)
    for parser in (db, check, run):
        parser.add_argument("-A", "--app", default=DEFAULT_APP, help="pkg.module[:attr] whose settings to use")
        parser.add_argument("--broker", help="redis://, rediss:// or unix:// URL (default: settings)")
        parser.add_argument("--result-backend", help="redis:// URL for results (default: settings)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="skqueue", description="An asyncio worker for Celery clients.")
    parser.add_argument("-l", "--loglevel", default="warning", help="debug, info, warning, error (default warning)")
    sub = parser.add_subparsers(dest="command", required=True)

    worker = sub.add_parser("worker", help="consume and run tasks")
    worker.add_argument("-A", "--app", default=DEFAULT_APP, help="pkg.module[:attr] holding the skqueue.App")
    worker.add_argument("-Q", "--queues", help="comma-separated queues (default: every queue the app routes to)")
    worker.add_argument("-c", "--concurrency", type=int, help="tasks running at once (default: settings or CPUs)")
    worker.add_argument("-n", "--hostname", default="skqueue@%h", help="node name, %%h = host name")
    worker.add_argument("--prefetch-multiplier", type=int, help="messages reserved per concurrency slot")
    worker.add_argument("--broker", help="redis://, rediss:// or unix:// URL (default: embedded broker)")
    worker.add_argument("--result-backend", help="redis:// URL for results")
    worker.add_argument("--shutdown-timeout", type=float, default=30.0,
                        help="seconds running tasks get to finish on warm shutdown (default 30)")
    worker.add_argument("--burst", action="store_true", help="one process; stop when the queues are empty")
    worker.add_argument("--processes", type=int,
                        help="worker processes under a supervisor (default: CPUs; 0: one process, no supervisor)")
    worker.add_argument("--max-tasks-per-child", type=int, help="restart a process after this many tasks")
    worker.add_argument("--max-memory-per-child", type=int, help="restart a process above this RSS (KiB)")
    worker.add_argument("-E", "--task-events", action="store_true",
                        help="send task events (for Flower, celery events); worker events are always sent")
    worker.add_argument("--without-heartbeat", action="store_true",
                        help="send no worker-online/-heartbeat/-offline events")
    worker.add_argument("--child", help=argparse.SUPPRESS)
    worker.add_argument("-l", "--loglevel", dest="sub_loglevel", help=argparse.SUPPRESS)
    worker.set_defaults(func=_cmd_worker)

    _add_remote_parsers(sub)
    _add_admin_parsers(sub)
    _add_dashboard_parsers(sub)
    _add_api_parser(sub)
    _add_scheduler_parsers(sub)

    demo = sub.add_parser("demo", help="embedded broker + worker + the real celery client, end to end")
    demo.add_argument("--home", help="data directory for the embedded broker (default $SKQUEUE_HOME or ./.skqueue)")
    demo.add_argument("--keep", action="store_true", help="keep broker, worker and API running until Ctrl-C")
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    raw = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(raw)
    args.argv = raw
    try:
        logs.setup(getattr(args, "sub_loglevel", None) or args.loglevel)
        return int(args.func(args))
    except (SkqueueError, ValueError) as exc:
        print(f"skqueue: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""The ``skqueue`` command: parse arguments, build settings, call the right ``run_*``/``serve``."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import sys
from collections.abc import Sequence
from typing import Any

from skqueue import logs
from skqueue.app import App
from skqueue.errors import ConfigError, SkqueueError

DEFAULT_APP = "skqueue.demo.tasks"


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


def _cmd_worker(args: argparse.Namespace) -> int:
    from skqueue.worker.run import expand_hostname, serve
    from skqueue.worker.worker import WorkerOptions

    app = load_app(args.app)
    _settings_from_args(app, args)
    queues = [q.strip() for q in args.queues.split(",") if q.strip()] if args.queues else app.known_queues()
    concurrency = args.concurrency or app.conf.worker_concurrency or (os.cpu_count() or 1)
    prefetch = args.prefetch_multiplier or app.conf.worker_prefetch_multiplier
    options = WorkerOptions(queues=queues, concurrency=concurrency, prefetch_multiplier=prefetch,
                            hostname=expand_hostname(args.hostname), shutdown_timeout=args.shutdown_timeout,
                            burst=args.burst)
    asyncio.run(serve(app, options))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from skqueue.demo.run import main as run_demo

    return run_demo(home=args.home)


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
    worker.add_argument("--burst", action="store_true", help="stop when the queues are empty")
    worker.add_argument("-l", "--loglevel", dest="sub_loglevel", help=argparse.SUPPRESS)
    worker.set_defaults(func=_cmd_worker)

    demo = sub.add_parser("demo", help="embedded broker + worker + the real celery client, end to end")
    demo.add_argument("--home", help="data directory for the embedded broker (default $SKQUEUE_HOME or ./.skqueue)")
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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

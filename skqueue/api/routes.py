"""The endpoints: thin handlers that check the token, parse the request and call :mod:`skqueue.monitor`.

Reading needs any valid token; sending, revoking and retrying tasks, schedule changes and the health
check need a staff token. The metrics endpoint's auth is ``api_metrics_auth``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from skqueue.api import metrics
from skqueue.api.auth import Authenticator, require
from skqueue.errors import InvalidRequest
from skqueue.monitor import cluster, commands, health, schedules, stats, tasks
from skqueue.monitor.base import Monitor, dumps

PREFIX = "/api/dashboard"
MAX_BODY = 64 * 1024
Handler = Callable[[Request], Awaitable[Response]]


class JSON(JSONResponse):
    """JSON that also shows Decimal, datetime and UUID values (as text)."""

    def render(self, content: Any) -> bytes:
        return dumps(content).encode("utf-8")


def guarded(*, staff: bool) -> Callable[[Handler], Handler]:
    """Check the bearer token (and the staff claim when ``staff``) before the handler runs."""

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def checked(request: Request) -> Response:
            auth: Authenticator = request.app.state.auth
            require(auth.identify(request.headers.get("authorization")), staff=staff)
            return await handler(request)

        return checked

    return wrap


def _monitor(request: Request) -> Monitor:
    monitor: Monitor = request.app.state.monitor
    return monitor


async def _body(request: Request) -> Any:
    """The JSON body (``None`` when empty); 400 when it is not JSON, 413 past ``MAX_BODY`` bytes."""
    declared = request.headers.get("content-length", "0")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise HTTPException(413, f"request body larger than {MAX_BODY} bytes")
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise HTTPException(413, f"request body larger than {MAX_BODY} bytes")
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest("the request body is not valid JSON") from None


@guarded(staff=False)
async def status(request: Request) -> Response:
    """Cluster health verdict (healthy, warning, critical), workers, running tasks, success rate."""
    return JSON(await cluster.status(_monitor(request)))


@guarded(staff=False)
async def workers(request: Request) -> Response:
    """Live workers: active tasks, queues, and Celery-style stats (total per task, pool)."""
    return JSON(await cluster.workers(_monitor(request)))


@guarded(staff=False)
async def queues(request: Request) -> Response:
    """Every queue: its consumers and its backlog (ready, scheduled, in flight)."""
    return JSON(await cluster.queues(_monitor(request)))


@guarded(staff=False)
async def task_list(request: Request) -> Response:
    """Recent task attempts, newest first, with filters and a paging cursor."""
    query = tasks.parse_query(dict(request.query_params))
    return JSON(await tasks.list_tasks(_monitor(request), query))


@guarded(staff=False)
async def task_detail(request: Request) -> Response:
    """Everything known about one task (PENDING for an id never seen)."""
    return JSON(await tasks.task_detail(_monitor(request), request.path_params["task_id"]))


@guarded(staff=True)
async def execute(request: Request) -> Response:
    """Send a task registered in the app, with arguments checked against its signature."""
    body = await _body(request)
    found = await commands.execute(_monitor(request), request.path_params["task_name"], {} if body is None else body)
    return JSON(found, status_code=202)


@guarded(staff=True)
async def revoke(request: Request) -> Response:
    """Revoke a task (optionally terminating it where it runs)."""
    body = await _body(request)
    return JSON(await commands.revoke(_monitor(request), request.path_params["task_id"], body))


@guarded(staff=True)
async def retry(request: Request) -> Response:
    """Send a failed task again, with its original arguments, as a new task."""
    return JSON(await commands.retry(_monitor(request), request.path_params["task_id"]), status_code=202)


@guarded(staff=True)
async def health_check(request: Request) -> Response:
    """Round trip through broker, result backend and a worker; per-check timings and a verdict."""
    report = await health.health_check(_monitor(request))
    return JSON(report, status_code=200 if report["healthy"] else 503)


@guarded(staff=False)
async def schedule_list(request: Request) -> Response:
    """Periodic task entries: schedule, next and last run, counters, paused; and the leader."""
    return JSON(await schedules.list_schedules(_monitor(request)))


@guarded(staff=True)
async def schedule_pause(request: Request) -> Response:
    """Stop sending an entry's firings until it is resumed."""
    return JSON(await schedules.pause(_monitor(request), request.path_params["name"]))


@guarded(staff=True)
async def schedule_resume(request: Request) -> Response:
    """Send an entry's firings again, from its next fire time."""
    return JSON(await schedules.resume(_monitor(request), request.path_params["name"]))


@guarded(staff=True)
async def schedule_trigger(request: Request) -> Response:
    """Send an entry's task now, outside its schedule."""
    return JSON(await schedules.trigger(_monitor(request), request.path_params["name"]), status_code=202)


async def prometheus(request: Request) -> Response:
    """Prometheus text exposition of the cluster-wide task metrics."""
    mode = request.app.state.settings.api_metrics_auth
    if mode != "none":
        auth: Authenticator = request.app.state.auth
        require(auth.identify(request.headers.get("authorization")), staff=mode == "staff")
    data = await stats.snapshot(_monitor(request))
    return Response(metrics.render(data), media_type="text/plain; version=0.0.4; charset=utf-8")


async def openapi(request: Request) -> Response:
    """This API's OpenAPI 3 document."""
    from skqueue.api.openapi import document

    return JSON(document())


CELERY = f"{PREFIX}/celery"
ROUTES: list[Route] = [
    Route(f"{CELERY}/status/", status, methods=["GET"]),
    Route(f"{CELERY}/workers/", workers, methods=["GET"]),
    Route(f"{CELERY}/queues/", queues, methods=["GET"]),
    Route(f"{CELERY}/tasks/", task_list, methods=["GET"]),
    Route(f"{CELERY}/tasks/{{task_id}}/", task_detail, methods=["GET"]),
    Route(f"{CELERY}/tasks/{{task_name}}/execute/", execute, methods=["POST"]),
    Route(f"{CELERY}/tasks/{{task_id}}/revoke/", revoke, methods=["POST"]),
    Route(f"{CELERY}/tasks/{{task_id}}/retry/", retry, methods=["POST"]),
    Route(f"{CELERY}/health_check/", health_check, methods=["POST"]),
    Route(f"{CELERY}/schedules/", schedule_list, methods=["GET"]),
    Route(f"{CELERY}/schedules/{{name}}/pause/", schedule_pause, methods=["POST"]),
    Route(f"{CELERY}/schedules/{{name}}/resume/", schedule_resume, methods=["POST"]),
    Route(f"{CELERY}/schedules/{{name}}/trigger/", schedule_trigger, methods=["POST"]),
    Route(f"{PREFIX}/metrics/prometheus/", prometheus, methods=["GET"]),
    Route(f"{PREFIX}/openapi.json", openapi, methods=["GET"]),
]

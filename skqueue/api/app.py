"""``create_app``: the monitoring API as a Starlette app, and ``run_api``, which serves it with uvicorn.

The lifespan opens the broker and result-backend connections and keeps a
:class:`~skqueue.monitor.base.Monitor` on ``app.state``; nothing is global.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from skqueue.api.auth import Authenticator, AuthError
from skqueue.api.routes import JSON, ROUTES
from skqueue.app import App
from skqueue.broker.connections import open_connections, release_urls, resolve_urls
from skqueue.config import Settings
from skqueue.errors import BrokerError, Conflict, InvalidRequest, MonitorError, NotFound
from skqueue.monitor.base import Monitor
from skqueue.monitor.schedules import ScheduleBook

log = logging.getLogger("skqueue.api")

SECURITY_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
                    (b"cache-control", b"no-store")]


class SecurityHeaders:
    """Adds the headers SenangKira's middleware put on every API response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _auth_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AuthError)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return JSON({"error": str(exc)}, status_code=exc.status, headers=headers)


async def _monitor_error(request: Request, exc: Exception) -> Response:
    codes = ((NotFound, 404), (Conflict, 409), (InvalidRequest, 400))
    code = next((status for kind, status in codes if isinstance(exc, kind)), 400)
    return JSON({"error": str(exc)}, status_code=code)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return JSON({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def _unavailable(request: Request, exc: Exception) -> Response:
    log.warning("Redis unavailable while serving %s: %s", request.url.path, exc)
    return JSON({"error": f"the broker or result backend is unavailable: {type(exc).__name__}"}, status_code=503)


def create_app(settings: Settings, app: App, *, schedules: ScheduleBook | None = None) -> Starlette:
    """The API for ``app``'s tasks (the allow-list for sending) on the broker ``settings`` name;
    ``schedules``: the app's schedule entries (see :mod:`skqueue.monitor.schedules`), if it has any."""
    auth = Authenticator(settings)

    @contextlib.asynccontextmanager
    async def lifespan(api: Starlette) -> AsyncIterator[None]:
        urls = resolve_urls(settings)
        try:
            async with open_connections(settings, urls, name="skqueue-api") as conns:
                api.state.monitor = Monitor.build(app, settings, conns, schedules)
                yield
        finally:
            release_urls(urls)

    api = Starlette(
        routes=ROUTES, lifespan=lifespan, middleware=[Middleware(SecurityHeaders)],
        exception_handlers={AuthError: _auth_error, MonitorError: _monitor_error, HTTPException: _http_error,
                            RedisError: _unavailable, BrokerError: _unavailable, OSError: _unavailable},
    )
    api.state.auth = auth
    api.state.settings = settings
    return api


def run_api(settings: Settings, app: App, host: str = "127.0.0.1", port: int = 8000, *,
            schedules: ScheduleBook | None = None) -> int:
    """Serve the API until interrupted (what ``skqueue api`` runs)."""
    import uvicorn

    api = create_app(settings, app, schedules=schedules)
    server = uvicorn.Server(uvicorn.Config(api, host=host, port=port, log_level="info",
                                           lifespan="on", server_header=False))
    server.run()
    return 0

"""The OpenAPI 3.1 document of the monitoring API, built from the route table (so every route is in it)
and the operation details below."""

from __future__ import annotations

from typing import Any

from skqueue.monitor.tasks import MAX_LIMIT, STATES

OBJECT: dict[str, Any] = {"type": "object", "additionalProperties": True}
ERROR: dict[str, Any] = {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}
TASK_ID = {"name": "task_id", "in": "path", "required": True, "schema": {"type": "string", "maxLength": 255}}
ENTRY = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
TASK_NAME = {"name": "task_name", "in": "path", "required": True, "schema": {"type": "string"}}

_LIST_PARAMS = [
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 50}},
    {"name": "state", "in": "query", "schema": {"type": "string", "enum": sorted(STATES)}},
    {"name": "name", "in": "query", "schema": {"type": "string"}, "description": "task name"},
    {"name": "queue", "in": "query", "schema": {"type": "string"}},
    {"name": "cursor", "in": "query", "schema": {"type": "string"}, "description": "next_cursor of the last page"},
]
_EXECUTE_BODY = {"type": "object", "additionalProperties": False, "properties": {
    "args": {"type": "array"}, "kwargs": {"type": "object"},
    "user_id": {"description": "becomes the user_id keyword argument unless kwargs has one"}}}
_REVOKE_BODY = {"type": "object", "properties": {"terminate": {"type": "boolean", "default": False},
                                                 "signal": {"type": "string", "default": "SIGTERM"}}}

# handler name -> (parameters, request body schema or None, {status: description}, staff only)
_DETAILS: dict[str, tuple[list[dict[str, Any]], dict[str, Any] | None, dict[int, str], bool]] = {
    "status": ([], None, {200: "cluster status"}, False),
    "workers": ([], None, {200: "live workers"}, False),
    "queues": ([], None, {200: "queues and backlog"}, False),
    "task_list": (_LIST_PARAMS, None, {200: "recent attempts", 400: "bad parameter"}, False),
    "task_detail": ([TASK_ID], None, {200: "the task", 400: "bad task id"}, False),
    "execute": ([TASK_NAME], _EXECUTE_BODY, {202: "queued", 400: "bad body or arguments", 404: "unknown task",
                                              413: "body too large"}, True),
    "revoke": ([TASK_ID], _REVOKE_BODY, {200: "revoked", 400: "bad body"}, True),
    "retry": ([TASK_ID], None, {202: "sent again", 404: "no result for the task",
                                409: "not a FAILURE, or its arguments are unknown"}, True),
    "health_check": ([], None, {200: "every check passed", 503: "a check failed"}, True),
    "schedule_list": ([], None, {200: "entries", 404: "no schedule given to this API"}, False),
    "schedule_pause": ([ENTRY], None, {200: "paused", 404: "no such entry"}, True),
    "schedule_resume": ([ENTRY], None, {200: "resumed", 404: "no such entry"}, True),
    "schedule_trigger": ([ENTRY], None, {202: "sent", 404: "no such entry"}, True),
    "prometheus": ([], None, {200: "Prometheus text format"}, False),
    "openapi": ([], None, {200: "this document"}, False),
}
_PUBLIC = {"openapi"}


def _operation(name: str, method: str, summary: str) -> dict[str, Any]:
    params, body, responses, staff = _DETAILS.get(name, ([], None, {200: "OK"}, False))
    media = "text/plain" if name == "prometheus" else "application/json"
    operation: dict[str, Any] = {
        "operationId": name, "summary": summary,
        "description": "Needs a staff token." if staff else "Needs a valid token.",
        "parameters": params,
        "responses": {str(code): _response(code, text, media) for code, text in responses.items()},
    }
    if name in _PUBLIC:
        operation["security"] = []
        operation["description"] = "No token needed."
    else:
        operation["responses"]["401"] = _response(401, "no valid token", "application/json")
        if staff:
            operation["responses"]["403"] = _response(403, "not a staff token", "application/json")
    if body is not None:
        operation["requestBody"] = {"required": False, "content": {"application/json": {"schema": body}}}
    return operation


def _response(code: int, text: str, media: str) -> dict[str, Any]:
    schema = {"type": "string"} if media == "text/plain" else (ERROR if code >= 400 and code != 503 else OBJECT)
    return {"description": text, "content": {media: {"schema": schema}}}


def document() -> dict[str, Any]:
    from skqueue.api.routes import ROUTES

    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        summary = (route.endpoint.__doc__ or route.name).strip().splitlines()[0]
        for method in sorted(route.methods or ()):
            if method == "HEAD":
                continue
            paths.setdefault(route.path, {})[method.lower()] = _operation(route.name, method, summary)
    return {
        "openapi": "3.1.0",
        "info": {"title": "skqueue monitoring API", "version": "1",
                 "description": "SenangKira-compatible Celery monitoring endpoints served by skqueue."},
        "paths": paths,
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}},
        "security": [{"bearer": []}],
    }

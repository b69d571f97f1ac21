"""The health check: a real round trip through every part, each timed.

* ``broker``: a PING to the broker;
* ``result_backend``: SET, GET and DEL of a throw-away key on the result backend;
* ``worker``: the task named by ``api_health_task`` (SenangKira's ``dashboard.tasks.debug_task`` by
  default) is sent, and its result awaited for ``api_health_timeout`` seconds; a probe that timed out
  is revoked, so a worker that comes back later does not run it.

The verdict is ``healthy`` when every check passed, else ``unhealthy``; the cluster status (see
:mod:`skqueue.monitor.cluster`) is included as ``system_status``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import Any

from skqueue.broker.inspect import ping, probe_results
from skqueue.monitor.base import ORIGIN, Monitor
from skqueue.monitor.cluster import status
from skqueue.protocol import states
from skqueue.protocol.message import Outgoing, encode_task
from skqueue.protocol.results import status_of

CHECK_TIMEOUT = 5.0
POLL = 0.05
ADVICE = {
    "broker": "The broker is unreachable: check the broker URL and that Redis is running",
    "result_backend": "The result backend does not work: check the result backend URL",
    "worker": "No worker ran the health task in time: check that workers are running and consume its queue",
    "warning": "System is operating with warnings - check logs",
    "critical": "System is in critical state - immediate attention required",
    "unknown": "Unable to determine system status",
}


async def _timed(step: Awaitable[Any], timeout: float) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            extra = await step
    except TimeoutError:
        return {"ok": False, "ms": _ms(started), "error": f"timed out after {timeout:g}s"}
    except Exception as exc:
        return {"ok": False, "ms": _ms(started), "error": f"{type(exc).__name__}: {exc}"}
    return {"ok": True, "ms": _ms(started), **(extra if isinstance(extra, dict) else {})}


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


async def _worker_round_trip(monitor: Monitor, out: Outgoing) -> dict[str, Any]:
    assert monitor.results is not None
    await monitor.broker.publish(out.queue, out.priority, encode_task(out))
    while True:
        state = status_of(await monitor.results.get_raw(out.id))
        if state in states.READY_STATES:
            break
        await asyncio.sleep(POLL)
    if state != states.SUCCESS:
        raise RuntimeError(f"the health task ended in {state}")
    return {}


async def _worker_check(monitor: Monitor) -> dict[str, Any]:
    name = monitor.settings.api_health_task
    out = Outgoing(task=name, queue=monitor.app.queue_for(name), origin=ORIGIN)
    base = {"task": name, "task_id": out.id, "queue": out.queue}
    if monitor.results is None:
        return {"ok": False, "ms": 0.0, "error": "no result backend is configured: nothing to await", **base}
    check = await _timed(_worker_round_trip(monitor, out), monitor.settings.api_health_timeout)
    if not check["ok"]:
        await monitor.revoked.add([out.id])
    return {**check, **base}


async def health_check(monitor: Monitor) -> dict[str, Any]:
    checks: dict[str, dict[str, Any]] = {"broker": await _timed(ping(monitor.broker.client), CHECK_TIMEOUT)}
    if monitor.results is None:
        checks["result_backend"] = {"ok": False, "ms": 0.0, "error": "no result backend is configured"}
    else:
        checks["result_backend"] = await _timed(probe_results(monitor.results), CHECK_TIMEOUT)
    checks["worker"] = await _worker_check(monitor)
    healthy = all(check["ok"] for check in checks.values())
    try:
        system = await status(monitor)
    except Exception as exc:  # the broker is down: the checks above already say so
        system = {"status": "unknown", "message": "Unable to determine system status", "error": str(exc)}
    advice = [ADVICE[name] for name, check in checks.items() if not check["ok"]]
    if system["status"] in ADVICE:
        advice.append(ADVICE[system["status"]])
    return {"healthy": healthy, "status": "healthy" if healthy else "unhealthy", "checks": checks,
            "system_status": system, "recommendations": advice, "timestamp": monitor.now_iso()}

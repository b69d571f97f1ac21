"""cleanup_old_data: delete what is older than ``days_old`` days and say how much of each kind went.

Kinds: dashboard snapshots (by ``snapshot_date``), exports (the ``dashboard_export`` rows and their files,
plus stray files in ``export_dir`` older than the cutoff), notifications, stored performance reports, and
the task history (entries of the ``skqueue.task_events`` stream, trimmed with ``XTRIM MINID``).
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select

from skqueue.broker import history
from skqueue.dashboard.export import export_dir
from skqueue.dashboard.runtime import Runtime
from skqueue.errors import InvalidArguments

MAX_DAYS = 36_500


def check_days(days_old: Any) -> int:
    if isinstance(days_old, bool) or not isinstance(days_old, int) or not 0 <= days_old <= MAX_DAYS:
        raise InvalidArguments(f"days_old must be a whole number of days between 0 and {MAX_DAYS}, not {days_old!r}")
    return days_old


def _remove_files(paths: list[str], root: Path, cutoff: float) -> int:
    """Delete the given files and any other file under ``root`` last modified before ``cutoff``."""
    removed = 0
    targets = {Path(p) for p in paths}
    if root.is_dir():
        targets |= {p for p in root.rglob("*") if p.is_file() and p.stat().st_mtime < cutoff}
    for path in targets:
        try:
            path.unlink()
            removed += 1
        except FileNotFoundError:
            continue
    return removed


async def cleanup(rt: Runtime, days_old: Any) -> dict[str, Any]:
    days = check_days(days_old)
    cutoff = datetime.now(UTC) - timedelta(days=days)
    cutoff_day = datetime.now(rt.settings.tz()).date() - timedelta(days=days)
    store = await rt.store()
    t = store.tables
    kinds = {"snapshots": (t.snapshots, t.snapshots.c.snapshot_date < cutoff_day),
             "exports": (t.exports, t.exports.c.created_at < cutoff),
             "notifications": (t.notifications, t.notifications.c.created_at < cutoff),
             "performance_reports": (t.reports, t.reports.c.created_at < cutoff)}
    async with store.engine.begin() as conn:
        paths = [row.path for row in await conn.execute(select(t.exports.c.path).where(kinds["exports"][1]))]
        deleted = {kind: (await conn.execute(delete(table).where(condition))).rowcount
                   for kind, (table, condition) in kinds.items()}
    deleted["export_files"] = await asyncio.to_thread(_remove_files, paths, export_dir(rt.settings),
                                                      time.time() - days * 86_400)
    deleted["task_events"] = await history.trim_before(rt.redis, rt.keys, cutoff.timestamp())
    return {"days_old": days, "cutoff": cutoff.isoformat(timespec="seconds"), "deleted": deleted,
            "completed_at": datetime.now(UTC).isoformat(timespec="seconds")}

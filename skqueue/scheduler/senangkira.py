"""SenangKira's default schedule for its dashboard tasks (used when the dashboard app configures none).

The original system ran these as intervals counted from when beat started, and never scheduled
``cleanup_old_data``; these are the cron times its documentation promised, evaluated in the app's
``timezone`` setting.
"""

from __future__ import annotations

from typing import Any, Final

DEFAULT_SCHEDULE: Final[dict[str, dict[str, Any]]] = {
    "refresh-dashboard-cache-hourly": {
        "task": "dashboard.tasks.refresh_dashboard_cache",
        "schedule": "0 * * * *",
        "options": {"queue": "high_priority"},
    },
    "warm-dashboard-cache-daily": {
        "task": "dashboard.tasks.warm_dashboard_cache",
        "schedule": "0 2 * * *",
        "options": {"queue": "cache_operations"},
    },
    "performance-analysis-every-6-hours": {
        "task": "dashboard.tasks.performance_analysis",
        "schedule": "0 */6 * * *",
        "options": {"queue": "analytics"},
    },
    "cleanup-old-data-nightly": {
        "task": "dashboard.tasks.cleanup_old_data",
        "schedule": "0 3 * * *",
        "kwargs": {"days_old": 30},
        "options": {"queue": "low_priority"},
    },
}

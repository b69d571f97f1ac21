"""Reporting periods: boundaries, the period before, month windows and date ranges. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any

from skqueue.errors import InvalidArguments

PERIOD_TYPES = ("daily", "weekly", "monthly", "quarterly", "yearly")
MAX_RANGE_DAYS = 3660


@dataclass(frozen=True, slots=True)
class Period:
    """The days ``start`` to ``end``, both included; ``kind`` is a period type or ``"custom"``."""

    kind: str
    start: date
    end: date

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def previous(self) -> Period:
        """The period of the same type just before this one (same length for ``custom``)."""
        if self.kind == "custom" or self.kind not in PERIOD_TYPES:
            return Period(self.kind, self.start - timedelta(days=self.days), self.start - timedelta(days=1))
        return period_of(self.kind, self.start - timedelta(days=1))

    def as_dict(self) -> dict[str, str]:
        return {"type": self.kind, "start": self.start.isoformat(), "end": self.end.isoformat()}


def _month_start(day: date, shift: int = 0) -> date:
    index = day.year * 12 + day.month - 1 + shift
    return date(index // 12, index % 12 + 1, 1)


def period_of(kind: str, day: date) -> Period:
    """The ``kind`` period containing ``day`` (weeks run Monday to Sunday)."""
    if kind == "daily":
        return Period(kind, day, day)
    if kind == "weekly":
        start = day - timedelta(days=day.weekday())
        return Period(kind, start, start + timedelta(days=6))
    if kind == "monthly":
        start = _month_start(day)
    elif kind == "quarterly":
        start = date(day.year, (day.month - 1) // 3 * 3 + 1, 1)
    elif kind == "yearly":
        return Period(kind, date(day.year, 1, 1), date(day.year, 12, 31))
    else:
        raise InvalidArguments(f"unknown period type {kind!r}: use {', '.join(PERIOD_TYPES)}")
    months = 1 if kind == "monthly" else 3
    return Period(kind, start, _month_start(start, months) - timedelta(days=1))


def months_ending(day: date, count: int = 6) -> list[Period]:
    """The ``count`` calendar months up to and including ``day``'s, oldest first."""
    last = _month_start(day)
    return [period_of("monthly", _month_start(last, -i)) for i in range(count - 1, -1, -1)]


def utc_bounds(first: date, last: date, tz: tzinfo) -> tuple[datetime, datetime]:
    """``[midnight of first, midnight after last)`` in ``tz``, as aware datetimes (for timestamp columns)."""
    start = datetime.combine(first, time(), tz)
    return start, datetime.combine(last + timedelta(days=1), time(), tz)


def _parse_day(value: Any, name: str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.strip()).date()
        except ValueError:
            pass
    raise InvalidArguments(f"date_range[{name!r}] must be an ISO date (YYYY-MM-DD), not {value!r}")


def parse_date_range(value: Any) -> Period | None:
    """``{"start": ..., "end": ...}`` (ISO dates, both included) as a custom period; None stays None."""
    if value is None:
        return None
    if not isinstance(value, Mapping) or set(value) - {"start", "end"} or not {"start", "end"} <= set(value):
        raise InvalidArguments(f'date_range must be {{"start": "YYYY-MM-DD", "end": "YYYY-MM-DD"}}, not {value!r}')
    start, end = _parse_day(value["start"], "start"), _parse_day(value["end"], "end")
    if end < start:
        raise InvalidArguments(f"date_range ends ({end}) before it starts ({start})")
    if (end - start).days >= MAX_RANGE_DAYS:
        raise InvalidArguments(f"date_range spans more than {MAX_RANGE_DAYS} days")
    return Period("custom", start, end)

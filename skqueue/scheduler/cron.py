"""When a schedule fires next: cron expressions in a time zone, and fixed intervals. Pure; the only module
that imports croniter (so replacing it touches one file).

croniter only ever walks *naive* local wall-clock times here, where it has no DST bugs; turning a local
time into a UTC instant is done below with ``zoneinfo``, by this rule:

* **A local time that does not exist** (skipped when the clocks go forward) fires at the first valid
  instant after the gap, the moment the clocks change. Several skipped times fire once, together.
* **A local time that happens twice** (when the clocks go back) fires once, at its first occurrence
  (``fold=0``).
* **Except for expressions that fire every hour** (hour field ``*``): they keep to elapsed time, as cron
  does for its wildcard jobs. A skipped time does not fire, and a repeated time fires at both
  occurrences. So ``0 * * * *`` fires every 60 minutes straight through both transitions.

Intervals are elapsed time, aligned to the Unix epoch in UTC (every 3600 s fires on the hour UTC), so
every scheduler process computes the same fire times without sharing any state.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Protocol

from croniter import CroniterError, croniter

from skqueue.errors import ConfigError

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Longest UTC offset change a zone makes at once (Antarctica/Troll: 2 h); how far back to look for a
# repeated local time whose second occurrence is still to come.
_LOOKBACK = timedelta(hours=3)
_MAX_STEPS = 10_000
COUNT_LIMIT = 10_000
_CRON_FIELDS = ("_orig_minute", "_orig_hour", "_orig_day_of_month", "_orig_month_of_year", "_orig_day_of_week")


class Schedule(Protocol):
    """When an entry fires, as UTC instants."""

    def next_after(self, after: datetime) -> datetime:
        """The first fire time strictly after ``after`` (aware), as an aware UTC datetime."""
        ...

    def count(self, start: datetime, end: datetime) -> int:
        """How many fire times lie in ``[start, end)`` (at most :data:`COUNT_LIMIT`)."""
        ...

    def describe(self) -> str:
        """A short text naming the schedule; a change of text means the schedule changed."""
        ...


@dataclass(frozen=True, slots=True)
class Interval:
    """Every ``ms`` milliseconds of elapsed time, on a grid starting at the Unix epoch."""

    ms: int

    @classmethod
    def of(cls, seconds: float) -> Interval:
        ms = round(seconds * 1000)
        if not math.isfinite(seconds) or ms <= 0:
            raise ConfigError(f"an interval must be a positive number of seconds, not {seconds!r}")
        return cls(ms)

    @property
    def seconds(self) -> float:
        return self.ms / 1000

    def _index(self, moment: datetime) -> int:
        """Index of the last grid point at or before ``moment``."""
        return ((moment - EPOCH) // timedelta(milliseconds=1)) // self.ms

    def _at(self, index: int) -> datetime:
        return EPOCH + timedelta(milliseconds=index * self.ms)

    def next_after(self, after: datetime) -> datetime:
        return self._at(self._index(after) + 1)

    def count(self, start: datetime, end: datetime) -> int:
        if end <= start:
            return 0
        first = self._index(start - timedelta(microseconds=1)) + 1  # first grid point >= start
        last = self._index(end - timedelta(microseconds=1))  # last grid point < end
        return min(max(last - first + 1, 0), COUNT_LIMIT)

    def describe(self) -> str:
        return f"every {self.seconds:g}s"


def _every_hour(expr: str) -> bool:
    hours = croniter.expand(expr)[0][1]
    return hours == ["*"] or set(hours) >= set(range(24))


def _transition(tz: tzinfo, before: datetime, after: datetime) -> datetime:
    """The instant the UTC offset changes between ``before`` (old offset) and ``after`` (new)."""
    target = after.astimezone(tz).utcoffset()
    low, high = math.floor(before.timestamp()), math.ceil(after.timestamp())
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, tz).utcoffset() == target:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)


def _near_transition(tz: tzinfo, moment: datetime) -> bool:
    offset = moment.astimezone(tz).utcoffset()
    return any((moment + delta).astimezone(tz).utcoffset() != offset for delta in (-_LOOKBACK, _LOOKBACK))


@dataclass(frozen=True, slots=True)
class Cron:
    """A five-field cron expression (or ``@hourly``-style alias) evaluated in the time zone ``tz``."""

    expr: str
    tz: tzinfo
    every_hour: bool = field(default=False, compare=False)

    @classmethod
    def parse(cls, expr: str, tz: tzinfo) -> Cron:
        text = " ".join(str(expr).split())
        if not text.startswith("@") and len(text.split()) != 5:
            raise ConfigError(f"cron expression {expr!r} must have 5 fields (minute hour day month weekday)")
        try:
            cron = cls(text, tz, _every_hour(text))
            cron.next_after(datetime(2000, 1, 1, tzinfo=UTC))
        except (CroniterError, ValueError, KeyError) as exc:
            raise ConfigError(f"invalid cron expression {expr!r}: {exc}") from exc
        return cron

    def _instants(self, local: datetime) -> tuple[datetime, ...]:
        """The UTC instants a naive local time fires at, by the rule in the module docstring."""
        first = local.replace(tzinfo=self.tz, fold=0).astimezone(UTC)
        second = local.replace(tzinfo=self.tz, fold=1).astimezone(UTC)
        if first == second:
            return (first,)
        if first < second:  # the clocks went back: this local time happens twice
            return (first, second) if self.every_hour else (first,)
        # the clocks went forward over this local time (fold=1 reads it with the later offset)
        return () if self.every_hour else (_transition(self.tz, second, first),)

    def next_after(self, after: datetime) -> datetime:
        after = after.astimezone(UTC)
        start = after.astimezone(self.tz).replace(tzinfo=None)
        if _near_transition(self.tz, after):
            start -= _LOOKBACK
        candidates = croniter(self.expr, start)
        best: datetime | None = None
        for _ in range(_MAX_STEPS):
            instants = self._instants(candidates.get_next(datetime))
            # each local time's first instant never comes before the previous one's: stop once past best
            if best is not None and instants and instants[0] >= best:
                return best
            for instant in instants:
                if instant > after and (best is None or instant < best):
                    best = instant
        raise ConfigError(f"cron expression {self.expr!r} does not fire after {after.isoformat()}")

    def count(self, start: datetime, end: datetime) -> int:
        found, cursor = 0, start - timedelta(microseconds=1)
        while found < COUNT_LIMIT:
            cursor = self.next_after(cursor)
            if cursor >= end:
                break
            found += 1
        return found

    def describe(self) -> str:
        return f"cron {self.expr} {self.tz}"


def _field(value: Any) -> str:
    if isinstance(value, str | int):
        return str(value)
    if isinstance(value, Iterable):
        return ",".join(str(item) for item in sorted(value))
    raise ConfigError(f"cannot read crontab field {value!r}")


def crontab_expression(obj: Any) -> str:
    """The cron string of a Celery ``crontab(...)`` (read from its original arguments, so ``*`` stays
    ``*`` and cron's day-of-month/day-of-week rule is kept)."""
    return " ".join(_field(getattr(obj, name)) for name in _CRON_FIELDS)


def parse_schedule(value: Any, tz: tzinfo) -> Interval | Cron:
    """A schedule from what ``beat_schedule`` holds: seconds, a ``timedelta``, a cron string, or a Celery
    ``crontab``/``schedule`` object (recognised by shape; Celery need not be installed)."""
    if isinstance(value, bool):
        raise ConfigError(f"schedule {value!r} is neither seconds, a cron string nor a crontab")
    if isinstance(value, int | float):
        return Interval.of(float(value))
    if isinstance(value, timedelta):
        return Interval.of(value.total_seconds())
    if isinstance(value, str):
        return Cron.parse(value, tz)
    if all(hasattr(value, name) for name in _CRON_FIELDS):
        return Cron.parse(crontab_expression(value), tz)
    run_every = getattr(value, "run_every", None)
    if isinstance(run_every, timedelta):
        return Interval.of(run_every.total_seconds())
    raise ConfigError(f"unsupported schedule {value!r} (solar schedules are not supported)")

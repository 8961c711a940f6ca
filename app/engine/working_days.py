"""Working-day arithmetic (Monday to Friday minus holidays) for regulatory deadlines such as "5 working days"."""
from __future__ import annotations

from collections.abc import Collection
from datetime import date, datetime, timedelta
from typing import TypeVar

Day = TypeVar("Day", date, datetime)


def _as_date(value: date) -> date:
    return value.date() if isinstance(value, datetime) else value


def _is_working_day(day: date, holidays: Collection[date]) -> bool:
    return day.weekday() < 5 and day not in holidays


def add_working_days(start: Day, days: int, holidays: Collection[date] = ()) -> Day:
    """Return the day that lies `days` working days after start; a datetime keeps its time of day."""
    if days < 0:
        raise ValueError(f"days must not be negative, got {days}")
    off = {_as_date(day) for day in holidays}
    current = start
    while days:
        current += timedelta(days=1)
        if _is_working_day(_as_date(current), off):
            days -= 1
    return current


def working_days_between(start: date, end: date, holidays: Collection[date] = ()) -> int:
    """Count the working days after start up to and including end; negative if end is before start.

    Only the dates count, times of day are ignored, so working_days_between(d, add_working_days(d, n)) == n.
    """
    first, last = _as_date(start), _as_date(end)
    if last < first:
        return -working_days_between(last, first, holidays)
    off = {_as_date(day) for day in holidays}
    return sum(_is_working_day(first + timedelta(days=n), off) for n in range(1, (last - first).days + 1))

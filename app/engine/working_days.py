"""Working-day arithmetic (Monday to Friday minus holidays, plus make-up working days) for regulatory deadlines
such as "5 working days", counted on the plant's local calendar."""
from __future__ import annotations

from collections.abc import Collection
from datetime import date, datetime, timedelta, tzinfo
from typing import TypeVar

Day = TypeVar("Day", date, datetime)


def _as_date(value: date, tz: tzinfo | None = None) -> date:
    if isinstance(value, datetime):
        return (value.astimezone(tz) if tz is not None and value.tzinfo is not None else value).date()
    return value


def _is_working_day(day: date, holidays: Collection[date], workdays: Collection[date]) -> bool:
    return day in workdays or (day.weekday() < 5 and day not in holidays)


def add_working_days(start: Day, days: int, holidays: Collection[date] = (), workdays: Collection[date] = (),
                     tz: tzinfo | None = None) -> Day:
    """Return the day that lies `days` working days after start; a datetime keeps its time of day.

    workdays are weekend days worked instead of a holiday (调休). With tz, an aware datetime is counted on tz's
    calendar: the days are local dates, the local time of day is kept and the result is in start's zone.
    """
    if days < 0:
        raise ValueError(f"days must not be negative, got {days}")
    if tz is not None and isinstance(start, datetime) and start.tzinfo is not None:
        local = add_working_days(start.astimezone(tz).replace(tzinfo=None), days, holidays, workdays)
        return local.replace(tzinfo=tz).astimezone(start.tzinfo)
    off = {_as_date(day) for day in holidays}
    on = {_as_date(day) for day in workdays}
    current = start
    while days:
        current += timedelta(days=1)
        if _is_working_day(_as_date(current), off, on):
            days -= 1
    return current


def working_days_between(start: date, end: date, holidays: Collection[date] = (), workdays: Collection[date] = (),
                         tz: tzinfo | None = None) -> int:
    """Count the working days after start up to and including end; negative if end is before start.

    Only the dates count (local dates in tz for aware datetimes), times of day are ignored, so
    working_days_between(d, add_working_days(d, n)) == n.
    """
    first, last = _as_date(start, tz), _as_date(end, tz)
    if last < first:
        return -working_days_between(last, first, holidays, workdays)
    off = {_as_date(day) for day in holidays}
    on = {_as_date(day) for day in workdays}
    return sum(_is_working_day(first + timedelta(days=n), off, on) for n in range(1, (last - first).days + 1))

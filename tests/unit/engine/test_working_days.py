"""Working-day arithmetic: Monday to Friday minus holidays, plus make-up working days, on a local calendar."""
from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from app.engine.working_days import add_working_days, working_days_between

FRI, SAT, SUN, MON = date(2026, 1, 2), date(2026, 1, 3), date(2026, 1, 4), date(2026, 1, 5)
EASTER_MONDAY = date(2026, 4, 6)


@pytest.mark.parametrize(("start", "days", "holidays", "expected"), [
    (FRI, 0, (), FRI),
    (SAT, 0, (), SAT),
    (FRI, 1, (), MON),
    (SAT, 1, (), MON),
    (SUN, 5, (), date(2026, 1, 9)),
    (MON, 5, (), date(2026, 1, 12)),
    (FRI, 10, (), date(2026, 1, 16)),
    (date(2026, 4, 2), 2, (date(2026, 4, 3), EASTER_MONDAY), date(2026, 4, 8)),
    (date(2026, 4, 2), 1, [datetime(2026, 4, 3, 0, 0)], EASTER_MONDAY),
])
def test_add_working_days(start: date, days: int, holidays: tuple, expected: date) -> None:
    assert add_working_days(start, days, holidays) == expected


def test_add_working_days_keeps_the_time_of_a_datetime() -> None:
    assert add_working_days(datetime(2026, 1, 2, 16, 45), 1) == datetime(2026, 1, 5, 16, 45)


def test_add_working_days_refuses_negative_days() -> None:
    with pytest.raises(ValueError, match="negative"):
        add_working_days(FRI, -1)


@pytest.mark.parametrize(("start", "end", "holidays", "expected"), [
    (FRI, FRI, (), 0),
    (FRI, SUN, (), 0),
    (FRI, MON, (), 1),
    (MON, date(2026, 1, 12), (), 5),
    (date(2026, 1, 12), MON, (), -5),
    (date(2026, 4, 2), date(2026, 4, 8), {date(2026, 4, 3), EASTER_MONDAY}, 2),
    (datetime(2026, 1, 2, 23, 0), datetime(2026, 1, 5, 1, 0), (), 1),
])
def test_working_days_between(start: date, end: date, holidays: set, expected: int) -> None:
    assert working_days_between(start, end, holidays) == expected


@pytest.mark.parametrize("start", [FRI, SAT, SUN, MON, date(2026, 4, 2)])
@pytest.mark.parametrize("days", [0, 1, 4, 5, 23])
def test_between_undoes_add(start: date, days: int) -> None:
    holidays = {date(2026, 4, 3), EASTER_MONDAY}
    assert working_days_between(start, add_working_days(start, days, holidays), holidays) == days


def test_aware_times_count_on_the_plants_local_calendar() -> None:
    shanghai = ZoneInfo("Asia/Shanghai")
    friday_evening_utc = datetime(2026, 1, 9, 17, 0, tzinfo=UTC)  # Saturday 01:00 in Shanghai
    assert add_working_days(friday_evening_utc, 1) == datetime(2026, 1, 12, 17, 0, tzinfo=UTC)
    # Monday 01:00 in Shanghai: the local time of day is kept, the days are Shanghai's.
    assert add_working_days(friday_evening_utc, 1, tz=shanghai) == datetime(2026, 1, 11, 17, 0, tzinfo=UTC)
    assert working_days_between(friday_evening_utc, datetime(2026, 1, 12, 1, tzinfo=UTC)) == 1
    assert working_days_between(friday_evening_utc, datetime(2026, 1, 12, 1, tzinfo=UTC), tz=shanghai) == 1
    assert working_days_between(friday_evening_utc, datetime(2026, 1, 12, 17, tzinfo=UTC), tz=shanghai) == 2


def test_make_up_working_days_count() -> None:
    saturday = date(2026, 10, 10)
    assert add_working_days(date(2026, 9, 30), 3, HOLIDAYS_CN, (saturday,)) == saturday
    assert working_days_between(date(2026, 9, 30), date(2026, 10, 12), HOLIDAYS_CN, (saturday,)) == 4


HOLIDAYS_CN = tuple(date(2026, 10, day) for day in range(1, 8))

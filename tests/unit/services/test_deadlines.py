"""Deadline arithmetic and the deadlines.start parameters a diagram gives."""
from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest
from marshmallow import ValidationError

from app.models import Deadline
from app.services.workflow.calendars import WorkCalendar
from app.services.workflow.deadlines import DeadlineSpec
from handlers.deadlines import StartParams

FRIDAY = datetime(2026, 11, 27, 16, 30, tzinfo=UTC)  # already Saturday 00:30 in Shanghai
SHANGHAI = ZoneInfo("Asia/Shanghai")
PLAIN = WorkCalendar("XX", UTC)


def _end_of(day: date, tz=UTC) -> datetime:
    return datetime.combine(day, time(23, 59, 59), tzinfo=tz).astimezone(UTC)


@pytest.mark.parametrize(("spec", "calendar", "due"), [
    (DeadlineSpec("k", "l", "t", due_in="P1D"), PLAIN, datetime(2026, 11, 28, 16, 30, tzinfo=UTC)),
    (DeadlineSpec("k", "l", "t", due_in="PT24H"), PLAIN, datetime(2026, 11, 28, 16, 30, tzinfo=UTC)),
    (DeadlineSpec("k", "l", "t", working_days=1), PLAIN, _end_of(date(2026, 11, 30))),
    (DeadlineSpec("k", "l", "t", working_days=5), PLAIN, _end_of(date(2026, 12, 4))),
    (DeadlineSpec("k", "l", "t", working_days=5), WorkCalendar("XX", UTC, frozenset({date(2026, 12, 1)})),
     _end_of(date(2026, 12, 7))),
    (DeadlineSpec("k", "l", "t", working_days=10), PLAIN, _end_of(date(2026, 12, 11))),
    # Counted from the plant's date (Saturday in Shanghai), due at the plant's end of day.
    (DeadlineSpec("k", "l", "t", working_days=1), WorkCalendar("CN", SHANGHAI), _end_of(date(2026, 11, 30), SHANGHAI)),
    (DeadlineSpec("k", "l", "t", working_days=5), WorkCalendar("CN", SHANGHAI), _end_of(date(2026, 12, 4), SHANGHAI)),
])
def test_due_time_counts_durations_or_working_days(spec, calendar, due):
    assert spec.due_at(FRIDAY, calendar) == due


def test_working_days_skip_a_cn_holiday_and_count_a_make_up_saturday():
    national_day = frozenset(date(2026, 10, day) for day in range(1, 8))
    calendar = WorkCalendar("CN", SHANGHAI, national_day, frozenset({date(2026, 10, 10)}))
    decided = datetime(2026, 9, 30, 2, tzinfo=UTC)  # Wednesday 10:00 in Shanghai
    spec = DeadlineSpec("k", "l", "t", working_days=3)
    assert spec.due_at(decided, calendar) == _end_of(date(2026, 10, 10), SHANGHAI)  # 8th, 9th, Saturday 10th
    assert spec.basis(calendar) == "3 working days (CN calendar)"


@pytest.mark.parametrize(("met_at", "now", "status"), [
    (None, datetime(2026, 11, 28, tzinfo=UTC), "pending"),
    (None, datetime(2026, 11, 29, tzinfo=UTC), "overdue"),
    (datetime(2026, 11, 28, tzinfo=UTC), datetime(2026, 12, 30, tzinfo=UTC), "met"),
    (datetime(2026, 11, 29, 1, tzinfo=UTC), datetime(2026, 12, 30, tzinfo=UTC), "met_late"),
])
def test_status(met_at, now, status):
    deadline = Deadline(due_at=datetime(2026, 11, 28, 12, tzinfo=UTC), met_at=met_at)
    assert deadline.status(now) == status


@pytest.mark.parametrize("item", [
    {"key": "k", "label": "l", "met_by": "t"},
    {"key": "k", "label": "l", "met_by": "t", "due_in": "P1D", "working_days": 3},
    {"key": "k", "label": "l", "met_by": "t", "due_in": "three days"},
    {"key": "Bad Key", "label": "l", "met_by": "t", "due_in": "P1D"},
    {"key": "k", "label": "", "met_by": "t", "due_in": "P1D"},
])
def test_start_parameters_are_checked(item):
    with pytest.raises(ValidationError):
        StartParams().load({"deadlines": [item]})


def test_start_parameters_default_to_included():
    loaded = StartParams().load({"deadlines": [{"key": "k", "label": "l", "met_by": "t", "working_days": 5}]})
    assert loaded["deadlines"][0]["when"] is True

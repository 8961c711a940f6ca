"""Deadline arithmetic and the deadlines.start parameters a diagram gives."""
from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from marshmallow import ValidationError

from app.models import Deadline
from app.services.deadlines import DeadlineSpec
from handlers.deadlines import StartParams

FRIDAY = datetime(2026, 11, 27, 16, 30, tzinfo=UTC)


@pytest.mark.parametrize(("spec", "holidays", "due"), [
    (DeadlineSpec("k", "l", "t", due_in="P1D"), (), datetime(2026, 11, 28, 16, 30, tzinfo=UTC)),
    (DeadlineSpec("k", "l", "t", due_in="PT24H"), (), datetime(2026, 11, 28, 16, 30, tzinfo=UTC)),
    (DeadlineSpec("k", "l", "t", working_days=1), (), datetime(2026, 11, 30, 16, 30, tzinfo=UTC)),
    (DeadlineSpec("k", "l", "t", working_days=5), (), datetime(2026, 12, 4, 16, 30, tzinfo=UTC)),
    (DeadlineSpec("k", "l", "t", working_days=5), (date(2026, 12, 1),), datetime(2026, 12, 7, 16, 30, tzinfo=UTC)),
    (DeadlineSpec("k", "l", "t", working_days=10), (), datetime(2026, 12, 11, 16, 30, tzinfo=UTC)),
])
def test_due_time_counts_durations_or_working_days(spec, holidays, due):
    assert spec.due_at(FRIDAY, holidays) == due


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

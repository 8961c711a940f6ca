"""The time left to a deadline as pages say it (static/js/countdown.js says it the same way)."""
from __future__ import annotations

from datetime import timedelta

import pytest

from app.web.common import countdown
from tests.conftest import T0


@pytest.mark.parametrize("left,text", [
    (timedelta(days=2, hours=3, minutes=59), "in 2 d 3 h"),
    (timedelta(days=1), "in 1 d"),
    (timedelta(hours=2, minutes=5, seconds=59), "in 2 h 5 min"),
    (timedelta(hours=5), "in 5 h"),
    (timedelta(seconds=30), "in 0 min"),
    (timedelta(0), "in 0 min"),
    (-timedelta(hours=5, seconds=30), "5 h overdue"),
    (-timedelta(days=3, minutes=10), "3 d overdue"),
])
def test_countdown_says_the_two_largest_units(left, text):
    assert countdown(T0 + left, T0) == text
    assert countdown((T0 + left).isoformat(), T0) == text  # the dashboard passes ISO text

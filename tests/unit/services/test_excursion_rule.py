"""The excursion rule on hand-made series: limits, gaps, tolerance windows, cumulative against continuous time out
of range, and the mean kinetic temperature against figures computed by hand."""
from __future__ import annotations

import pytest

from app.services.lots.excursion_rule import Rule, detect, mean_kinetic_temperature, out_segments

MIN = 60
HOUR = 3600
# 2-8 °C, 30 minutes tolerated within 24 hours, a reading every 5 minutes
RULE = Rule(low=200, high=800, tolerance_seconds=30 * MIN, window_seconds=24 * HOUR, interval_seconds=5 * MIN)


def series(*runs: tuple[int, float]) -> tuple[list[int], list[int]]:
    """(count, °C) runs of readings every 5 minutes from 0, as times and hundredths."""
    times, values = [], []
    for count, celsius in runs:
        for _ in range(count):
            times.append(len(times) * 5 * MIN)
            values.append(round(celsius * 100))
    return times, values


def test_a_reading_exactly_at_a_limit_is_inside():
    times, values = series((12, 5.0), (20, 8.0), (20, 2.0), (12, 5.0))
    assert out_segments(times, values, RULE) == []
    assert detect(times, values, RULE) == []


def test_a_hundredth_above_the_limit_is_out():
    times, values = series((12, 5.0), (7, 8.01), (12, 5.0))
    [found] = detect(times, values, RULE)
    assert (found.start, found.end, found.seconds_out) == (60 * MIN, 95 * MIN, 35 * MIN)


@pytest.mark.parametrize(("readings_out", "excursion"), [
    (5, False),  # 25 minutes
    (6, False),  # exactly 30 minutes: the tolerance itself is allowed
    (7, True),  # 35 minutes
])
def test_tolerance_is_more_than_thirty_minutes(readings_out, excursion):
    times, values = series((12, 5.0), (readings_out, 9.0), (12, 5.0))
    assert bool(detect(times, values, RULE)) is excursion


def test_cumulative_time_within_the_window_adds_up():
    """Three 15-minute peaks two hours apart: 45 minutes within 24 hours is one excursion over all three."""
    times, values = series((12, 5.0), (3, 9.0), (24, 5.0), (3, 9.0), (24, 5.0), (3, 9.0), (12, 5.0))
    [found] = detect(times, values, RULE)
    assert found.seconds_out == 45 * MIN and len(found.segments) == 3
    assert (found.start, found.end) == (60 * MIN, (12 + 3 + 24 + 3 + 24 + 3) * 5 * MIN)


def test_peaks_further_apart_than_the_window_do_not_add_up():
    """Three 15-minute peaks 25 hours apart: never more than 15 minutes in any 24 hours."""
    gap = 25 * 12  # 25 hours of readings
    times, values = series((12, 5.0), (3, 9.0), (gap, 5.0), (3, 9.0), (gap, 5.0), (3, 9.0), (12, 5.0))
    assert detect(times, values, RULE) == []


def test_a_continuous_excursion_and_a_short_window():
    rule = Rule(200, 800, 30 * MIN, 1 * HOUR, 5 * MIN)
    # two 20-minute peaks 2 hours apart: each window of an hour holds only 20 minutes
    times, values = series((12, 5.0), (4, 9.0), (24, 5.0), (4, 9.0), (12, 5.0))
    assert detect(times, values, rule) == []
    # one continuous 40-minute peak is an excursion whatever the window
    times, values = series((12, 5.0), (8, 9.0), (12, 5.0))
    assert [f.seconds_out for f in detect(times, values, rule)] == [40 * MIN]


def test_a_gap_next_to_an_out_of_range_reading_counts_as_out():
    """20 minutes out, then the logger is silent for 20 minutes (15 beyond its interval), then back in range:
    the silence next to the high reading is counted, 20 + 15 = 35 minutes > 30."""
    times, values = series((12, 5.0), (4, 9.0))
    times += [times[-1] + 20 * MIN + k * 5 * MIN for k in range(12)]
    values += [500] * 12
    [found] = detect(times, values, RULE)
    assert found.seconds_out == 35 * MIN and found.seconds_unknown == 15 * MIN


def test_a_gap_between_readings_in_range_counts_as_nothing():
    times, values = series((12, 5.0))
    times += [times[-1] + 6 * HOUR + k * 5 * MIN for k in range(12)]
    values += [500] * 12
    assert out_segments(times, values, RULE) == []


def test_a_lower_limit_and_no_upper_limit():
    rule = Rule(low=1500, high=None, tolerance_seconds=0, window_seconds=HOUR, interval_seconds=5 * MIN)
    times, values = series((3, 20.0), (1, 14.99), (3, 40.0))
    [found] = detect(times, values, rule)
    assert found.seconds_out == 5 * MIN


def test_time_before_a_closed_excursion_is_not_counted_again():
    times, values = series((12, 5.0), (12, 9.0), (12, 5.0))
    [found] = detect(times, values, RULE)
    assert detect(times, values, RULE, after=found.end) == []
    # the last 35 minutes of it, after a closed excursion that ended 25 minutes after it began
    [later] = detect(times, values, RULE, after=found.start + 25 * MIN)
    assert later.seconds_out == 35 * MIN


def test_mean_kinetic_temperature_of_two_equal_readings():
    """20 °C and 30 °C: exp(-10000/293.15) = 1.53196e-15, exp(-10000/303.15) = 4.71999e-15, mean 3.12597e-15,
    -ln = 33.3992, 10000 / 33.3992 = 299.41 K = 26.26 °C (the arithmetic mean is 25 °C)."""
    mkt = mean_kinetic_temperature([0, 300], [2000, 3000], 300)
    assert mkt == pytest.approx(26.26, abs=0.005)


def test_mean_kinetic_temperature_weighs_a_peak():
    """Three readings at 25 °C and one at 40 °C: 31.28 °C by hand, well above the 28.75 °C arithmetic mean."""
    assert mean_kinetic_temperature([0, 300, 600, 900], [2500, 2500, 2500, 4000], 300) == pytest.approx(
        31.275, abs=0.005)
    assert mean_kinetic_temperature([0], [500], 300) == pytest.approx(5.0)
    assert mean_kinetic_temperature([], [], 300) is None


def test_readings_further_apart_than_the_interval_weigh_only_their_interval():
    """A reading followed by a gap stands for one interval, not for the whole gap."""
    assert mean_kinetic_temperature([0, 300, 10_000], [2000, 3000, 3000], 300) == pytest.approx(
        mean_kinetic_temperature([0, 300, 600], [2000, 3000, 3000], 300))

"""The excursion rule on one sensor's readings, free of the database: which time counts as out of range, when that
time makes an excursion, and the mean kinetic temperature (ICH Q1A(R2)).

Times are whole seconds, values hundredths of the unit (as the readings table stores them). The rule, precisely:

1. A reading stands for its value from its time until the next reading, but for at most the sensor's logging
   interval. A reading *exactly at* a limit is inside the range; only a value below the minimum or above the
   maximum is out.
2. Time between two readings beyond the logging interval is a *gap*: unknown. A gap next to an out-of-range
   reading (before or after it) counts as out of range (conservatively); a gap between two readings inside the
   range does not.
3. Out-of-range time (known and gap) forms segments; segments closer than the window to each other belong to one
   episode. An episode is an excursion when some stretch of `window` seconds holds *more than* `tolerance`
   seconds out of range (cumulative, not necessarily continuous). Exactly the tolerance is not an excursion.
4. The excursion spans its episode: first out-of-range second to the last; its minutes out are all the episode's
   out-of-range time, its extremes and its mean kinetic temperature are over the readings in that span.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

# ICH Q1A(R2): activation energy 83.144 kJ/mol, gas constant 8.3144 J/(mol K): delta-H / R = 10,000 K.
DELTA_H_OVER_R = 83.144e3 / 8.3144
KELVIN = 273.15


@dataclass(frozen=True)
class Rule:
    low: int | None  # hundredths; None: no lower limit
    high: int | None
    tolerance_seconds: int
    window_seconds: int
    interval_seconds: int

    def out(self, value: int) -> bool:
        return (self.low is not None and value < self.low) or (self.high is not None and value > self.high)


@dataclass
class Segment:
    start: int
    end: int
    unknown: int = 0  # seconds of the segment that are data gaps

    @property
    def seconds(self) -> int:
        return self.end - self.start


@dataclass
class Found:
    start: int
    end: int
    seconds_out: int
    seconds_unknown: int
    segments: list[Segment]


def out_segments(times: Sequence[int], values: Sequence[int], rule: Rule) -> list[Segment]:
    """The out-of-range time of a series (sorted by time) as merged segments, gaps counted per point 2."""
    segments: list[Segment] = []

    def add(start: int, end: int, unknown: bool) -> None:
        if end <= start:
            return
        if segments and segments[-1].end >= start:
            segments[-1].end = max(segments[-1].end, end)
            segments[-1].unknown += (end - start) if unknown else 0
        else:
            segments.append(Segment(start, end, (end - start) if unknown else 0))

    count = len(times)
    for i in range(count):
        time, out = times[i], rule.out(values[i])
        following = times[i + 1] if i + 1 < count else time + rule.interval_seconds
        covered = min(following, time + rule.interval_seconds)
        if out:
            add(time, covered, False)
        if following > covered and (out or (i + 1 < count and rule.out(values[i + 1]))):
            add(covered, following, True)
    return segments


def _max_in_window(segments: list[Segment], window: int) -> int:
    """The most out-of-range seconds any stretch of `window` seconds holds (it starts at some segment's start)."""
    best, j, inside = 0, 0, 0  # inside: seconds of the segments i..j-1, all wholly within the window
    for i, first in enumerate(segments):
        if j < i:
            j, inside = i, 0
        limit = first.start + window
        while j < len(segments) and segments[j].end <= limit:
            inside += segments[j].seconds
            j += 1
        partial = max(0, limit - segments[j].start) if j < len(segments) else 0
        best = max(best, inside + partial)
        if j > i:
            inside -= first.seconds
    return best


def detect(times: Sequence[int], values: Sequence[int], rule: Rule, after: int | None = None) -> list[Found]:
    """The excursions of a series; out-of-range time before `after` (an excursion already closed) is ignored."""
    segments = out_segments(times, values, rule)
    if after is not None:
        clipped = []
        for segment in segments:
            if segment.end <= after:
                continue
            if segment.start < after:
                share = (segment.end - after) / segment.seconds
                segment = Segment(after, segment.end, round(segment.unknown * share))
            clipped.append(segment)
        segments = clipped
    episodes: list[list[Segment]] = []
    for segment in segments:
        if episodes and segment.start - episodes[-1][-1].end < rule.window_seconds:
            episodes[-1].append(segment)
        else:
            episodes.append([segment])
    found = []
    for episode in episodes:
        if _max_in_window(episode, rule.window_seconds) > rule.tolerance_seconds:
            found.append(Found(episode[0].start, episode[-1].end, sum(s.seconds for s in episode),
                               sum(s.unknown for s in episode), episode))
    return found


def mean_kinetic_temperature(times: Sequence[int], values: Sequence[int], interval_seconds: int) -> float | None:
    """MKT in degrees Celsius of readings in hundredths of a degree, each weighted by the time it stands for
    (until the next reading, at most the logging interval); equally spaced readings weigh the same, as in ICH Q1A.

        T_k = (dH/R) / -ln( sum(w_i * exp(-dH / (R * T_i))) / sum(w_i) )
    """
    if not times:
        return None
    total = weighted = 0.0
    for i, (time, value) in enumerate(zip(times, values, strict=True)):
        following = times[i + 1] if i + 1 < len(times) else time + interval_seconds
        weight = max(min(following - time, interval_seconds), 1)
        weighted += weight * math.exp(-DELTA_H_OVER_R / (value / 100 + KELVIN))
        total += weight
    return DELTA_H_OVER_R / -math.log(weighted / total) - KELVIN

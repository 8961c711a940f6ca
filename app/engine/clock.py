"""The engine's clock: SpiffWorkflow's timers read it, so tests and `flask timers tick --now` control time."""
from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from SpiffWorkflow.bpmn.specs.event_definitions import timer as spiff_timer

_now: contextvars.ContextVar[datetime | None] = contextvars.ContextVar("qualiflow_engine_now", default=None)


class _ClockedDatetime(datetime):
    """datetime whose now() answers the engine clock while one is set."""

    @classmethod
    def now(cls, tz=None):
        fixed = _now.get()
        if fixed is None:
            return datetime.now(tz)
        return fixed.astimezone(tz) if tz else fixed.astimezone(UTC).replace(tzinfo=None)


# SpiffWorkflow's timer event definitions call datetime.now(timezone.utc) directly; routing that one
# module-level name through our clock is the only way to fire timers at an explicit time.
spiff_timer.datetime = _ClockedDatetime


@contextmanager
def engine_time(now: datetime) -> Iterator[None]:
    """Run engine code as if the time were `now` (an aware datetime)."""
    if now.tzinfo is None:
        raise ValueError("engine_time needs an aware datetime")
    token = _now.set(now)
    try:
        yield
    finally:
        _now.reset(token)

"""Regulatory deadlines of an instance: started by a diagram's service task, met when a named step completes,
escalated by the diagram's timer when missed."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, select

from app.engine import parse_duration
from app.extensions import db
from app.models import Deadline, Task
from app.services.evidence import audit
from app.services.workflow import calendars
from app.services.workflow.calendars import WorkCalendar


@dataclass(frozen=True)
class DeadlineSpec:
    """One deadline as a diagram defines it: a duration or a number of working days from now."""

    key: str
    label: str
    met_by: str
    label_zh: str = ""
    due_in: str | None = None  # ISO 8601 duration, "P3D", "PT24H"
    working_days: int | None = None
    calendar: str | None = None  # the jurisdiction whose holidays count (US for FDA); None: the plant's

    def basis(self, calendar: WorkCalendar) -> str:
        if self.working_days is None:
            return str(self.due_in)
        return f"{self.working_days} working days ({calendar.jurisdiction} calendar)"

    def due_at(self, start: datetime, calendar: WorkCalendar) -> datetime:
        """Return start plus the duration, or the plant's local end of the last of the working days."""
        if self.working_days is not None:
            return calendar.end_of_working_day(start, self.working_days)
        return start + parse_duration(self.due_in or "")


_OPEN = "qualiflow_open_deadlines"  # session.info: (transaction, {instance id: its open deadlines})


# Built once (every step asks): building a statement and its cache key cost more than running it.
_OPEN_NOW = (Deadline.instance_id == bindparam("instance_id"), Deadline.met_at.is_(None))
_ANY_OPEN = select(Deadline.id).where(*_OPEN_NOW).limit(1)
_OPEN_ROWS = select(Deadline).where(*_OPEN_NOW).order_by(Deadline.id)


def _open_deadlines(instance_id: int) -> list[Deadline]:
    """The instance's open deadlines, read once per transaction (or savepoint) of a use case, which marks them met
    in memory: completing a step asked for them three times, each query flushing the session first."""
    session = db.session()
    transaction = session.get_nested_transaction() or session.get_transaction()
    cached = session.info.get(_OPEN)
    if cached is None or cached[0] is not transaction:
        cached = session.info[_OPEN] = (transaction, {})
    if instance_id not in cached[1]:
        # Most instances have no open deadline: a plain probe on the connection finds that without loading objects
        # (or flushing: pending writes never change deadlines, start_deadlines flushes its own).
        found = session.connection().execute(_ANY_OPEN, {"instance_id": instance_id}).first()
        with session.no_autoflush:
            cached[1][instance_id] = list(session.scalars(_OPEN_ROWS, {"instance_id": instance_id})) if found else []
    return cached[1][instance_id]


def open_deadlines_of(instance_ids: list[int]) -> dict[int, list[Deadline]]:
    """The open deadlines of many instances in one query (the timer tick's batch), for use_open_deadlines."""
    found: dict[int, list[Deadline]] = {instance_id: [] for instance_id in instance_ids}
    with db.session.no_autoflush:
        for deadline in db.session.scalars(select(Deadline).where(
                Deadline.instance_id.in_(instance_ids), Deadline.met_at.is_(None)).order_by(Deadline.id)):
            found[deadline.instance_id].append(deadline)
    return found


def use_open_deadlines(instance_id: int, deadlines: list[Deadline]) -> None:
    """Let this transaction (or savepoint) use the instance's open deadlines read by open_deadlines_of."""
    session = db.session()
    transaction = session.get_nested_transaction() or session.get_transaction()
    cached = session.info.get(_OPEN)
    if cached is None or cached[0] is not transaction:
        cached = session.info[_OPEN] = (transaction, {})
    cached[1][instance_id] = [d for d in deadlines if d.met_at is None]


def start_deadlines(instance_id: int, specs: Iterable[DeadlineSpec], now: datetime) -> list[Deadline]:
    """Create the instance's deadlines counted from now; a key that already exists keeps its first due date."""
    db.session.info.pop(_OPEN, None)
    existing = {d.key: d for d in db.session.scalars(select(Deadline).where(Deadline.instance_id == instance_id))}
    result = []
    for spec in specs:
        deadline = existing.get(spec.key)
        if deadline is None:
            calendar = calendars.work_calendar(spec.calendar)
            deadline = Deadline(instance_id=instance_id, key=spec.key, label=spec.label, label_zh=spec.label_zh,
                                basis=spec.basis(calendar), met_by=spec.met_by, started_at=now,
                                due_at=spec.due_at(now, calendar))
            db.session.add(deadline)
            audit.record(None, "deadline.started", "deadline", spec.key, instance_id=instance_id, at=now,
                         new={"label": spec.label, "basis": deadline.basis, "met_by": spec.met_by,
                              "due_at": deadline.due_at.isoformat()})
        result.append(deadline)
    db.session.flush()
    return result


def align_tasks(instance_id: int, tasks: Iterable[Task]) -> None:
    """Give the new tasks that meet an open deadline that deadline's due time, so the inbox and the rule agree."""
    due = {d.met_by: d.due_at for d in _open_deadlines(instance_id) if d.met_at is None}
    for task in tasks:
        if task.element_id in due:
            task.due_at = due[task.element_id]


def mark_met(instance_id: int, element_ids: Iterable[str], now: datetime) -> list[Deadline]:
    """Record that the steps element_ids completed: the open deadlines they satisfy are met now."""
    element_ids = set(element_ids)
    if not element_ids:
        return []
    met = [d for d in _open_deadlines(instance_id) if d.met_by in element_ids and d.met_at is None]
    for deadline in met:
        deadline.met_at = now
        audit.record(None, "deadline.met", "deadline", deadline.key, instance_id=instance_id, at=now,
                     new={"due_at": deadline.due_at.isoformat(), "status": deadline.status(now)})
    return met


def escalate(instance_id: int, key: str, now: datetime) -> Deadline | None:
    """Mark a missed deadline escalated (once); return it, or None when there is no such open deadline."""
    deadline = db.session.scalar(select(Deadline).where(Deadline.instance_id == instance_id, Deadline.key == key))
    if deadline is None or deadline.met_at is not None or deadline.escalated_at is not None:
        return None
    deadline.escalated_at = now
    audit.record(None, "deadline.escalated", "deadline", key, instance_id=instance_id, at=now,
                 new={"due_at": deadline.due_at.isoformat()})
    return deadline


def instance_deadlines(instance_id: int) -> list[Deadline]:
    return list(db.session.scalars(select(Deadline).where(Deadline.instance_id == instance_id)
                                   .order_by(Deadline.due_at, Deadline.id)))

"""Regulatory deadlines of an instance: started by a diagram's service task, met when a named step completes,
escalated by the diagram's timer when missed."""
from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select

from app.engine import add_working_days, parse_duration
from app.extensions import db
from app.models import Deadline
from app.services import audit


@dataclass(frozen=True)
class DeadlineSpec:
    """One deadline as a diagram defines it: a duration or a number of working days from now."""

    key: str
    label: str
    met_by: str
    label_zh: str = ""
    due_in: str | None = None  # ISO 8601 duration, "P3D", "PT24H"
    working_days: int | None = None

    @property
    def basis(self) -> str:
        return f"{self.working_days} working days" if self.working_days is not None else str(self.due_in)

    def due_at(self, start: datetime, holidays: Collection[date]) -> datetime:
        if self.working_days is not None:
            return add_working_days(start, self.working_days, holidays)
        return start + parse_duration(self.due_in or "")


def start_deadlines(instance_id: int, specs: Iterable[DeadlineSpec], now: datetime,
                    holidays: Collection[date] = ()) -> list[Deadline]:
    """Create the instance's deadlines counted from now; a key that already exists keeps its first due date."""
    existing = {d.key: d for d in db.session.scalars(select(Deadline).where(Deadline.instance_id == instance_id))}
    result = []
    for spec in specs:
        deadline = existing.get(spec.key)
        if deadline is None:
            deadline = Deadline(instance_id=instance_id, key=spec.key, label=spec.label, label_zh=spec.label_zh,
                                basis=spec.basis, met_by=spec.met_by, started_at=now,
                                due_at=spec.due_at(now, holidays))
            db.session.add(deadline)
            audit.record(None, "deadline.started", "deadline", spec.key, instance_id=instance_id, at=now,
                         new={"label": spec.label, "basis": spec.basis, "met_by": spec.met_by,
                              "due_at": deadline.due_at.isoformat()})
        result.append(deadline)
    db.session.flush()
    return result


def mark_met(instance_id: int, element_ids: Iterable[str], now: datetime) -> list[Deadline]:
    """Record that the steps element_ids completed: the open deadlines they satisfy are met now."""
    element_ids = set(element_ids)
    if not element_ids:
        return []
    met = list(db.session.scalars(select(Deadline).where(
        Deadline.instance_id == instance_id, Deadline.met_by.in_(element_ids), Deadline.met_at.is_(None))))
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

"""Fire due BPMN timers: only instances whose indexed next_timer_at has passed are touched.

Each instance fires in its own transaction; one that fails (a handler bug, a value the database refuses)
is rolled back alone and put in incident, and the tick goes on with the others.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select

from app import engine
from app.extensions import db
from app.models import ProcessInstance
from app.models.types import utcnow
from app.outage import database_unavailable
from app.services.evidence import audit
from app.services.workflow.execution import engine_context
from app.services.workflow.instances import record_failure, record_outcome

log = logging.getLogger(__name__)


@dataclass
class TickReport:
    fired: int = 0
    failed: list[int] = field(default_factory=list)  # instances put in incident because their step raised


def fire_due_timers(now: datetime | None = None, limit: int = 200) -> int:
    """Fire the timers due at `now`; one transaction per instance; return how many instances advanced."""
    return tick(now, limit).fired


def due_instance_ids(now: datetime, limit: int = 200) -> list[int]:
    """The running instances whose next timer is due at `now`, earliest first: one range of the
    (status, next_timer_at) index, so an idle tick reads nothing however many instances wait."""
    return list(db.session.scalars(
        select(ProcessInstance.id).where(ProcessInstance.status == "running", ProcessInstance.next_timer_at <= now)
        .order_by(ProcessInstance.next_timer_at).limit(limit)))


def tick(now: datetime | None = None, limit: int = 200) -> TickReport:
    """Fire the timers due at `now`, each instance on its own; report which advanced and which failed."""
    now = now or utcnow()
    report = TickReport()
    due_ids = due_instance_ids(now, limit)
    context = engine_context(now) if due_ids else None  # one tick, one clock and calendar for every instance
    db.session.rollback()
    for instance_id in due_ids:
        # SKIP LOCKED lets several schedulers share the work on PostgreSQL; the re-check makes a late one a no-op.
        # OF limits the lock to the instance row: PostgreSQL refuses FOR UPDATE across the joined-eager version.
        instance = db.session.scalar(
            select(ProcessInstance).where(ProcessInstance.id == instance_id, ProcessInstance.next_timer_at <= now,
                                          ProcessInstance.status == "running")
            .with_for_update(skip_locked=True, of=ProcessInstance))
        if instance is None:
            db.session.rollback()
            continue
        try:
            due_at = instance.next_timer_at
            outcome = engine.fire_timers(instance, context)
            audit.record(None, "timer.fired", "instance", instance.id, instance_id=instance.id, at=now,
                         new={"due_at": due_at.isoformat()})
            record_outcome(None, instance, outcome, now)
            db.session.commit()
            report.fired += 1
        except Exception as err:  # this instance only: the others still fire
            db.session.rollback()
            if database_unavailable(err):
                raise  # the database, not the instance, failed: no incident; the next tick fires it
            log.exception("timer of instance %s failed", instance_id)
            record_failure(instance_id, err, now)
            report.failed.append(instance_id)
    return report

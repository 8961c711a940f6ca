"""Fire due BPMN timers: only instances whose indexed next_timer_at has passed are touched.

The due instances are fired in batches of BATCH, one transaction each: one commit (on SQLite one fsync and one
BEGIN IMMEDIATE), one ORM flush and one move of the audit chain's head per batch instead of per instance, and the
batch's task rows and deadlines read in one query each. The batch bounds how long the tick holds SQLite's write
lock (about BATCH x 2 ms), which requests then wait for.

An instance that fails (a handler bug, a value the database refuses) must not stop the others: when anything in a
batch fails, the whole batch is rolled back and fired again with each instance in a savepoint of its own; the one
that fails is rolled back alone and put in incident, and the others fire.
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
from app.services.workflow import deadlines
from app.services.workflow.execution import engine_context
from app.services.workflow.instances import record_failure, record_outcome

log = logging.getLogger(__name__)
BATCH = 25  # instances per transaction


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
    for start in range(0, len(due_ids), BATCH):
        batch = due_ids[start:start + BATCH]
        fired = _fire_together(batch, now, context)
        failures = []
        if fired is None:  # one of them failed: again, each instance in a savepoint of its own
            fired, failures = _fire_isolated(batch, now, context)
        report.fired += fired
        for instance_id, err in failures:  # each in its own transaction, after the batch's commit
            record_failure(instance_id, err, now)
            report.failed.append(instance_id)
    return report


def _due_batch(ids: list[int], now: datetime) -> tuple[list[ProcessInstance], dict, dict]:
    """Lock and load the instances of ids still due, with what their steps read: ready task rows and open
    deadlines, each read for the whole batch in one query."""
    # SKIP LOCKED lets several schedulers share the work on PostgreSQL; the re-check makes a late one a no-op.
    # OF limits the lock to the instance rows: PostgreSQL refuses FOR UPDATE across the joined-eager version.
    instances = db.session.scalars(
        select(ProcessInstance).where(ProcessInstance.id.in_(ids), ProcessInstance.next_timer_at <= now,
                                      ProcessInstance.status == "running")
        .order_by(ProcessInstance.next_timer_at, ProcessInstance.id)
        .with_for_update(skip_locked=True, of=ProcessInstance)).all()
    found = [instance.id for instance in instances]
    if not found:
        return [], {}, {}
    return instances, engine.open_rows_of(found), deadlines.open_deadlines_of(found)


def _fire_one(instance: ProcessInstance, now: datetime, context, open_rows: dict, open_deadlines: dict) -> None:
    instance_id, due_at = instance.id, instance.next_timer_at
    deadlines.use_open_deadlines(instance_id, open_deadlines[instance_id])
    outcome = engine.fire_timers(instance, context, open_rows=open_rows[instance_id])
    audit.record(None, "timer.fired", "instance", instance_id, instance_id=instance_id, at=now,
                 new={"due_at": due_at.isoformat()})
    record_outcome(None, instance, outcome, now)


def _fire_together(ids: list[int], now: datetime, context) -> int | None:
    """The usual case: fire the batch's timers in one transaction with one flush. None (everything rolled back)
    when any of them raised or the database refused a row: the caller then fires them one by one."""
    try:
        instances, open_rows, open_deadlines = _due_batch(ids, now)
        for instance in instances:
            _fire_one(instance, now, context, open_rows, open_deadlines)
        db.session.commit()
        return len(instances)
    except Exception as err:
        db.session.rollback()
        if database_unavailable(err):
            raise  # the database, not an instance, failed: no incident; the next tick fires them
        return None
    except BaseException:
        db.session.rollback()
        raise


def _fire_isolated(ids: list[int], now: datetime, context) -> tuple[int, list[tuple[int, Exception]]]:
    """Fire the batch's timers in one transaction, each instance in a savepoint of its own, so one that fails
    is rolled back alone; return how many fired and the failures."""
    failures, fired = [], 0
    try:
        instances, open_rows, open_deadlines = _due_batch(ids, now)
        for instance in instances:
            instance_id = instance.id
            mark = audit.position()
            savepoint = db.session.begin_nested()
            try:
                _fire_one(instance, now, context, open_rows, open_deadlines)
                savepoint.commit()  # flushes: a value the database refuses fails here, in this savepoint
                fired += 1
            except Exception as err:  # this instance only: the others still fire
                savepoint.rollback()
                audit.rewind(mark)
                if database_unavailable(err):
                    raise  # the database, not the instance, failed: no incident; the next tick fires it
                log.exception("timer of instance %s failed", instance_id)
                failures.append((instance_id, err))
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    return fired, failures

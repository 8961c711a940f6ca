"""Procedure instances: start, read (with evidence and history), retry after an incident, cancel."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from flask_babel import gettext as _
from sqlalchemy import Select, func, select

from app import engine
from app.exceptions import Conflict, FormInvalid, NotFound, PermissionDenied
from app.extensions import db
from app.models import (
    AuditEvent,
    Deadline,
    Document,
    Incident,
    InstanceLot,
    MaterialLot,
    ProcessDefinition,
    ProcessInstance,
    ProcessVersion,
    ProductLot,
    Signature,
    Task,
    User,
)
from app.models.instances import OPEN_STATES
from app.models.types import utcnow
from app.models.users import OWNER_ROLES, WORKER_ROLES
from app.services.evidence import audit
from app.services.workflow import deadlines, forms, processes
from app.services.workflow.execution import engine_context
from app.services.workflow.transaction import atomic

log = logging.getLogger(__name__)


def of_process(query: Select, key: str, *, open_only: bool = False) -> Select:
    """Narrow a query over ProcessInstance to the instances of one procedure (only open ones, if asked)."""
    query = (query.join(ProcessVersion, ProcessVersion.id == ProcessInstance.version_id)
             .join(ProcessDefinition, ProcessDefinition.id == ProcessVersion.definition_id)
             .where(ProcessDefinition.key == key))
    return query.where(ProcessInstance.status.in_(OPEN_STATES)) if open_only else query


def require_worker(actor: User) -> None:
    """Refuse read-only accounts (auditors) anything that changes records."""
    if not actor.has_role(*WORKER_ROLES):
        raise PermissionDenied("Your account is read-only.")


def record_outcome(actor: User | None, instance: ProcessInstance, outcome: engine.StepOutcome, now: datetime) -> None:
    """Audit what an engine run did beyond the user's own action."""
    for row in outcome.automated:
        audit.record(actor, "task.automated", "task", row.spiff_id, instance_id=instance.id, at=now,
                     new={"element": row.element_id, "result": row.data})
    deadlines.align_tasks(instance.id, outcome.created)
    for row in outcome.created:
        created = {"element": row.element_id, "group": row.group_name,
                   "due_at": row.due_at.isoformat() if row.due_at else None}
        if row.assignee is not None:  # assigned by the diagram (a task property), not claimed
            created["assignee"] = row.assignee.username
        audit.record(actor, "task.created", "task", row.spiff_id, instance_id=instance.id, at=now, new=created)
    for row in outcome.cancelled:
        audit.record(actor, "task.cancelled", "task", row.spiff_id, instance_id=instance.id, at=now,
                     new={"element": row.element_id})
    deadlines.mark_met(instance.id, [row.element_id for row in outcome.automated], now)
    if outcome.incident is not None:
        audit.record(actor, "incident.raised", "instance", instance.id, instance_id=instance.id, at=now,
                     new={"element": outcome.incident.element_id, "message": outcome.incident.message})
    if outcome.completed:
        audit.record(actor, "instance.completed", "instance", instance.id, instance_id=instance.id, at=now)


def record_failure(instance_id: int, err: Exception, now: datetime) -> None:
    """Put an instance in incident for a step that raised and was rolled back (its own transaction).

    Used where no user waits for an answer (the timer tick): the failure must not stop other instances.
    """
    try:
        with atomic():
            instance = get_instance(instance_id)
            outcome = engine.record_failure(instance, err, engine_context(now))
            record_outcome(None, instance, outcome, now)
    except Exception:  # the database itself is failing: the next tick tries again
        log.exception("could not record the failure of instance %s", instance_id)


def start_instance(process_key: str, actor: User, data: dict | None = None, *, title: str = "",
                   language: str | None = None, now: datetime | None = None) -> ProcessInstance:
    """Start the effective version of a process (the newest approved one whose effective date has come) as actor and
    run it to its first wait; 409 when the process has no effective version yet."""
    require_worker(actor)
    now = now or utcnow()
    forms.require_storable(data or {}, language or actor.language)
    with atomic():  # an unknown process rolls back too, so no read transaction (and lock) is left open
        version = processes.version_to_start(process_key, now)
        instance = ProcessInstance(version=version, title=title or version.definition.name, started_by=actor,
                                   started_at=now, language=language or actor.language, status="running")
        db.session.add(instance)
        db.session.flush()
        outcome = engine.start(instance, dict(data or {}), engine_context(now))
        audit.record(actor, "instance.started", "instance", instance.id, instance_id=instance.id, at=now,
                     new={"process": process_key, "version": version.version, "title": instance.title})
        record_outcome(actor, instance, outcome, now)
    return instance


def get_instance(instance_id: int) -> ProcessInstance:
    instance = db.session.get(ProcessInstance, instance_id)
    if instance is None:
        raise NotFound(_("No instance %(id)s.", id=instance_id))
    return instance


@dataclass
class InstanceRecord:
    """Everything the instance page and the API show: tasks, evidence, incidents, deadlines and the audit history."""

    instance: ProcessInstance
    tasks: list[Task]
    documents: list[Document]
    signatures: list[Signature]
    incidents: list[Incident]
    audit: list[AuditEvent]
    deadlines: list[Deadline]
    lots: list[LinkedLot]


@dataclass(frozen=True)
class LinkedLot:
    """A lot an instance concerns and how (subject, containment, affected, hold...)."""

    role: str
    kind: str
    id: int
    lot_number: str
    status: str


def linked_lots(instance_id: int) -> list[LinkedLot]:
    rows = db.session.execute(
        select(InstanceLot.role, ProductLot, MaterialLot)
        .outerjoin(ProductLot, ProductLot.id == InstanceLot.product_lot_id)
        .outerjoin(MaterialLot, MaterialLot.id == InstanceLot.material_lot_id)
        .where(InstanceLot.instance_id == instance_id).order_by(InstanceLot.id))
    return [LinkedLot(role, lot.kind, lot.id, lot.lot_number, lot.status)
            for role, product, material in rows for lot in (product or material,)]


def instance_record(instance_id: int) -> InstanceRecord:
    instance = get_instance(instance_id)

    def rows(model, order):
        return list(db.session.scalars(select(model).where(model.instance_id == instance_id).order_by(order)))

    return InstanceRecord(
        instance=instance, tasks=rows(Task, Task.id), documents=rows(Document, Document.id),
        signatures=rows(Signature, Signature.id), incidents=rows(Incident, Incident.id),
        audit=rows(AuditEvent, AuditEvent.id), deadlines=deadlines.instance_deadlines(instance_id),
        lots=linked_lots(instance_id))


def list_instances(*, status: str | None = None, process_key: str | None = None, page: int = 1,
                   per_page: int = 20):
    """Return a page of instances, newest first."""
    query = select(ProcessInstance).order_by(ProcessInstance.id.desc())
    if status:
        query = query.where(ProcessInstance.status == status)
    if process_key:
        query = query.join(ProcessVersion).join(ProcessDefinition).where(ProcessDefinition.key == process_key)
    return db.paginate(query, page=page, per_page=per_page, error_out=False)


def retry_instance(instance_id: int, actor: User, now: datetime | None = None) -> ProcessInstance:
    """Retry the failed task of an instance with an incident (admins only)."""
    if not actor.has_role("admin"):
        raise PermissionDenied("Only administrators can retry incidents.")
    now = now or utcnow()
    with atomic():
        instance = get_instance(instance_id)
        outcome = engine.retry(instance, engine_context(now))
        audit.record(actor, "incident.retried", "instance", instance.id, instance_id=instance.id, at=now)
        record_outcome(actor, instance, outcome, now)
    return instance


@dataclass(frozen=True)
class StalledInstance:
    """A running instance that nothing can move on, now in incident."""

    instance_id: int
    title: str
    process_key: str
    element_id: str | None
    message: str


def check_running(actor: User | None = None, now: datetime | None = None) -> tuple[int, list[StalledInstance]]:
    """Look at every running instance for a stall and put each stalled one in incident (audited).

    Return how many were checked and the stalled ones. Only instances with no ready task and no timer
    are loaded at all: the others are waiting for someone or something by construction.
    """
    if actor is not None and not actor.has_role("admin"):
        raise PermissionDenied("Only administrators can check running instances.")
    now = now or utcnow()
    ready = select(Task.id).where(Task.instance_id == ProcessInstance.id, Task.state == "ready")
    candidates = list(db.session.scalars(
        select(ProcessInstance.id).where(ProcessInstance.status == "running", ProcessInstance.next_timer_at.is_(None),
                                         ~ready.exists()).order_by(ProcessInstance.id)))
    checked = db.session.scalar(select(func.count()).where(ProcessInstance.status == "running")) or 0
    db.session.rollback()
    stalled = []
    for instance_id in candidates:
        with atomic():
            instance = db.session.scalar(
                select(ProcessInstance).where(ProcessInstance.id == instance_id, ProcessInstance.status == "running")
                .with_for_update(skip_locked=True, of=ProcessInstance))
            if instance is None:  # moved on (or locked by a step) meanwhile
                continue
            outcome = engine.check(instance, engine_context(now))
            if outcome.incident is not None:
                record_outcome(actor, instance, outcome, now)
                stalled.append(StalledInstance(instance.id, instance.title, instance.version.definition.key,
                                               outcome.incident.element_id, outcome.incident.message))
    return checked, stalled


def get_document(document_id: int) -> Document:
    document = db.session.get(Document, document_id)
    if document is None:
        raise NotFound(_("No document %(id)s.", id=document_id))
    return document


def list_incidents(page: int = 1, per_page: int = 20):
    """Return a page of unresolved incidents, oldest first."""
    query = select(Incident).where(Incident.resolved_at.is_(None)).order_by(Incident.id)
    return db.paginate(query, page=page, per_page=per_page, error_out=False)


def cancel_instance(instance_id: int, actor: User, reason: str, now: datetime | None = None) -> ProcessInstance:
    """Cancel a running instance with a recorded reason (admins and process owners)."""
    if not actor.has_role(*OWNER_ROLES):
        raise PermissionDenied("Only administrators and process owners can cancel an instance.")
    reason = reason.strip()
    if not reason:
        raise FormInvalid({"reason": ["Give a reason for cancelling."]})
    now = now or utcnow()
    with atomic():
        instance = get_instance(instance_id)
        if instance.status in ("completed", "cancelled"):
            raise Conflict(_("This instance is already %(status)s.", status=_(instance.status)))
        outcome = engine.cancel(instance, engine_context(now))
        audit.record(actor, "instance.cancelled", "instance", instance.id, instance_id=instance.id, at=now,
                     reason=reason)
        record_outcome(actor, instance, outcome, now)
    return instance

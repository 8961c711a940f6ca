"""Check stored evidence against what was recorded when it was made: document bytes against their
SHA-256, signatures against the audit event that applied them, completed steps against the audit event that
recorded them, stock levels against the stock movement ledger; a tampered document is never served."""
from __future__ import annotations

import hashlib
from datetime import datetime

from flask_babel import gettext
from sqlalchemy import func, select

from app.engine import data_hash
from app.exceptions import EvidenceTampered
from app.extensions import db
from app.models import (
    AuditEvent,
    Document,
    Incident,
    ProcessInstance,
    ProductLot,
    Signature,
    StockLevel,
    StockMovement,
    Task,
    User,
)
from app.models.types import utcnow
from app.services.evidence import audit
from app.services.evidence.document_rendering import stored_fingerprint
from app.services.workflow.instances import get_document
from app.services.workflow.transaction import atomic


def document_problem(document: Document, stored: dict | None) -> str | None:
    """Say how a document differs from what was recorded when it was stored (its row's SHA-256 and size, and
    the document.stored audit event when there is one), or None when it matches."""
    digest = hashlib.sha256(document.content).hexdigest()
    if digest != document.sha256 or len(document.content) != document.size:
        return (f"document {document.id} ({document.filename}): the stored bytes (SHA-256 {digest[:12]}…, "
                f"{len(document.content)} bytes) do not match the recorded SHA-256 {document.sha256[:12]}… "
                f"({document.size} bytes)")
    if stored is not None and stored != stored_fingerprint(document):
        return (f"document {document.id} ({document.filename}): the row no longer matches what the "
                f"document.stored audit event recorded (SHA-256 {str(stored.get('sha256'))[:12]}…)")
    return None


def verify_documents() -> list[str]:
    """Re-hash every stored document; return one problem per document whose bytes or record changed."""
    stored = {event.object_id: event.new for event in db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "document.stored"))}
    problems = []
    for document_id in db.session.scalars(select(Document.id).order_by(Document.id)).all():
        document = db.session.get(Document, document_id)
        problem = document_problem(document, stored.get(str(document.id)))
        if problem:
            problems.append(problem)
        db.session.expire(document, ["content"])  # keep one document's bytes in memory at a time
    return problems


def verify_signatures() -> list[str]:
    """Compare every signature with the audit event that applied it; return one problem per mismatch."""
    applied = {event.object_id: event for event in db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "signature.applied", AuditEvent.object_type == "signature"))}
    documents = {document.id: document.sha256 for document in db.session.execute(
        select(Document.id, Document.sha256))}
    problems = []
    for signature in db.session.scalars(select(Signature).order_by(Signature.id)):
        event = applied.get(str(signature.id))
        if event is None:
            problems.append(f"signature {signature.id}: no signature.applied audit event records it")
            continue
        recorded = event.new or {}
        changed = [name for name, stored, expected in (
            ("printed name", signature.printed_name, recorded.get("printed_name")),
            ("meaning", signature.meaning, recorded.get("meaning")),
            ("signed hash", signature.signed_hash, recorded.get("hash")),
            ("signer", signature.user_id, event.actor_id),
            ("time", signature.signed_at, event.at),
            ("documents", signature.documents, recorded.get("documents")),
        ) if stored != expected]
        changed += [f"document {item['id']} bytes" for item in signature.documents
                    if documents.get(item["id"]) != item["sha256"]]
        if changed:
            problems.append(f"signature {signature.id} (instance {signature.instance_id}) does not match "
                            f"audit event {event.id}: {', '.join(changed)}")
    return problems


COMPLETION_CHUNK = 500  # instances compared per round: memory stays bounded however long the trail


def verify_completions() -> list[str]:
    """Compare every step a person completed (its task row: who, when, the data entered and its hash) with the
    task.completed audit event that recorded it; return one problem per row that differs or that no event records.

    Task rows are what the inbox, the instance page and four-eyes read; the audit trail is chained and anchored. A
    row edited in the database (another completer, a changed answer) is named here, as a signature is."""
    instance_ids = list(db.session.scalars(select(Task.instance_id).where(Task.completed_by_id.is_not(None))
                                           .distinct().order_by(Task.instance_id)))
    problems = []
    for start in range(0, len(instance_ids), COMPLETION_CHUNK):
        chunk = instance_ids[start:start + COMPLETION_CHUNK]
        recorded = {(row.instance_id, row.object_id): row for row in db.session.execute(  # the last one wins
            select(AuditEvent.id, AuditEvent.instance_id, AuditEvent.object_id, AuditEvent.actor_id, AuditEvent.at,
                   AuditEvent.new)
            .where(AuditEvent.action == "task.completed", AuditEvent.instance_id.in_(chunk)).order_by(AuditEvent.id))}
        for row in db.session.execute(
                select(Task.id, Task.instance_id, Task.spiff_id, Task.element_id, Task.completed_by_id,
                       Task.completed_at, Task.data, Task.data_hash)
                .where(Task.completed_by_id.is_not(None), Task.instance_id.in_(chunk)).order_by(Task.id)):
            problem = _completion_problem(row, recorded.get((row.instance_id, row.spiff_id)))
            if problem:
                problems.append(problem)
    return problems


def _completion_problem(row, event) -> str | None:
    where = f"task {row.id} ({row.element_id}, instance {row.instance_id})"
    if event is None:
        return f"{where}: completed by user {row.completed_by_id}, but no task.completed audit event records it"
    data = row.data or {}
    changed = [name for name, stored, expected in (
        ("completed by", row.completed_by_id, event.actor_id),
        ("time", row.completed_at, event.at),
        ("data", data, (event.new or {}).get("data")),
    ) if stored != expected]
    if row.data_hash != data_hash(data):
        changed.append("data hash")
    return f"{where} does not match audit event {event.id}: {', '.join(changed)}" if changed else None


def verify_stock() -> list[str]:
    """Compare every stock level with the append-only stock movement ledger: the level must be the balance its last
    movement left, and the movements' changes must add up to that balance. A level edited in the database (goods
    that appear or vanish without a receipt, shipment or scrap) is named with the lot and location."""
    per_place = (select(StockMovement.product_lot_id, StockMovement.location,
                        func.max(StockMovement.id).label("last_id"), func.sum(StockMovement.change).label("total"))
                 .group_by(StockMovement.product_lot_id, StockMovement.location).subquery())
    ledger = {(lot_id, location): (total, balance) for lot_id, location, total, balance in db.session.execute(
        select(per_place.c.product_lot_id, per_place.c.location, per_place.c.total, StockMovement.balance)
        .join(StockMovement, StockMovement.id == per_place.c.last_id))}
    lot_numbers = dict(db.session.execute(select(ProductLot.id, ProductLot.lot_number).where(
        ProductLot.id.in_(select(StockLevel.product_lot_id).union(select(StockMovement.product_lot_id))))).all())
    problems = []
    for lot_id, location, quantity in db.session.execute(
            select(StockLevel.product_lot_id, StockLevel.location, StockLevel.quantity)
            .order_by(StockLevel.product_lot_id, StockLevel.location)):
        where = f"stock of lot {lot_numbers.get(lot_id, lot_id)} at {location!r}"
        total, balance = ledger.pop((lot_id, location), (None, None))
        if balance is None:
            if quantity:
                problems.append(f"{where}: {quantity} held, but no stock movement records it")
        elif quantity != balance:
            problems.append(f"{where}: {quantity} held, but the ledger's last movement left {balance}")
        elif total != balance:
            problems.append(f"{where}: the ledger's changes add up to {total}, not to its balance {balance}")
    for (lot_id, location), (_, balance) in sorted(ledger.items()):
        if balance:
            problems.append(f"stock of lot {lot_numbers.get(lot_id, lot_id)} at {location!r}: the ledger holds "
                            f"{balance}, but there is no stock level")
    return problems


def record_problems() -> list[str]:
    """Every check of stored records against their evidence, as `flask audit verify`, a restore and the auditor's
    verify page run them: documents, signatures, completed steps, stock levels."""
    return verify_documents() + verify_signatures() + verify_completions() + verify_stock()


def open_document(document_id: int, actor: User, now: datetime | None = None) -> Document:
    """Return a document to download after re-checking its bytes; on a mismatch raise an incident on its
    instance, audit it, and refuse with EvidenceTampered."""
    document = get_document(document_id)
    problem = document_problem(document, db.session.scalar(select(AuditEvent.new).where(
        AuditEvent.instance_id == document.instance_id, AuditEvent.action == "document.stored",
        AuditEvent.object_id == str(document.id))))
    if problem is None:
        return document
    now = now or utcnow()
    with atomic():
        instance = db.session.get(ProcessInstance, document.instance_id)
        _raise_incident(instance, document, f"Evidence tampered: {problem}.", now)
        audit.record(actor, "document.tampered", "document", document.id, instance_id=instance.id, at=now,
                     new={"filename": document.filename, "recorded_sha256": document.sha256,
                          "stored_sha256": hashlib.sha256(document.content).hexdigest()})
    raise EvidenceTampered(gettext("The document %(name)s was changed after it was stored (its bytes no longer "
                                   "match the recorded SHA-256), so it is not served. An incident was raised on "
                                   "instance %(instance)s.", name=document.filename, instance=instance.id))


def _raise_incident(instance: ProcessInstance, document: Document, message: str, now: datetime) -> None:
    """Open an incident on the instance (one open incident at a time); a running instance stops until an
    administrator has looked at it."""
    if db.session.scalar(select(Incident.id).where(Incident.instance_id == instance.id,
                                                   Incident.resolved_at.is_(None))) is None:
        db.session.add(Incident(instance_id=instance.id, element_id=document.element_id, message=message,
                                created_at=now))
    if instance.status == "running":
        instance.status = "incident"

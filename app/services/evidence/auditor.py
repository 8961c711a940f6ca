"""The auditor's workspace, read only: find instances (by procedure, status, period, lot, product, signer), read an
instance's whole record as a timeline, everything that touched one lot, and the signatures of a period."""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from flask_babel import gettext
from sqlalchemy import Select, String, func, literal_column, or_, select, union_all
from sqlalchemy.orm import joinedload

from app.exceptions import NotFound, PermissionDenied
from app.extensions import db
from app.models import (
    AuditEvent,
    Deadline,
    Document,
    Incident,
    Inspection,
    InstanceLot,
    MaterialLot,
    ProcessDefinition,
    ProcessInstance,
    ProcessVersion,
    Product,
    ProductLot,
    Signature,
    Task,
    User,
)
from app.models.instances import INSTANCE_STATES
from app.services.workflow import instances, plant_time

# Who may open the workspace: auditors, administrators, QA releasers and the members of the QA groups.
AUDIT_ROLES = ("auditor", "admin", "qa_releaser")
AUDIT_GROUPS = ("qa", "qa_management")
STATUSES = INSTANCE_STATES
LOT_KINDS = ("product", "material")
EXPORT_LIMIT = 100_000  # rows of one CSV/XLSX export


def may_audit(user: User) -> bool:
    """Say whether user may read the auditor's workspace."""
    return bool(user.is_authenticated and (user.has_role(*AUDIT_ROLES) or user.group_names & set(AUDIT_GROUPS)))


def require_auditor(user: User) -> None:
    if not may_audit(user):
        raise PermissionDenied("The auditor's workspace is open to auditors, administrators and QA.")


def period_bounds(start: date | None, end: date | None) -> tuple[datetime | None, datetime | None]:
    """Return the UTC moments a period of plant calendar days covers: from start's midnight to the midnight after
    end (either may be open)."""
    zone = plant_time.zone()
    begin = datetime.combine(start, time(), tzinfo=zone).astimezone(UTC) if start else None
    finish = (datetime.combine(end + timedelta(days=1), time(), tzinfo=zone).astimezone(UTC)
              if end else None)
    return begin, finish


def in_period(column, start: date | None, end: date | None) -> list:
    begin, finish = period_bounds(start, end)
    return [condition for condition in (column >= begin if begin else None, column < finish if finish else None)
            if condition is not None]


def like_pattern(text: str) -> str:
    """Return a LIKE pattern that finds text anywhere, its own % and _ taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


# --- instance search -------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class InstanceSearch:
    process_key: str = ""
    status: str = ""
    start: date | None = None  # started on or after this plant day
    end: date | None = None  # started on or before this plant day
    lot: str = ""  # a lot number (product or material), or part of one
    product: str = ""  # a product's name, model or GTIN, or part of one
    signer: str = ""  # a signer's printed name or user name, or part of one
    text: str = ""  # the instance's title, or its number

    @property
    def empty(self) -> bool:
        return not any((self.process_key, self.status, self.start, self.end, self.lot, self.product, self.signer,
                        self.text))


def _search_query(search: InstanceSearch, query: Select | None = None) -> Select:
    query = (select(ProcessInstance).options(joinedload(ProcessInstance.started_by)) if query is None else query)
    query = (query.join(ProcessVersion, ProcessVersion.id == ProcessInstance.version_id)
             .join(ProcessDefinition, ProcessDefinition.id == ProcessVersion.definition_id))
    if search.process_key:
        query = query.where(ProcessDefinition.key == search.process_key)
    if search.status in STATUSES:
        query = query.where(ProcessInstance.status == search.status)
    query = query.where(*in_period(ProcessInstance.started_at, search.start, search.end))
    if search.text:
        number = search.text.lstrip("#")
        matches = ProcessInstance.title.ilike(like_pattern(search.text), escape="\\")
        query = query.where(or_(matches, ProcessInstance.id == int(number)) if number.isascii() and number.isdigit() and
                            len(number) < 10 else matches)
    if search.lot:
        pattern = like_pattern(search.lot)
        query = query.where(select(InstanceLot.id)
                            .outerjoin(ProductLot, ProductLot.id == InstanceLot.product_lot_id)
                            .outerjoin(MaterialLot, MaterialLot.id == InstanceLot.material_lot_id)
                            .where(InstanceLot.instance_id == ProcessInstance.id,
                                   or_(ProductLot.lot_number.ilike(pattern, escape="\\"),
                                       MaterialLot.lot_number.ilike(pattern, escape="\\"))).exists())
    if search.product:
        pattern = like_pattern(search.product)
        query = query.where(select(InstanceLot.id)
                            .join(ProductLot, ProductLot.id == InstanceLot.product_lot_id)
                            .join(Product, Product.id == ProductLot.product_id)
                            .where(InstanceLot.instance_id == ProcessInstance.id,
                                   or_(Product.name.ilike(pattern, escape="\\"),
                                       Product.model.ilike(pattern, escape="\\"),
                                       Product.gtin.ilike(pattern, escape="\\"))).exists())
    if search.signer:
        pattern = like_pattern(search.signer)
        query = query.where(select(Signature.id).join(User, User.id == Signature.user_id)
                            .where(Signature.instance_id == ProcessInstance.id,
                                   or_(Signature.printed_name.ilike(pattern, escape="\\"),
                                       User.username.ilike(pattern, escape="\\"))).exists())
    return query.order_by(ProcessInstance.started_at.desc(), ProcessInstance.id.desc())


def search_instances(search: InstanceSearch, *, page: int = 1, per_page: int = 20):
    """Return a page of the instances matching every given criterion, newest first."""
    return db.paginate(_search_query(search), page=page, per_page=per_page, error_out=False)


def matching_ids(search: InstanceSearch, limit: int) -> list[int]:
    """Return the ids of up to limit instances matching the search, newest first."""
    return list(db.session.scalars(_search_query(search, select(ProcessInstance.id)).limit(limit)))


def signers() -> list[str]:
    """Return the printed names that have signed anything, for the search form's suggestions."""
    return list(db.session.scalars(select(Signature.printed_name).distinct().order_by(Signature.printed_name)))


# --- one instance as a timeline --------------------------------------------------------------------------------------

@dataclass
class Gate:
    """A signed step: its task, its signature and the documents the signature is bound to."""

    task: Task
    signature: Signature
    documents: list[Document]


@dataclass
class DeadlineOutcome:
    """A deadline, its status now, the rule that set it and the step that meets it."""

    deadline: Deadline
    status: str
    met_by: Task | None


@dataclass
class InstanceTimeline:
    instance: ProcessInstance
    tasks: list[Task]
    events: list[AuditEvent]  # the instance's audit rows, oldest first
    tasks_by_spiff_id: dict[str, Task]
    signatures: list[Signature]
    documents: list[Document]
    documents_by_id: dict[int, Document]
    gates: list[Gate]
    deadlines: list[DeadlineOutcome]
    incidents: list[Incident]
    lots: list[instances.LinkedLot]

    def task_of(self, event: AuditEvent) -> Task | None:
        return self.tasks_by_spiff_id.get(event.object_id) if event.object_type == "task" else None

    def signature_of(self, event: AuditEvent) -> Signature | None:
        if event.object_type != "signature":
            return None
        return next((s for s in self.signatures if str(s.id) == event.object_id), None)

    def document_of(self, event: AuditEvent) -> Document | None:
        if event.object_type != "document" or not event.object_id.isdigit():
            return None
        return self.documents_by_id.get(int(event.object_id))

    def deadline_of(self, event: AuditEvent) -> Deadline | None:
        if event.object_type != "deadline":
            return None
        return next((d.deadline for d in self.deadlines if d.deadline.key == event.object_id), None)


def instance_timeline(instance_id: int, now: datetime | None = None) -> InstanceTimeline:
    """Return everything recorded about one instance, for the auditor's timeline."""
    now = now or plant_time.utcnow()
    record = instances.instance_record(instance_id)
    by_id = {document.id: document for document in record.documents}
    signature_by_task = {signature.task_id: signature for signature in record.signatures}
    gates = [Gate(task, signature_by_task[task.id],
                  [by_id[item["id"]] for item in signature_by_task[task.id].documents if item.get("id") in by_id])
             for task in record.tasks if task.id in signature_by_task]
    latest_by_element: dict[str, Task] = {}
    for task in record.tasks:
        latest_by_element[task.element_id] = task
    outcomes = [DeadlineOutcome(d, d.status(now), latest_by_element.get(d.met_by)) for d in record.deadlines]
    return InstanceTimeline(
        instance=record.instance, tasks=record.tasks, events=record.audit,
        tasks_by_spiff_id={task.spiff_id: task for task in record.tasks}, signatures=record.signatures,
        documents=record.documents, documents_by_id=by_id, gates=gates, deadlines=outcomes,
        incidents=record.incidents, lots=record.lots)


# --- one lot ---------------------------------------------------------------------------------------------------------

@dataclass
class LotProcedure:
    instance: ProcessInstance
    roles: list[str]  # how the instance concerns the lot: subject, affected, hold, inspection...


@dataclass
class LotDossier:
    kind: str
    lot: ProductLot | MaterialLot
    procedures: list[LotProcedure]
    history: list[AuditEvent]  # the lot's own audited changes (status changes with reasons), oldest first
    documents: list[Document]  # of the procedures that concern the lot
    signatures: list[Signature]  # of those procedures
    inspections: list[Inspection] = field(default_factory=list)


def find_lots(text: str, limit: int = 50) -> list[tuple[str, ProductLot | MaterialLot]]:
    """Return the product and material lots whose number contains text (kind, lot), by lot number."""
    text = text.strip()
    if not text:
        return []
    pattern = like_pattern(text)
    found: list[tuple[str, ProductLot | MaterialLot]] = []
    for kind, model in (("product", ProductLot), ("material", MaterialLot)):
        found += [(kind, lot) for lot in db.session.scalars(
            select(model).where(model.lot_number.ilike(pattern, escape="\\")).order_by(model.lot_number).limit(limit))]
    return sorted(found, key=lambda item: (item[1].lot_number, item[0]))[:limit]


def lot_dossier(kind: str, lot_id: int) -> LotDossier:
    """Return every procedure, status change, document and signature that touched one lot."""
    model = {"product": ProductLot, "material": MaterialLot}.get(kind)
    lot = db.session.get(model, lot_id) if model is not None else None
    if lot is None:
        raise NotFound(gettext("No product lot %(id)s.", id=lot_id) if kind == "product" else
                       gettext("No material lot %(id)s.", id=lot_id))
    column = InstanceLot.product_lot_id if kind == "product" else InstanceLot.material_lot_id
    roles: dict[int, list[str]] = {}
    for instance_id, role in db.session.execute(select(InstanceLot.instance_id, InstanceLot.role)
                                                .where(column == lot_id).order_by(InstanceLot.id)):
        roles.setdefault(instance_id, []).append(role)
    inspection_column = Inspection.product_lot_id if kind == "product" else Inspection.material_lot_id
    inspections = list(db.session.scalars(select(Inspection).where(inspection_column == lot_id)
                                          .order_by(Inspection.inspected_on, Inspection.id)))
    for inspection in inspections:
        if inspection.capa_instance_id is not None:
            roles.setdefault(inspection.capa_instance_id, []).append("inspection")
    history = list(db.session.scalars(select(AuditEvent).where(
        AuditEvent.object_type == f"{kind}_lot", AuditEvent.object_id == str(lot_id)).order_by(AuditEvent.id)))
    for event in history:  # a procedure that changed the lot's status touched it too
        if event.instance_id is not None:
            roles.setdefault(event.instance_id, []).append("status")
    found = {instance.id: instance for instance in db.session.scalars(
        select(ProcessInstance).where(ProcessInstance.id.in_(roles)))} if roles else {}
    procedures = [LotProcedure(found[i], list(dict.fromkeys(roles[i]))) for i in sorted(found)]
    ids = list(found)
    documents = list(db.session.scalars(select(Document).where(Document.instance_id.in_(ids))
                                        .order_by(Document.created_at, Document.id))) if ids else []
    signed = list(db.session.scalars(select(Signature).where(Signature.instance_id.in_(ids))
                                     .order_by(Signature.signed_at, Signature.id))) if ids else []
    return LotDossier(kind, lot, procedures, history, documents, signed, inspections)


# --- signature report ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SignatureSearch:
    start: date | None = None
    end: date | None = None
    signer: str = ""  # printed name or user name, or part of one
    meaning: str = ""


GATE, PROCEDURE_APPROVAL = "gate", "procedure"  # what a signature of the report signed


@dataclass(frozen=True)
class SignedRecord:
    """One signature with the record it signed: a step of an instance (a gate: signature, task and instance set),
    or a version of a controlled procedure approved by QA (approval set: the version)."""

    kind: str  # GATE or PROCEDURE_APPROVAL
    signed_at: datetime
    printed_name: str
    meaning: str
    signed_hash: str
    username: str
    process_key: str
    process_name: str
    version: int
    signature: Signature | None = None
    task: Task | None = None
    instance: ProcessInstance | None = None
    approval: ProcessVersion | None = None

    @property
    def documents(self) -> list[dict]:
        """What the signature is bound to: a gate's documents, or the approved version's diagram (its content
        hash)."""
        if self.signature is not None:
            return list(self.signature.documents)
        return [{"filename": self.approval.filename, "sha256": self.approval.content_hash}]


def _gate_record(signature, task, instance, key, name, version, username) -> SignedRecord:
    return SignedRecord(GATE, signature.signed_at, signature.printed_name, signature.meaning, signature.signed_hash,
                        username, key, name, version, signature=signature, task=task, instance=instance)


def _approval_record(version: ProcessVersion, username: str) -> SignedRecord:
    return SignedRecord(PROCEDURE_APPROVAL, version.decided_at, version.signed_name or "",
                        version.signed_meaning or "", version.signed_hash or "", username, version.definition.key,
                        version.definition.name, version.version, approval=version)


def _signature_filters(query: Select, search: SignatureSearch) -> Select:
    query = query.join(User, User.id == Signature.user_id).where(
        *in_period(Signature.signed_at, search.start, search.end))
    if search.signer:
        pattern = like_pattern(search.signer)
        query = query.where(or_(Signature.printed_name.ilike(pattern, escape="\\"),
                                User.username.ilike(pattern, escape="\\")))
    if search.meaning:
        query = query.where(Signature.meaning == search.meaning)
    return query


def _approval_filters(query: Select, search: SignatureSearch, process_key: str = "") -> Select:
    """The e-signed approvals of procedure versions (QA's, not the versions released at installation)."""
    query = query.join(User, User.id == ProcessVersion.decided_by_id).where(
        ProcessVersion.signed_hash.is_not(None), *in_period(ProcessVersion.decided_at, search.start, search.end))
    if search.signer:
        pattern = like_pattern(search.signer)
        query = query.where(or_(ProcessVersion.signed_name.ilike(pattern, escape="\\"),
                                User.username.ilike(pattern, escape="\\")))
    if search.meaning:
        query = query.where(ProcessVersion.signed_meaning == search.meaning)
    if process_key:
        query = query.where(select(ProcessDefinition.id).where(ProcessDefinition.id == ProcessVersion.definition_id,
                                                               ProcessDefinition.key == process_key).exists())
    return query


def _signature_query(search: SignatureSearch) -> Select:
    query = (select(Signature, Task, ProcessInstance, ProcessDefinition.key, ProcessDefinition.name,
                    ProcessVersion.version, User.username)
             .join(Task, Task.id == Signature.task_id)
             .join(ProcessInstance, ProcessInstance.id == Signature.instance_id)
             .join(ProcessVersion, ProcessVersion.id == ProcessInstance.version_id)
             .join(ProcessDefinition, ProcessDefinition.id == ProcessVersion.definition_id))
    return _signature_filters(query, search)


def _approval_query(search: SignatureSearch, process_key: str = "") -> Select:
    return _approval_filters(select(ProcessVersion, User.username).options(joinedload(ProcessVersion.definition)),
                             search, process_key)


def _signed_ids(search: SignatureSearch) -> Select:
    """Every signature of the search as (kind, id, signed at), gates and procedure approvals together."""
    def kind(name: str):
        return literal_column(f"'{name}'", String).label("kind")

    gates = _signature_filters(select(kind(GATE), Signature.id.label("id"), Signature.signed_at.label("signed_at")),
                               search)
    approvals = _approval_filters(select(kind(PROCEDURE_APPROVAL), ProcessVersion.id.label("id"),
                                         ProcessVersion.decided_at.label("signed_at")), search)
    both = union_all(gates, approvals).subquery()
    return select(both.c.kind, both.c.id).order_by(both.c.signed_at, both.c.kind, both.c.id)


def _load(pairs: list[tuple[str, int]]) -> list[SignedRecord]:
    """The signed records of (kind, id) pairs, in their order."""
    gate_ids = [i for kind, i in pairs if kind == GATE]
    version_ids = [i for kind, i in pairs if kind == PROCEDURE_APPROVAL]
    found: dict[tuple[str, int], SignedRecord] = {}
    if gate_ids:
        for row in db.session.execute(_signature_query(SignatureSearch()).where(Signature.id.in_(gate_ids))):
            found[(GATE, row[0].id)] = _gate_record(*row)
    if version_ids:
        for version, username in db.session.execute(_approval_query(SignatureSearch())
                                                    .where(ProcessVersion.id.in_(version_ids))):
            found[(PROCEDURE_APPROVAL, version.id)] = _approval_record(version, username)
    return [found[pair] for pair in pairs if pair in found]


def signature_report(search: SignatureSearch, *, page: int = 1, per_page: int = 50) -> SignatureReport:
    """Return a page of the period's signatures - at gates and approving procedure versions - oldest first, and the
    count per signer and meaning."""
    counts = Counter({(name, meaning): n for name, meaning, n in db.session.execute(_signature_filters(
        select(Signature.printed_name, Signature.meaning, func.count(Signature.id)), search)
        .group_by(Signature.printed_name, Signature.meaning))})
    counts.update({(name, meaning): n for name, meaning, n in db.session.execute(_approval_filters(
        select(ProcessVersion.signed_name, ProcessVersion.signed_meaning, func.count(ProcessVersion.id)), search)
        .group_by(ProcessVersion.signed_name, ProcessVersion.signed_meaning))})
    total = sum(counts.values())
    pages = max(1, -(-total // per_page))
    page = min(max(page, 1), pages)
    pairs = [(kind, i) for kind, i in db.session.execute(
        _signed_ids(search).limit(per_page).offset((page - 1) * per_page))]
    return SignatureReport(_load(pairs), total, page, pages, per_page, counts)


@dataclass
class SignatureReport:
    items: list[SignedRecord]
    total: int
    page: int
    pages: int
    per_page: int
    counts: Counter  # (printed name, meaning) -> signatures

    @property
    def has_prev(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages

    @property
    def prev_num(self) -> int:
        return self.page - 1

    @property
    def next_num(self) -> int:
        return self.page + 1

    @property
    def by_signer(self) -> list[tuple[str, str, int]]:
        return sorted(((name, meaning, n) for (name, meaning), n in self.counts.items()))


def all_signatures(search: SignatureSearch) -> Iterator[SignedRecord]:
    """Yield every signature of the search, gates and procedure approvals (oldest first, at most EXPORT_LIMIT), for
    an export."""
    pairs = [(kind, i) for kind, i in db.session.execute(_signed_ids(search).limit(EXPORT_LIMIT))]
    for at in range(0, len(pairs), 500):
        yield from _load(pairs[at:at + 500])


def procedure_approvals(search: SignatureSearch, process_key: str = "") -> list[SignedRecord]:
    """The e-signed approvals of procedure versions in a period (of one procedure, given its key), oldest first."""
    return [_approval_record(version, username) for version, username in db.session.execute(
        _approval_query(search, process_key).order_by(ProcessVersion.decided_at, ProcessVersion.id))]


def meanings() -> list[str]:
    """Return the signature meanings on record (gates and procedure approvals)."""
    found = set(db.session.scalars(select(Signature.meaning).distinct()))
    found |= set(db.session.scalars(select(ProcessVersion.signed_meaning).distinct()
                                    .where(ProcessVersion.signed_meaning.is_not(None))))
    return sorted(found)


def report_signers() -> list[str]:
    """Return the printed names that signed anything, gates and procedure approvals, for the report's filter."""
    found = set(signers())
    found |= set(db.session.scalars(select(ProcessVersion.signed_name).distinct()
                                    .where(ProcessVersion.signed_name.is_not(None))))
    return sorted(found)

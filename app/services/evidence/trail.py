"""The audit trail explorer, read only: filter the trail by user, object, action, instance and period, export it,
and verify it as `flask audit verify` does (the hash chain against the signed checkpoints, every document against
its SHA-256, every signature against the audit event that applied it)."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import Select, func, or_, select

from app.exceptions import QualiflowError
from app.extensions import db
from app.models import AuditEvent, User
from app.services.evidence import audit_checkpoints, verification
from app.services.evidence.auditor import EXPORT_LIMIT, in_period, like_pattern


@dataclass(frozen=True)
class TrailSearch:
    user: str = ""  # the actor's printed name or user name, or part of one ("system" for the engine)
    object_type: str = ""
    object_id: str = ""
    action: str = ""
    instance_id: int | None = None
    start: date | None = None
    end: date | None = None

    @property
    def empty(self) -> bool:
        return not any((self.user, self.object_type, self.object_id, self.action, self.instance_id, self.start,
                        self.end))


def _query(search: TrailSearch) -> Select:
    query = select(AuditEvent).where(*in_period(AuditEvent.at, search.start, search.end))
    if search.user:
        pattern = like_pattern(search.user)
        query = query.where(or_(AuditEvent.actor_name.ilike(pattern, escape="\\"),
                                AuditEvent.actor_id.in_(select(User.id).where(User.username.ilike(pattern,
                                                                                                  escape="\\")))))
    if search.object_type:
        query = query.where(AuditEvent.object_type == search.object_type)
    if search.object_id:
        query = query.where(AuditEvent.object_id == search.object_id)
    if search.action:
        query = query.where(AuditEvent.action == search.action)
    if search.instance_id is not None:
        query = query.where(AuditEvent.instance_id == search.instance_id)
    return query


def search_trail(search: TrailSearch, *, page: int = 1, per_page: int = 50):
    """Return a page of the matching audit rows, newest first."""
    return db.paginate(_query(search).order_by(AuditEvent.id.desc()), page=page, per_page=per_page,
                       error_out=False)


def count_events(search: TrailSearch) -> int:
    """How many rows an export of the search holds (at most EXPORT_LIMIT)."""
    return db.session.scalar(select(func.count()).select_from(_query(search).limit(EXPORT_LIMIT).subquery())) or 0


def all_events(search: TrailSearch) -> Iterator[AuditEvent]:
    """Yield the matching audit rows in chain order (at most EXPORT_LIMIT), for an export."""
    query = _query(search).order_by(AuditEvent.id).limit(EXPORT_LIMIT)
    yield from db.session.scalars(query.execution_options(yield_per=1000))


def actions() -> list[str]:
    """Return the action codes on record."""
    return list(db.session.scalars(select(AuditEvent.action).distinct().order_by(AuditEvent.action)))


def object_types() -> list[str]:
    """Return the kinds of object the trail records events about."""
    return list(db.session.scalars(select(AuditEvent.object_type).where(AuditEvent.object_type != "")
                                   .distinct().order_by(AuditEvent.object_type)))


@dataclass
class TrailVerification:
    """What verifying the trail found: ok only when the chain and the checkpoints agree and every record matches its
    evidence (documents, signatures, completed steps, stock)."""

    chain_ok: bool
    checked: int
    last_id: int = 0
    last_hash: str = ""
    broken_id: int | None = None
    problem: str = ""  # the chain's first problem, or why the checkpoints could not be read
    checkpoints: int = 0
    last_checkpoint_id: int | None = None
    problems: list[str] = field(default_factory=list)  # beyond the chain: documents, signatures, steps, stock

    @property
    def ok(self) -> bool:
        return self.chain_ok and not self.problems


def verify_trail() -> TrailVerification:
    """Verify the trail as `flask audit verify` does."""
    try:
        report, checkpoints = audit_checkpoints.verify_trail()
    except QualiflowError as err:  # a checkpoint file was forged or altered
        result = TrailVerification(False, 0, problem=err.message)
    else:
        result = TrailVerification(report.ok, report.checked, report.last_id, report.last_hash, report.broken_id,
                                   report.problem, len(checkpoints),
                                   checkpoints[-1].last_id if checkpoints else None)
    result.problems = verification.record_problems()
    db.session.rollback()  # nothing was changed; end the read transaction
    return result

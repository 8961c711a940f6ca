"""Controlled procedures (ISO 13485 4.2.4, 21 CFR 820.40): a deployed process version is a document that QA
approves with an e-signature before it takes effect.

A deploy (studio, API, command line) creates a *pending* version. A member of the QA approver group other than its
author approves it - re-entering their password (the gates' e-signature rules: a wrong password is counted and may
lock the account), with the meaning "approved" and their printed name - and chooses its effective date (today or
later, on the plant's calendar). From that date new instances start on it (the newest effective version); running
instances stay on the version they started on. A pending version may instead be rejected by QA with a reason, or
withdrawn by its author with a reason; neither is ever used. Every decision is audited.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time

from flask_babel import gettext as _

from app import engine
from app.exceptions import Conflict, FormInvalid, PermissionDenied
from app.models import ProcessVersion, User
from app.models.processes import VERSION_APPROVED, VERSION_PENDING, VERSION_REJECTED, VERSION_WITHDRAWN
from app.models.types import utcnow
from app.services.evidence import audit, signatures
from app.services.workflow import plant_time, processes
from app.services.workflow.transaction import atomic, keep_loaded

APPROVAL_MEANING = "approved"
REASON_MAX = 2000

# What the version history shows: the stored status, with "approved" told apart by the clock.
SHOWN_PENDING, SHOWN_SCHEDULED, SHOWN_EFFECTIVE, SHOWN_SUPERSEDED = "pending", "scheduled", "effective", "superseded"
SHOWN_REJECTED, SHOWN_WITHDRAWN = VERSION_REJECTED, VERSION_WITHDRAWN


def approver_group() -> str:
    """The group whose members approve procedures (config PROCEDURE_APPROVER_GROUP, by default qa_management)."""
    return processes.approver_group()


def may_approve(user: User | None) -> bool:
    return user is not None and user.is_active and approver_group() in user.group_names


def _pending(key: str, number: int) -> ProcessVersion:
    version = processes.get_version(key, number)
    if version.status != VERSION_PENDING:
        raise Conflict(_("Version %(version)s of %(name)s is %(status)s; only a pending version can be approved, "
                         "rejected or withdrawn.", version=number, name=version.definition.name,
                         status=status_label(version.status)))
    return version


def _reason(reason: str | None, field: str, message: str) -> str:
    text = (reason or "").strip()
    if not text:
        raise FormInvalid({field: [message]}, message)
    if len(text) > REASON_MAX:
        raise FormInvalid({field: [_("At most %(n)s characters.", n=REASON_MAX)]}, _("The reason is too long."))
    return text


def _require_approver(actor: User, version: ProcessVersion) -> None:
    if not may_approve(actor):
        raise PermissionDenied(_("Only QA approves procedures: members of the group %(group)s.",
                                 group=approver_group()))
    if version.author_id == actor.id:
        raise PermissionDenied(_("You are the author of version %(version)s: another person from QA has to approve "
                                 "or reject it (you may withdraw it).", version=version.version))


def effective_time(day: date, now: datetime) -> datetime:
    """When a version with this effective date takes effect: the start of that day on the plant's clock, or now
    when the day is today."""
    start = datetime.combine(day, time(0, 0), tzinfo=plant_time.zone()).astimezone(UTC)
    return max(start, now)


def approve(actor: User, key: str, number: int, password: str | None, effective_on: date | None = None, *,
            now: datetime | None = None) -> ProcessVersion:
    """Approve a pending version with the approver's e-signature; it takes effect on effective_on (default today).

    Refused: not QA (403), the author (403), not pending (409), an older version than an approved one (409), a
    called process version not approved yet (409), an effective date in the past (422), a wrong password (401,
    counted like a wrong password at a gate).
    """
    now = now or utcnow()
    with atomic():
        version = _pending(key, number)
        _require_approver(actor, version)
        today = plant_time.local_date(now, plant_time.zone())
        effective_on = effective_on or today
        if effective_on < today:
            raise FormInvalid({"effective_date": [_("The effective date is today or later.")]},
                              _("The effective date cannot be in the past."))
        newer = [v.version for v in version.definition.versions
                 if v.status == VERSION_APPROVED and v.version > version.version]
        if newer:
            raise Conflict(_("Version %(newer)s is already approved, so version %(version)s would never be used: "
                             "reject or withdraw it.", newer=newer[0], version=version.version))
        waiting = [c for c in version.callees if c.status != VERSION_APPROVED]
        if waiting:
            callee = waiting[0]
            raise Conflict(_("Version %(version)s calls %(callee)s v%(callee_version)s, which is %(status)s: approve "
                             "that version first (or deploy this procedure again against an approved one).",
                             version=version.version, callee=callee.definition.key, callee_version=callee.version,
                             status=status_label(callee.status)))
        signatures.authenticate_signer(actor, password, now, _("The password is wrong; the version was not approved."))
        effective_at = effective_time(effective_on, now)
        signed_hash = engine.data_hash({
            "process": key, "version": version.version, "content_hash": version.content_hash,
            "meaning": APPROVAL_MEANING, "user": actor.username, "printed_name": actor.full_name,
            "at": now.isoformat(), "effective_on": effective_on.isoformat()})
        version.status, version.decided_by_id, version.decided_at = VERSION_APPROVED, actor.id, now
        version.effective_on, version.effective_at = effective_on, effective_at
        version.signed_name, version.signed_meaning, version.signed_hash = actor.full_name, APPROVAL_MEANING, \
            signed_hash
        audit.record(actor, "process.approved", "process_version", version.id, at=now,
                     old={"status": VERSION_PENDING},
                     new={"process": key, "version": version.version, "status": VERSION_APPROVED,
                          "effective_on": effective_on.isoformat(), "effective_at": effective_at.isoformat(),
                          "printed_name": actor.full_name, "meaning": APPROVAL_MEANING, "hash": signed_hash,
                          "content_hash": version.content_hash})
        keep_loaded(version)
    return version


def reject(actor: User, key: str, number: int, reason: str | None, *, now: datetime | None = None) -> ProcessVersion:
    """QA rejects a pending version with a reason; it is never used (a corrected diagram is deployed anew)."""
    now = now or utcnow()
    text = _reason(reason, "reason", _("Say why the version is rejected."))
    with atomic():
        version = _pending(key, number)
        _require_approver(actor, version)
        _close(actor, version, VERSION_REJECTED, text, now)
    return version


def withdraw(actor: User, key: str, number: int, reason: str | None, *,
             now: datetime | None = None) -> ProcessVersion:
    """The author withdraws their pending version with a reason; it is never used."""
    now = now or utcnow()
    text = _reason(reason, "reason", _("Say why the version is withdrawn."))
    with atomic():
        version = _pending(key, number)
        if version.author_id is None or version.author_id != actor.id:
            raise PermissionDenied(_("Only the author of version %(version)s may withdraw it; QA may reject it.",
                                     version=version.version))
        _close(actor, version, VERSION_WITHDRAWN, text, now)
    return version


def _close(actor: User, version: ProcessVersion, status: str, reason: str, now: datetime) -> None:
    version.status, version.decided_by_id, version.decided_at, version.decision_reason = status, actor.id, now, reason
    audit.record(actor, f"process.{status}", "process_version", version.id, at=now, reason=reason,
                 old={"status": VERSION_PENDING},
                 new={"process": version.definition.key, "version": version.version, "status": status})
    keep_loaded(version)


# --- the version history -------------------------------------------------------------------------------------------

def status_label(status: str) -> str:
    """A version status in the page's language."""
    return {SHOWN_PENDING: _("pending approval"), SHOWN_SCHEDULED: _("approved, not yet effective"),
            SHOWN_EFFECTIVE: _("effective"), SHOWN_SUPERSEDED: _("superseded"), SHOWN_REJECTED: _("rejected"),
            SHOWN_WITHDRAWN: _("withdrawn"), VERSION_APPROVED: _("approved")}.get(status, status)


@dataclass(frozen=True)
class HistoryRow:
    version: ProcessVersion
    shown: str  # pending, scheduled, effective, superseded, rejected, withdrawn
    previous: int | None  # the version number before it, for the diff


def shown_status(version: ProcessVersion, effective: ProcessVersion | None, now: datetime) -> str:
    """pending / scheduled (approved, its date not come) / effective / superseded / rejected / withdrawn."""
    if version.status != VERSION_APPROVED:
        return version.status
    if effective is not None and version.id == effective.id:
        return SHOWN_EFFECTIVE
    if effective is not None and version.version < effective.version:
        return SHOWN_SUPERSEDED
    return SHOWN_SCHEDULED


def history(key: str, now: datetime | None = None) -> tuple[ProcessVersion | None, list[HistoryRow]]:
    """A procedure's versions, newest first, with what each is now, and its effective version."""
    now = now or utcnow()
    definition = processes.get_definition(key)
    effective = processes.effective_version(key, now)
    numbers = sorted(v.version for v in definition.versions)
    rows = []
    for version in definition.versions:
        index = numbers.index(version.version)
        rows.append(HistoryRow(version, shown_status(version, effective, now),
                               numbers[index - 1] if index > 0 else None))
    return effective, rows


def version_control(version: ProcessVersion, now: datetime | None = None) -> dict:
    """One version's document-control record, as the API and the studio catalogue answer it."""
    now = now or utcnow()
    effective = processes.effective_version(version.definition.key, now)
    approved = version.status == VERSION_APPROVED
    return {
        "status": shown_status(version, effective, now),
        "author": version.author.username if version.author else None,
        "reason_for_change": version.change_note,
        "effective_on": version.effective_on.isoformat() if version.effective_on else None,
        "effective_at": version.effective_at.isoformat() if version.effective_at else None,
        "released_at_installation": approved and version.decided_by_id is None,
        "approved_by": version.decided_by.username if approved and version.decided_by else None,
        "decided_by": version.decided_by.username if version.decided_by else None,
        "decided_at": version.decided_at.isoformat() if version.decided_at else None,
        "decision_reason": version.decision_reason or None,
        "signature": {"printed_name": version.signed_name, "meaning": version.signed_meaning,
                      "signed_at": version.decided_at.isoformat() if version.decided_at else None,
                      "hash": version.signed_hash} if version.signed_hash else None,
    }

"""Electronic signatures at stage gates (21 CFR Part 11 style): re-authenticate, then bind to a hash."""
from __future__ import annotations

from datetime import datetime, timedelta

from flask import current_app
from flask_babel import gettext
from sqlalchemy import select

from app import engine
from app.exceptions import Conflict, PermissionDenied, SignatureRejected
from app.extensions import db
from app.models import Document, Signature, Task, User
from app.services.evidence import audit, signed_records
from app.services.users import AccountLocked, LoginFailed, check_password


def authenticate_signer(actor: User, password: str | None, now: datetime,
                        refused: str = "The password is wrong; the task was not signed.") -> None:
    """Check the signer's password. A failure is counted (and may lock the account): that count and its audit row
    are committed here, nothing else of the caller's work having been written yet, and the refusal says `refused`,
    or that the account is locked."""
    try:
        check_password(actor, password, now=now, max_failures=current_app.config["LOGIN_MAX_FAILURES"],
                       lockout=timedelta(minutes=current_app.config["LOGIN_LOCKOUT_MINUTES"]), purpose="signature")
    except LoginFailed as err:
        db.session.commit()
        raise SignatureRejected(err.message if isinstance(err, AccountLocked) else refused) from err


def check_signer(task: Task, actor: User) -> None:
    """Refuse a signer the gate does not allow: releases need the QA releaser role; four-eyes steps need
    someone other than whoever completed (signed or not) the steps they name."""
    if task.signature_meaning == "released" and not actor.has_role("qa_releaser"):
        raise PermissionDenied("Only an authorised releaser (QA releaser role) can sign a release.")
    steps = [step.strip() for step in (task.four_eyes_with or "").split(",") if step.strip()]
    if steps and db.session.scalar(select(Task.id).where(
            Task.instance_id == task.instance_id, Task.completed_by_id == actor.id, Task.element_id.in_(steps),
            Task.state == "completed").limit(1)):
        raise PermissionDenied("Four-eyes rule: you completed an earlier step this one must be checked against; "
                               "another person has to sign it.")


def gate_documents(task: Task) -> list[Document]:
    """Return the latest revision of each document of the instance, refusing when required evidence is missing."""
    latest: dict[str, Document] = {}
    for document in db.session.scalars(select(Document).where(Document.instance_id == task.instance_id)
                                       .order_by(Document.revision)):
        latest[document.kind] = document
    required = [kind.strip() for kind in (task.evidence or "").split(",") if kind.strip()]
    missing = [kind for kind in required if kind not in latest]
    if missing:
        raise Conflict(gettext("This gate needs evidence that is not there yet: %(kinds)s.", kinds=", ".join(missing)))
    return list(latest.values())


def signed_meaning(task: Task, data: dict) -> str:
    """Return what a signature means: the gate's meaning, or "rejected" when the signer's decision rejects."""
    return "rejected" if data.get("decision") == "reject" else task.signature_meaning


def sign(task: Task, actor: User, data: dict, now: datetime) -> Signature:
    """Issue the gate's documents with this signature in them, then record the signature manifest bound to
    those bytes (no commit)."""
    meaning = signed_meaning(task, data)
    signed_records.issue_signed_revisions(
        task, signed_records.Manifestation(actor.full_name, meaning, now, task.group_name), now)
    documents = [{"id": d.id, "kind": d.kind, "filename": d.filename, "sha256": d.sha256}
                 for d in gate_documents(task)]
    signed_hash = engine.data_hash({"task": task.spiff_id, "instance": task.instance_id, "data": data,
                                    "documents": documents, "meaning": meaning,
                                    "user": actor.username, "at": now.isoformat()})
    signature = Signature(instance_id=task.instance_id, task_id=task.id, user_id=actor.id,
                          printed_name=actor.full_name, meaning=meaning, signed_at=now,
                          signed_hash=signed_hash, documents=documents)
    db.session.add(signature)
    db.session.flush()
    audit.record(actor, "signature.applied", "signature", signature.id, instance_id=task.instance_id, at=now,
                 new={"task": task.element_id, "meaning": signature.meaning, "printed_name": actor.full_name,
                      "hash": signed_hash, "documents": documents})
    return signature

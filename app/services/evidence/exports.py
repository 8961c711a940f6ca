"""Evidence packages of a lot or a search, and the audit trail as XLSX, built in the background on the job queue
(app/jobs.py).

A request opens an export job (who, what, in which language) and returns at once; a queue worker builds the
package, writing its progress (instances done of total) on the job row in short transactions of its own, so the
job page shows it from any web worker. The made zip is stored under the instance folder's `exports/` with its
SHA-256, which every download checks again, and the export is recorded in the audit trail (who exported what,
the file's SHA-256). A job whose worker died stops writing its heartbeat and is failed with the reason after
IMPORT_STALE_MINUTES (by the scheduler, or by a look at the job); one whose message is delivered again runs again
from the start, or does nothing when it has finished.
"""
from __future__ import annotations

import hashlib
import logging
import os
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from flask import current_app
from flask_babel import gettext
from sqlalchemy import func, select, update
from sqlalchemy.exc import SQLAlchemyError

from app.exceptions import EvidenceTampered, Gone, NotFound, QualiflowError
from app.extensions import db
from app.models import User
from app.models.evidence import ExportJob
from app.models.types import utcnow
from app.services.evidence import audit, auditor
from app.services.workflow.transaction import atomic

log = logging.getLogger(__name__)

KINDS = ("product_lot", "material_lot", "search", "trail_xlsx")  # packages, and the audit trail as XLSX
STALE_MESSAGE = ("The export stopped: its worker wrote no progress for {minutes} minutes (it was stopped or "
                 "crashed). Nothing was kept; export again.")
EXPIRED_MESSAGE = "The file was removed {days:g} day(s) after it was made (QUALIFLOW_EXPORT_KEEP_DAYS); export again."
Progress = Callable[[int, int], None]


def folder() -> Path:
    return Path(current_app.instance_path) / "exports"


def stored_file(job: ExportJob) -> Path:
    return folder() / job.stored_name


def start_export(kind: str, scope: dict, download_name: str, actor: User, language: str,
                 now: datetime | None = None) -> ExportJob:
    """Open an export job for the queue to run (one transaction); the caller enqueues it."""
    auditor.require_auditor(actor)
    if kind not in KINDS:
        raise NotFound(f"No export of kind {kind!r}.")
    with atomic():
        job = ExportJob(kind=kind, scope=scope, download_name=download_name[:255], language=language[:10],
                        status="running", created_by_id=actor.id, created_at=now or utcnow(),
                        stored_name=f"{uuid.uuid4().hex}.zip")
        db.session.add(job)
    return job


def _heartbeat(job_id: int, done: int, total: int) -> None:
    """Record a running job's progress in a transaction of its own (the build only reads)."""
    try:
        with db.engine.begin() as connection:
            connection.execute(update(ExportJob).where(ExportJob.id == job_id, ExportJob.status == "running")
                               .values(done=done, total=total, heartbeat_at=utcnow()))
    except SQLAlchemyError as err:  # progress is for watching: the export itself goes on
        log.warning("export job %s: progress not recorded (%s)", job_id, err.__class__.__name__)


def run_export(job_id: int, build: Callable[[ExportJob, Progress], tuple[bytes, dict]], *,
               attempts: int = 1) -> ExportJob | None:
    """Build a running job's package with build(job, progress) -> (zip bytes, what it holds), store it with its
    SHA-256 and audit the export. A refusal (too many instances, a lot gone) fails the job with its reason; another
    error fails it once the job has had `attempts` tries, else is raised for the queue to retry."""
    job = db.session.get(ExportJob, job_id)
    if job is None or job.status != "running":  # delivered again after it finished, or failed meanwhile
        return job
    with atomic():
        job.attempts += 1
        job.heartbeat_at = utcnow()
    # No transaction is open now: the build reads in one of its own (on SQLite a reading one, which lets the
    # progress heartbeats write beside it).
    try:
        content, held = build(job, lambda done, total: _heartbeat(job_id, done, total))
    except QualiflowError as err:
        db.session.rollback()
        return _fail(job_id, err.message)
    except Exception as err:
        db.session.rollback()
        if db.session.get(ExportJob, job_id).attempts < attempts:
            raise
        log.exception("export job %s failed", job_id)
        return _fail(job_id, f"The package could not be built: {err.__class__.__name__}: {str(err)[:300]}")
    db.session.rollback()  # the build read in a transaction of its own; the result is written in a new one
    target = folder()
    target.mkdir(parents=True, exist_ok=True)
    job = db.session.get(ExportJob, job_id)
    partial = target / f".{job.stored_name}.partial"
    partial.write_bytes(content)
    os.replace(partial, stored_file(job))  # a redelivered job overwrites its own file whole, never a half
    digest = hashlib.sha256(content).hexdigest()
    with atomic():
        job = db.session.get(ExportJob, job_id, with_for_update=True)
        if job.status != "running":  # the stale check failed it meanwhile: keep its verdict
            stored_file(job).unlink(missing_ok=True)
            return job
        job.status, job.sha256, job.size, job.finished_at = "succeeded", digest, len(content), utcnow()
        job.done = job.total = held.get("instances", held.get("rows", job.total))
        # A finished job's message is a notice for its page: why the package holds no PDF report, say.
        job.title, job.message = str(held.get("title", ""))[:300], str(held.get("notice", ""))
        actor = db.session.get(User, job.created_by_id)
        audit.record(actor, "evidence.exported", "export_job", job.id, new={
            "kind": job.kind, "scope": job.scope, "file": job.download_name, "sha256": digest, "size": len(content),
            **{key: held[key] for key in ("instances", "rows") if key in held}})
    return db.session.get(ExportJob, job_id)


def _fail(job_id: int, message: str) -> ExportJob:
    with atomic():
        job = db.session.get(ExportJob, job_id)
        if job.status == "running":
            job.status, job.message, job.finished_at = "failed", message, utcnow()
    return job


def fail_stale_exports(now: datetime | None = None, job_id: int | None = None) -> list[int]:
    """Fail running exports whose worker wrote nothing for IMPORT_STALE_MINUTES (it died with them), each with the
    reason; the scheduler calls this every minute and a look at the job too. Return the ids failed."""
    now = now or utcnow()
    minutes = current_app.config["IMPORT_STALE_MINUTES"]
    last_sign = func.coalesce(ExportJob.heartbeat_at, ExportJob.created_at)
    stale = select(ExportJob).where(ExportJob.status == "running", last_sign < now - timedelta(minutes=minutes))
    if job_id is not None:
        stale = stale.where(ExportJob.id == job_id)
    failed = []
    with atomic():
        for job in db.session.scalars(stale.with_for_update(skip_locked=True)):
            stored_file(job).unlink(missing_ok=True)
            job.status, job.message, job.finished_at = "failed", STALE_MESSAGE.format(minutes=minutes), now
            failed.append(job.id)
    return failed


def remove_old_files(now: datetime | None = None) -> list[int]:
    """Remove the files of exports made more than EXPORT_KEEP_DAYS ago; their jobs become "expired" with the reason
    (the audit trail keeps who exported what, and the file's SHA-256). The scheduler calls this every minute."""
    now = now or utcnow()
    days = float(current_app.config.get("EXPORT_KEEP_DAYS", 7))
    old = select(ExportJob).where(ExportJob.status == "succeeded", ExportJob.finished_at < now - timedelta(days=days))
    removed = []
    with atomic():
        for job in db.session.scalars(old.with_for_update(skip_locked=True)):
            stored_file(job).unlink(missing_ok=True)
            job.status, job.message = "expired", EXPIRED_MESSAGE.format(days=days)
            removed.append(job.id)
    return removed


def _visible(job_id: int, viewer: User) -> ExportJob:
    """The job, to the user who asked for it and to admins; anyone else gets 404 (it exists for them no more)."""
    auditor.require_auditor(viewer)
    job = db.session.get(ExportJob, job_id)
    if job is None or (job.created_by_id != viewer.id and not viewer.has_role("admin")):
        raise NotFound(gettext("No export %(id)s.", id=job_id))
    return job


def job_status(job_id: int, viewer: User) -> dict:
    """Describe a job for its page and its JSON poll."""
    job = _visible(job_id, viewer)
    if job.status == "running" and fail_stale_exports(job_id=job_id):
        db.session.refresh(job)
    return {"id": job.id, "kind": job.kind, "scope": job.scope, "status": job.status, "done": job.done,
            "total": job.total, "message": job.message, "title": job.title, "file": job.download_name,
            "sha256": job.sha256, "size": job.size, "created_at": job.created_at.isoformat(),
            "created_by": job.created_by.full_name, "finished_at": job.finished_at.isoformat()
            if job.finished_at else None}


def list_exports(viewer: User, page: int = 1, per_page: int = 20):
    """The viewer's exports, newest first (an admin's: everyone's)."""
    auditor.require_auditor(viewer)
    query = select(ExportJob).order_by(ExportJob.id.desc())
    if not viewer.has_role("admin"):
        query = query.where(ExportJob.created_by_id == viewer.id)
    return db.paginate(query, page=max(page, 1), per_page=per_page, error_out=False)


def download(job_id: int, viewer: User) -> tuple[bytes, str, str]:
    """Return a finished export's bytes, download name and SHA-256 after checking them against the SHA-256 recorded
    when it was made; a changed file is refused (409), a removed one is gone (410)."""
    job = _visible(job_id, viewer)
    if job.status == "expired":
        raise Gone(job.message)
    if job.status != "succeeded":
        raise NotFound(gettext("Export %(id)s has no file: it is %(status)s.", id=job_id, status=job.status))
    try:
        content = stored_file(job).read_bytes()
    except FileNotFoundError:
        raise Gone(gettext("The file of export %(id)s is no longer there (removed, or this server does not share "
                           "the exports folder); export again.", id=job_id)) from None
    digest = hashlib.sha256(content).hexdigest()
    if digest != job.sha256:
        raise EvidenceTampered(gettext("The file of export %(id)s changed after it was made (SHA-256 %(digest)s…, "
                                       "recorded %(recorded)s…); it is not handed out. Export again.", id=job_id,
                                       digest=digest[:12], recorded=job.sha256[:12]))
    return content, job.download_name, digest

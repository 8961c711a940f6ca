"""Master-data imports and single-record creation through one rule set (`import_rules`): CSV/XLSX files are read,
checked and written in one transaction, refused all together with every bad row's line, column and reason; a record
entered on a page or via the API is a one-row import."""
from __future__ import annotations

import csv
import hashlib
import io
import logging
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from flask import current_app
from flask_babel import gettext
from sqlalchemy import func, select, update
from sqlalchemy.exc import SQLAlchemyError

from app.exceptions import FormConflict, FormInvalid, ImportRefused, NotFound, ValidationFailed
from app.extensions import db
from app.models import (
    ImportJob,
    User,
)
from app.models.types import utcnow
from app.services.evidence import audit
from app.services.lots import conditions, lots  # noqa: F401 - conditions registers the sensor and reading kinds
from app.services.lots.import_rules import EXTENSIONS, ImportState, Kind, get_kind, import_rows, reason_text
from app.services.workflow import instances
from app.services.workflow.transaction import atomic


def _normalize_header(name: Any) -> str:
    return re.sub(r"[\s\-]+", "_", str(name or "").strip().lower())


# --- files ------------------------------------------------------------------------------------------------------------

def _cell(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return value.date() if value.time() == datetime.min.time() else value
    return value


@contextmanager
def read_table(path: Path) -> Iterator[tuple[list[str], Iterator[tuple[int, dict]]]]:
    """Open a CSV or XLSX file; yield its normalized header and an iterator of (line number, row dict).

    The file is closed when the block ends, also when the header is refused before any row was read.
    """
    if path.suffix.lower() == ".xlsx":
        from openpyxl import load_workbook
        workbook = load_workbook(path, read_only=True, data_only=True)
        try:
            rows = workbook.worksheets[0].iter_rows(values_only=True)
            header = [_normalize_header(v) for v in next(rows, ())]
            yield header, ((line, {name: _cell(v) for name, v in zip(header, values, strict=False) if name})
                           for line, values in enumerate(rows, start=2) if any(v not in (None, "") for v in values))
        finally:
            workbook.close()
        return
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        header = [_normalize_header(v) for v in next(reader, [])]
        yield header, ((reader.line_num, dict(zip(header, values, strict=False)))
                       for values in reader if any(v.strip() for v in values))


def count_rows(path: Path) -> int:
    """Estimate the data rows of a file cheaply (for the progress bar)."""
    if path.suffix.lower() == ".xlsx":
        from openpyxl import load_workbook
        workbook = load_workbook(path, read_only=True)
        try:
            return max((workbook.worksheets[0].max_row or 1) - 1, 0)
        finally:
            workbook.close()
    with path.open("rb") as handle:
        return max(sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 20), b"")) - 1, 0)


def _check_header(kind: Kind, header: list[str], state: ImportState) -> None:
    aliases = {_normalize_header(c.label): c.name for c in kind.columns}
    aliases.update({_normalize_header(c.label_zh): c.name for c in kind.columns})
    header[:] = [aliases.get(name, name) for name in header]
    known = {c.name for c in kind.columns}
    for name in header:
        if name and name not in known:
            state.refuse(1, name, "unknown_column")
    for column in kind.columns:
        if column.required and column.name not in header:
            state.refuse(1, column.name, "missing_column")
    if state.error_count:
        raise ImportRefused(state.errors, state.error_count)


def template_csv(kind_name: str) -> str:
    """Return an empty CSV with the kind's column headers, for users to fill in."""
    buffer = io.StringIO()
    csv.writer(buffer).writerow([c.name for c in get_kind(kind_name).columns])
    return buffer.getvalue()


# --- use cases --------------------------------------------------------------------------------------------------------

log = logging.getLogger(__name__)

# Job id -> (rows read, rows expected) of the imports running in this process. The job row carries the same for
# every other worker (written per chunk in short transactions of their own); SQLite has one writer at a time, held
# by the import's transaction, so there the row gets its progress at the start and the end only.
_progress: dict[int, tuple[int, int]] = {}
_progress_lock = threading.Lock()
STALE_MESSAGE = ("The import stopped: its worker wrote no progress for {minutes} minutes (it was stopped or "
                 "crashed). Nothing was imported; upload the file again.")


def _heartbeat(job_id: int, read: int, expected: int) -> None:
    """Record a running job's progress on its row in a transaction of its own, beside the import's open one."""
    if db.engine.dialect.name == "sqlite":
        return
    try:
        with db.engine.begin() as connection:
            connection.execute(update(ImportJob).where(ImportJob.id == job_id, ImportJob.status == "running")
                               .values(rows_read=read, rows_expected=expected, heartbeat_at=utcnow()))
    except SQLAlchemyError as err:  # progress is for watching: the import itself goes on
        log.warning("import job %s: progress not recorded (%s)", job_id, err.__class__.__name__)


def fail_stale_jobs(now: datetime | None = None, job_id: int | None = None) -> list[int]:
    """Fail running jobs whose worker wrote no progress for IMPORT_STALE_MINUTES (it died with them), each with
    the reason; the scheduler calls this every minute and a poll of the job too. Return the ids failed."""
    now = now or utcnow()
    minutes = current_app.config["IMPORT_STALE_MINUTES"]
    cutoff = now - timedelta(minutes=minutes)
    last_sign = func.coalesce(ImportJob.heartbeat_at, ImportJob.created_at)
    stale = select(ImportJob).where(ImportJob.status == "running", last_sign < cutoff)
    if job_id is not None:
        stale = stale.where(ImportJob.id == job_id)
    with _progress_lock:
        live = set(_progress)
    failed = []
    with atomic():
        for job in db.session.scalars(stale.with_for_update(skip_locked=True)):
            if job.id in live:  # running here (SQLite writes no heartbeat while it runs)
                continue
            stored_file(job).unlink(missing_ok=True)
            job.status, job.message, job.errors = "failed", STALE_MESSAGE.format(minutes=minutes), []
            job.total_rows, job.imported_rows, job.finished_at = 0, 0, now
            failed.append(job.id)
    return failed


def start_import(kind_name: str, filename: str, content: bytes, actor: User, now: datetime | None = None) -> ImportJob:
    """Store an uploaded file and open its import job (one transaction); run_import does the work."""
    instances.require_worker(actor)
    get_kind(kind_name)
    suffix = Path(filename).suffix.lower()
    if suffix not in EXTENSIONS:
        raise ValidationFailed("Upload a .csv or .xlsx file.")
    if not content:
        raise ValidationFailed("The file is empty.")
    folder = Path(current_app.instance_path) / "imports"
    folder.mkdir(parents=True, exist_ok=True)
    stored = folder / f"{uuid.uuid4().hex}{suffix}"
    stored.write_bytes(content)
    with atomic():
        job = ImportJob(kind=kind_name, filename=Path(filename).name[:255], sha256=hashlib.sha256(content).hexdigest(),
                        status="running", created_by_id=actor.id, created_at=now or utcnow(),
                        message=stored.name)
        db.session.add(job)
    return job


def stored_file(job: ImportJob) -> Path:
    return Path(current_app.instance_path) / "imports" / job.message


def run_import(job_id: int, now: datetime | None = None,
               progress: Callable[[int, int], None] | None = None) -> ImportJob:
    """Import a started job's file in one transaction: every row lands, or none and the job lists why."""
    job = db.session.get(ImportJob, job_id)
    if job is None:
        raise NotFound(gettext("No import job %(id)s.", id=job_id))
    if job.status != "running":  # run already (a queue delivers a job again when its ack was lost), or failed
        return job
    path = stored_file(job)
    actor = db.session.get(User, job.created_by_id)
    kind = get_kind(job.kind)
    now = now or utcnow()
    with _progress_lock:
        _progress[job_id] = (0, 0)
    total = count_rows(path)
    with atomic():  # every worker sees the row count and a first heartbeat
        job.rows_read, job.rows_expected, job.heartbeat_at = 0, total, utcnow()

    def report(read: int) -> None:
        with _progress_lock:
            _progress[job_id] = (read, max(total, read))
        _heartbeat(job_id, read, max(total, read))
        if progress:
            progress(read, max(total, read))

    state = ImportState(db.session, actor, now, import_job_id=job_id)
    try:
        with atomic():
            with read_table(path) as (header, rows):
                _check_header(kind, header, state)
                import_rows(kind, rows, state, report)
            job = db.session.get(ImportJob, job_id)
            job.status, job.total_rows, job.imported_rows = "succeeded", state.written, state.written
            job.message, job.finished_at, job.rows_read = skipped_note(state.skipped), utcnow(), state.written
            audit.record(actor, "import.completed", "import_job", job.id, at=now,
                         new={"kind": job.kind, "file": job.filename, "sha256": job.sha256, "rows": state.written})
    except ImportRefused as refused:
        _finish_failed(job_id, refused.message, refused.errors, state.error_count)
    except Exception as err:  # noqa: BLE001 - a broken file must end the job with a message, not hang "running"
        _finish_failed(job_id, f"The file could not be read: {err}", [], 0)
    finally:
        path.unlink(missing_ok=True)
        with _progress_lock:
            _progress.pop(job_id, None)
    return db.session.get(ImportJob, job_id)


SKIPPED_NOTE = "{count} row(s) already stored with the same value were skipped."
_SKIPPED = re.compile(r"^(\d+) row\(s\) already stored with the same value were skipped\.$")


def skipped_note(skipped: int) -> str:
    """What a succeeded job says about rows left out on purpose (readings already stored, identical)."""
    return SKIPPED_NOTE.format(count=skipped) if skipped else ""


def skipped_count(message: str) -> int | None:
    """The count a succeeded job's note gives (for the pages to say it in their language), or None."""
    matched = _SKIPPED.match(message or "")
    return int(matched.group(1)) if matched else None


def _finish_failed(job_id: int, message: str, errors: list[dict], error_count: int) -> None:
    with atomic():
        job = db.session.get(ImportJob, job_id)
        job.status, job.message, job.errors = "failed", message, errors
        job.total_rows, job.imported_rows, job.finished_at = error_count, 0, utcnow()


def job_status(job_id: int) -> dict:
    """Describe a job for the progress page: status, live progress while it runs, and its errors."""
    job = db.session.get(ImportJob, job_id)
    if job is None:
        raise NotFound(gettext("No import job %(id)s.", id=job_id))
    if job.status == "running" and fail_stale_jobs(job_id=job_id):
        job = db.session.get(ImportJob, job_id)
    with _progress_lock:
        here = _progress.get(job_id)
    read, expected = here if here and here[0] >= job.rows_read else (job.rows_read, job.rows_expected)
    return {"id": job.id, "kind": job.kind, "filename": job.filename, "status": job.status,
            "read": read if job.status == "running" else job.imported_rows, "expected": expected,
            "imported_rows": job.imported_rows, "error_count": job.total_rows if job.status == "failed" else 0,
            "message": job.message if job.status != "running" else "", "errors": job.errors}


def list_jobs(page: int = 1, per_page: int = 20):
    return db.paginate(select(ImportJob).order_by(ImportJob.id.desc()), page=page, per_page=per_page,
                       error_out=False)


def create_record(kind_name: str, data: dict[str, Any], actor: User, now: datetime | None = None,
                  lang: str = "en") -> int:
    """Create one master-data record with the import's rules (one transaction); return its id."""
    kind = get_kind(kind_name)
    instances.require_worker(actor)
    now = now or utcnow()
    state = ImportState(db.session, actor, now, keep_objects=True, movement_kind="entry")
    unknown = sorted(set(data) - {c.name for c in kind.columns})
    try:
        with atomic():
            for name in unknown:
                state.refuse(1, name, "unknown_column")
            if unknown:
                raise ImportRefused(state.errors, state.error_count)
            import_rows(kind, [(1, data)], state)
            record_id = state.created_ids[0]
            audit.record(actor, "record.created", kind.name, record_id, at=now,
                         new={k: v for k, v in data.items() if v not in (None, "")})
            if kind.name == "product_lots":
                lots.lot_created(record_id, actor, now)
    except ImportRefused as refused:
        errors: dict[str, list[str]] = {}
        for error in refused.errors:
            errors.setdefault(error["column"] or "_", []).append(reason_text(error, lang))
        conflict = next((error for error in refused.errors if error["code"] in SUPPLIER_CONFLICTS), None)
        if conflict is not None:
            raise FormConflict(errors, _conflict_message(conflict)) from None
        raise FormInvalid(errors, "The record has errors; nothing was saved.") from None
    return record_id


# Row refusals that are not a bad value but the supplier's status: a single record answers them with 409.
SUPPLIER_CONFLICTS = ("supplier_suspended", "supplier_suspended_pass")


def _conflict_message(error: dict) -> str:
    """Say in the request's language why a suspended supplier's record is refused, naming the supplier."""
    params = error.get("params", {})
    if error["code"] == "supplier_suspended":
        return gettext("Supplier %(code)s (%(name)s) is suspended: no new material lots are accepted from it. "
                       "Reinstate the supplier through a signed supplier review first.",
                       code=params.get("value", ""), name=params.get("name", ""))
    return gettext("Material lot %(lot)s comes from supplier %(code)s (%(name)s), which is suspended: a passing "
                   "inspection is not accepted. Record the inspection as failed (it is kept as evidence), or return "
                   "the lot to the supplier.", lot=params.get("value", ""), code=params.get("supplier", ""),
                   name=params.get("name", ""))

"""Evidence packages: one zip of everything recorded about an instance, a lot or a period, checkable offline.

A package holds, per instance, its report (HTML, and the same as PDF where WeasyPrint runs: written by the
caller), every document revision, the signature
manifests, the BPMN version that ran with its forms, and the instance's audit rows; and a manifest with the
SHA-256 and size of every file, the audit chain's head at export and the last signed checkpoint, itself signed
with HMAC-SHA256 (AUDIT_CHECKPOINT_KEY). `flask evidence verify ZIP` checks a package without the database and
names every altered, missing or unexpected file, every audit row whose hash no longer recomputes and every
signature whose documents are not the packaged bytes.
"""
from __future__ import annotations

import hashlib
import hmac
import io
import json
import re
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flask_babel import gettext
from sqlalchemy import select

from app.exceptions import NotFound, ValidationFailed
from app.extensions import db
from app.models import AuditEvent, AuditHead, Document, ProcessInstance, ProcessVersion, Signature, Task
from app.models.types import utcnow
from app.services.evidence import audit, audit_checkpoints

FORMAT = "qualiflow-evidence-package/1"
MANIFEST = "manifest.json"
MAX_INSTANCES = 200  # of one package; a longer period is refused (export it in parts)


def safe_name(name: str) -> str:
    """Return a file name that is the same on every file system and never leaves its folder."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")[:120] or "file"


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True, default=str).encode("utf-8")


def audit_row(event: AuditEvent) -> dict[str, Any]:
    """Return an audit row with every field its hash covers, and the hashes."""
    return {"id": event.id, "at": event.at.isoformat(), "actor_id": event.actor_id, "actor_name": event.actor_name,
            "action": event.action, "object_type": event.object_type, "object_id": event.object_id,
            "instance_id": event.instance_id, "old": event.old, "new": event.new, "reason": event.reason,
            "prev_hash": event.prev_hash, "hash": event.hash}


def _audit_lines(events: Iterable[AuditEvent]) -> bytes:
    return "".join(json.dumps(audit_row(event), ensure_ascii=False, sort_keys=True) + "\n"
                   for event in events).encode("utf-8")


def document_path(instance_id: int, document: Document | dict) -> str:
    """Return where a document revision lies in a package (reports link to it relative to the package root)."""
    item = document if isinstance(document, dict) else {"id": document.id, "filename": document.filename}
    return f"instances/{instance_id}/documents/{item['id']}-{safe_name(item['filename'])}"


def bpmn_path(instance: ProcessInstance) -> str:
    """Return where the BPMN version an instance ran lies in a package."""
    version = instance.version
    return f"instances/{instance.id}/process/{safe_name(version.definition.key)}-v{version.version}.bpmn"


def instance_files(instance_id: int) -> dict[str, bytes]:
    """Return the files of one instance in a package, but its report: documents, signatures, diagram, forms and
    audit rows, under instances/<id>/."""
    instance = db.session.get(ProcessInstance, instance_id)
    if instance is None:
        raise NotFound(gettext("No instance %(id)s.", id=instance_id))
    root = f"instances/{instance_id}"
    files: dict[str, bytes] = {}
    for document in db.session.scalars(select(Document).where(Document.instance_id == instance_id)
                                       .order_by(Document.id)):
        files[document_path(instance_id, document)] = document.content
        db.session.expire(document, ["content"])  # one document's bytes in memory at a time
    signatures = [{"id": s.id, "task": element, "step": name, "printed_name": s.printed_name,
                   "meaning": s.meaning, "signed_at": s.signed_at.isoformat(), "signed_hash": s.signed_hash,
                   "documents": [{**item, "path": document_path(instance_id, item)} for item in s.documents]}
                  for s, element, name in db.session.execute(
                      select(Signature, Task.element_id, Task.name).join(Task, Task.id == Signature.task_id)
                      .where(Signature.instance_id == instance_id).order_by(Signature.id))]
    files[f"{root}/signatures.json"] = _json(signatures)
    version = instance.version
    key = version.definition.key
    files[bpmn_path(instance)] = version.bpmn_xml.encode("utf-8")
    for name, form in sorted((version.forms or {}).items()):
        files[f"{root}/process/forms/{safe_name(name)}"] = _json(form)
    for name, xml in sorted((version.decisions or {}).items()):
        files[f"{root}/process/decisions/{safe_name(name)}"] = xml.encode("utf-8")
    files[f"{root}/process/version.json"] = _json({
        "process": key, "name": version.definition.name, "version": version.version, "filename": version.filename,
        "content_hash": version.content_hash, "deployed_at": version.created_at.isoformat(),
        "change_note": version.change_note, "approval": version_approval(version)})
    files[f"{root}/audit.jsonl"] = _audit_lines(db.session.scalars(
        select(AuditEvent).where(AuditEvent.instance_id == instance_id).order_by(AuditEvent.id)))
    return files


def version_approval(version: ProcessVersion) -> dict[str, Any] | None:
    """A procedure version's e-signed approval by QA (None for a version released at installation or not approved):
    who signed, with what meaning, when, the hash the signature is bound to, and the effective date."""
    if not version.signed_hash:
        return None
    return {"printed_name": version.signed_name, "user": version.decided_by.username if version.decided_by else None,
            "meaning": version.signed_meaning, "signed_at": version.decided_at.isoformat() if version.decided_at
            else None, "signed_hash": version.signed_hash, "content_hash": version.content_hash,
            "effective_on": version.effective_on.isoformat() if version.effective_on else None}


def approvals_file(versions: Iterable[ProcessVersion]) -> bytes:
    """The approvals of procedure versions signed in a package's period, as JSON (procedure_approvals.json)."""
    return _json([{"process": v.definition.key, "name": v.definition.name, "version": v.version,
                   "filename": v.filename, **(version_approval(v) or {})} for v in versions])


def audit_file(events: Iterable[AuditEvent]) -> bytes:
    """Return audit rows as a package's JSON-lines file (a lot's own status changes, say)."""
    return _audit_lines(events)


def _manifest_mac(body: dict) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return hmac.new(audit_checkpoints._key(), canonical, hashlib.sha256).hexdigest()


def package_id(scope: dict[str, Any], now: datetime) -> str:
    """Return the id a package is known by (its manifest, its PDF reports' footers): when it was made and of what,
    e.g. EP-20261207-204512-instance-5 or EP-20261207-204512-lot-L1."""
    what = {"instance": f"instance-{scope.get('id')}", "search": "search"}.get(
        scope.get("kind", ""), f"lot-{safe_name(str(scope.get('lot_number') or scope.get('id')))}")
    return f"EP-{now:%Y%m%d-%H%M%S}-{what}"


def seal(files: dict[str, bytes], scope: dict[str, Any], now: datetime | None = None,
         notes: dict[str, Any] | None = None) -> bytes:
    """Write the files and their signed manifest into a zip; return its bytes. `notes` (the package's id, whether
    its PDF reports were made) are recorded in the manifest, under its signature."""
    now = now or utcnow()
    head = db.session.get(AuditHead, 1)
    checkpoints = audit_checkpoints.load_checkpoints()
    last = checkpoints[-1] if checkpoints else None
    body = {
        **(notes or {}), "format": FORMAT, "created_at": now.isoformat(), "scope": scope,
        "chain": {"last_id": head.last_id if head else 0, "last_hash": head.last_hash if head else audit.GENESIS,
                  "checkpoint": {"last_id": last.last_id, "head_hash": last.head_hash, "at": last.at.isoformat()}
                  if last else None},
        "files": [{"path": path, "sha256": hashlib.sha256(content).hexdigest(), "size": len(content)}
                  for path, content in sorted(files.items())],
    }
    manifest = {**body, "hmac": _manifest_mac(body)}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, content in sorted(files.items()):
            archive.writestr(path, content)
        archive.writestr(MANIFEST, _json(manifest))
    return buffer.getvalue()


def check_size(instance_ids: list[int]) -> list[int]:
    """Refuse a package of more instances than one export holds."""
    if len(instance_ids) > MAX_INSTANCES:
        raise ValidationFailed(gettext("The period holds %(n)s instances; one package holds at most %(max)s. "
                                       "Export a shorter period.", n=len(instance_ids), max=MAX_INSTANCES))
    return instance_ids


# --- offline verification --------------------------------------------------------------------------------------------

@dataclass
class PackageReport:
    files: int = 0
    audit_rows: int = 0
    signatures: int = 0
    problems: list[str] = field(default_factory=list)
    scope: dict = field(default_factory=dict)
    pdf: str = ""  # the manifest's word on the PDF reports: "produced", or "not produced: <reason>"

    @property
    def ok(self) -> bool:
        return not self.problems


def _row_hash(row: dict) -> str:
    event = AuditEvent(id=row["id"], at=datetime.fromisoformat(row["at"]), actor_id=row["actor_id"],
                       actor_name=row["actor_name"], action=row["action"], object_type=row["object_type"],
                       object_id=row["object_id"], instance_id=row["instance_id"], old=row["old"], new=row["new"],
                       reason=row["reason"])
    return audit._digest(row["prev_hash"], event)


def verify_package(data: bytes, *, check_mac: bool = True) -> PackageReport:
    """Check a package without the database: every file against the manifest, the manifest's signature, every
    audit row's hash, every signature's documents. Return what was checked and each problem found."""
    report = PackageReport()
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        report.problems.append("not a zip file")
        return report
    with archive:
        names = set(archive.namelist())
        if MANIFEST not in names:
            report.problems.append(f"{MANIFEST} is missing")
            return report
        try:
            manifest = json.loads(archive.read(MANIFEST))
            listed = {item["path"]: item for item in manifest["files"]}
            mac = manifest.pop("hmac")
        except (ValueError, KeyError, TypeError) as err:
            report.problems.append(f"{MANIFEST} cannot be read: {err}")
            return report
        report.scope = manifest.get("scope") or {}
        report.pdf = str(manifest.get("pdf") or "")
        if manifest.get("format") != FORMAT:
            report.problems.append(f"{MANIFEST}: unknown format {manifest.get('format')!r}")
        if check_mac and not hmac.compare_digest(str(mac), _manifest_mac(manifest)):
            report.problems.append(f"{MANIFEST}: its signature does not match - the manifest was altered, or the "
                                   "package was made with another AUDIT_CHECKPOINT_KEY")
        contents: dict[str, bytes] = {}
        for path, item in sorted(listed.items()):
            if path not in names:
                report.problems.append(f"missing file: {path}")
                continue
            content = contents[path] = archive.read(path)
            digest = hashlib.sha256(content).hexdigest()
            if digest != item.get("sha256") or len(content) != item.get("size"):
                report.problems.append(f"altered file: {path} (SHA-256 {digest[:12]}…, the manifest recorded "
                                       f"{str(item.get('sha256'))[:12]}…)")
            report.files += 1
        for path in sorted(names - set(listed) - {MANIFEST}):
            if not path.endswith("/"):
                report.problems.append(f"unexpected file (not in the manifest): {path}")
    for path, content in sorted(contents.items()):
        if path.endswith(".jsonl"):
            _check_audit_rows(path, content, report)
        elif path.endswith("/signatures.json"):
            _check_signatures(path, content, contents, report)
    return report


def _check_audit_rows(path: str, content: bytes, report: PackageReport) -> None:
    for number, line in enumerate(content.decode("utf-8", "replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            recomputed = _row_hash(row)
        except (ValueError, KeyError, TypeError) as err:
            report.problems.append(f"{path} line {number}: not an audit row ({err})")
            continue
        if recomputed != row["hash"]:
            report.problems.append(f"{path}: audit row {row['id']} no longer matches its hash")
        report.audit_rows += 1


def _check_signatures(path: str, content: bytes, contents: dict[str, bytes], report: PackageReport) -> None:
    try:
        signatures = json.loads(content)
    except ValueError as err:
        report.problems.append(f"{path}: cannot be read ({err})")
        return
    for signature in signatures:
        report.signatures += 1
        for item in signature.get("documents", []):
            packaged = contents.get(item.get("path", ""))
            if packaged is None:
                report.problems.append(f"{path}: signature {signature.get('id')} signed {item.get('filename')}, "
                                       "which is not in the package")
            elif hashlib.sha256(packaged).hexdigest() != item.get("sha256"):
                report.problems.append(f"{path}: signature {signature.get('id')} signed {item.get('filename')} "
                                       f"with SHA-256 {str(item.get('sha256'))[:12]}…, not the packaged bytes")

"""The auditor's workspace (/audit), read only: instance search, an instance's timeline, everything about one lot,
the signature report (with its CSV), and the audit trail explorer (filters, chain verification, CSV/XLSX)."""
from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from flask import Blueprint, abort, current_app, jsonify, redirect, render_template, request, send_file, url_for
from flask_babel import force_locale, lazy_gettext
from flask_babel import gettext as _
from flask_login import current_user, login_required

from app import jobs
from app.services.evidence import auditor, exports, packages, pdf_reports, tables, trail
from app.services.workflow import plant_time, processes
from app.web import display
from app.web.common import ui_lang
from app.web.processes import procedure_name as procedure_label

bp = Blueprint("audit", __name__, url_prefix="/audit")
log = logging.getLogger(__name__)

CSV_MIMETYPE = "text/csv"
XLSX_MIMETYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

# The keys audit rows carry in their old/new values, in words; a key not here is shown as it is.
FIELD_LABELS: dict[str, Any] = {
    "assignee": lazy_gettext("Assignee"),
    "basis": lazy_gettext("Rule"),
    "data": lazy_gettext("Data"),
    "documents": lazy_gettext("Documents"),
    "due_at": lazy_gettext("Due"),
    "element": lazy_gettext("Step"),
    "filename": lazy_gettext("File"),
    "group": lazy_gettext("Group"),
    "hash": lazy_gettext("Signed hash"),
    "kind": lazy_gettext("Kind"),
    "recipients": lazy_gettext("Recipients"),
    "reference": lazy_gettext("Reference"),
    "revision": lazy_gettext("Revision"),
    "size": lazy_gettext("Size (bytes)"),
    "type": lazy_gettext("Type"),
    "label": lazy_gettext("Name"),
    "lot_number": lazy_gettext("Lot"),
    "meaning": lazy_gettext("Meaning"),
    "message": lazy_gettext("Message"),
    "met_by": lazy_gettext("Met by step"),
    "printed_name": lazy_gettext("Printed name"),
    "process": lazy_gettext("Procedure"),
    "result": lazy_gettext("Result"),
    "sha256": "SHA-256",
    "status": lazy_gettext("Status"),
    "title": lazy_gettext("Title"),
    "version": lazy_gettext("Version"),
}
# How an instance concerns a lot (instance_lots.role, and the lot dossier's own reasons).
LOT_ROLES: dict[str, Any] = {
    "subject": lazy_gettext("subject"),
    "affected": lazy_gettext("affected"),
    "containment": lazy_gettext("containment"),
    "hold": lazy_gettext("hold"),
    "inspection": lazy_gettext("failed inspection"),
    "status": lazy_gettext("changed its status"),
    "returned": lazy_gettext("returned to the supplier"),
}


@bp.before_request
@login_required
def only_auditors():
    """Open the workspace to auditors, administrators and QA; everyone else is refused."""
    if not auditor.may_audit(current_user):
        abort(403, description=_("The auditor's workspace is open to auditors, administrators and QA."))


@bp.app_template_global()
def may_audit() -> bool:
    return current_user.is_authenticated and auditor.may_audit(current_user)


@bp.app_template_global()
def lot_role_label(role: str) -> str:
    label = LOT_ROLES.get(role)
    return str(label) if label is not None else role


def _day(name: str) -> tuple[date | None, str | None]:
    """Read a YYYY-MM-DD query argument; return (the day or None, an error message or None)."""
    value = request.args.get(name, "").strip()
    if not value:
        return None, None
    try:
        return date.fromisoformat(value), None
    except ValueError:
        return None, _("%(value)s is not a date (YYYY-MM-DD); the filter was left out.", value=value[:20])


def _text(name: str, limit: int = 100) -> str:
    return request.args.get(name, "").strip()[:limit]


def _page() -> int:
    return max(request.args.get("page", 1, type=int), 1)


def _period() -> tuple[date | None, date | None, list[str]]:
    start, start_error = _day("from")
    end, end_error = _day("to")
    return start, end, [error for error in (start_error, end_error) if error]


# --- instance search -------------------------------------------------------------------------------------------------

def _instance_search() -> tuple[auditor.InstanceSearch, list[str]]:
    start, end, errors = _period()
    status = _text("status")
    return auditor.InstanceSearch(
        process_key=_text("process", 120), status=status if status in auditor.STATUSES else "", start=start, end=end,
        lot=_text("lot", 60), product=_text("product"), signer=_text("signer"), text=_text("q", 200)), errors


@bp.get("/")
def index():
    search, errors = _instance_search()
    page = auditor.search_instances(search, page=_page(), per_page=current_app.config["PAGE_SIZE"])
    return render_template("audit/index.html", search=search, page=page, errors=errors,
                           statuses=auditor.STATUSES, definitions=processes.list_definitions(),
                           signers=auditor.signers(), max_package=packages.MAX_INSTANCES)


# --- one instance ----------------------------------------------------------------------------------------------------

@dataclass
class Change:
    label: str
    old: str
    new: str


@dataclass
class Entry:
    """One audit row of an instance as the timeline shows it."""

    event: Any
    step: str = ""
    facts: list[display.Fact] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    signature: Any = None
    document: Any = None
    deadline: Any = None


def _when_text(value: Any) -> str:
    """Show an ISO time stored in an audit value on the plant's clock; anything else as it is."""
    if isinstance(value, str) and len(value) >= 16 and value[4:5] == "-" and "T" in value:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return value
        if moment.tzinfo is not None:
            return plant_time.format_moment(moment, plant_time.zone())
    return value


def _value_text(key: str, value: Any, step_names: dict[str, str], nested: bool = False) -> str:
    """Say one audit value in words: step names for elements, meanings in the page language, times on the plant
    clock, structured values as labelled text (one "label: value" line per key, nested ones in brackets)."""
    if value is None:
        return ""
    if key == "element" and isinstance(value, str):
        return step_names.get(value, value)
    if key == "meaning" and isinstance(value, str):
        return display.meaning_label(value)
    if isinstance(value, bool):
        return _("yes") if value else _("no")
    if isinstance(value, str):
        return _when_text(value)
    if isinstance(value, dict):
        parts = [f"{field_label(name)}: {_value_text(name, item, step_names, True)}"
                 for name, item in value.items() if item not in (None, "", [], {})]
        return f"({', '.join(parts)})" if nested else "\n".join(parts)
    if isinstance(value, list):
        return ", ".join(_value_text("", item, step_names, True) for item in value if item not in (None, ""))
    return str(value)


def field_label(key: str) -> str:
    label = FIELD_LABELS.get(key)
    return str(label) if label is not None else key


def audit_changes(old: Any, new: Any, step_names: dict[str, str] | None = None,
                  skip: Iterable[str] = ()) -> list[Change]:
    """Return an audit row's values as labelled old -> new pairs (a value only on one side shows there alone)."""
    step_names = step_names or {}
    old = old if isinstance(old, dict) else ({} if old is None else {"": old})
    new = new if isinstance(new, dict) else ({} if new is None else {"": new})
    keys = [key for key in dict.fromkeys([*old, *new]) if key not in skip]
    return [Change(field_label(key), _value_text(key, old.get(key), step_names),
                   _value_text(key, new.get(key), step_names)) for key in keys
            if old.get(key) is not None or new.get(key) is not None]


def _answer_changes(step, old: Any, lang: str) -> list[Change]:
    """Return the fields of a completed step whose earlier value it replaced: old -> new, labelled by its form."""
    if not isinstance(old, dict):
        return []
    earlier = {key: value for key, value in old.items()
               if value not in (None, "", []) and value != (step.data or {}).get(key)}
    if not earlier:
        return []
    before = {fact.label: fact for fact in display.answer_facts(step, lang, earlier)}
    after = {fact.label: fact for fact in display.answer_facts(step, lang)}
    return [Change(label, _fact_text(fact), _fact_text(after.get(label))) for label, fact in before.items()]


def _fact_text(fact: display.Fact | None) -> str:
    if fact is None:
        return ""
    return fact.text or "; ".join(", ".join(cell for cell in row if cell) for row in fact.rows)


def _step_name(task, lang: str) -> str:
    return task.name_zh if lang == "zh-CN" and task.name_zh else (task.name or task.element_id)


def timeline_entries(timeline: auditor.InstanceTimeline, lang: str) -> list[Entry]:
    """Turn an instance's audit rows into readable timeline entries in the page language."""
    step_names = {task.element_id: _step_name(task, lang) for task in timeline.tasks}
    entries = []
    for event in timeline.events:
        entry = Entry(event)
        task = timeline.task_of(event)
        if task is not None:
            entry.step = _step_name(task, lang)
        if event.action == "task.completed" and task is not None and task.form and task.data:
            entry.facts = display.answer_facts(task, lang)
            entry.changes = _answer_changes(task, event.old, lang)
        elif event.action == "signature.applied":
            entry.signature = timeline.signature_of(event)
            element = (event.new or {}).get("task")
            entry.step = step_names.get(element, element or "")
        elif event.action in ("document.stored", "document.tampered"):
            entry.document = timeline.document_of(event)
            entry.changes = audit_changes(event.old, event.new, step_names, skip=("filename", "sha256"))
        elif event.action.startswith("deadline."):
            entry.deadline = timeline.deadline_of(event)
            entry.changes = audit_changes(event.old, event.new, step_names)
        elif event.action == "task.automated":
            entry.step = step_names.get((event.new or {}).get("element"), entry.step)
            entry.changes = audit_changes(event.old, event.new, step_names, skip=("element",))
        else:
            entry.changes = audit_changes(event.old, event.new, step_names,
                                          skip=("element",) if entry.step else ())
        entries.append(entry)
    return entries


@bp.get("/instances/<int:instance_id>")
def instance(instance_id: int):
    timeline = auditor.instance_timeline(instance_id)
    lang = ui_lang()
    return render_template("audit/instance.html", timeline=timeline, entries=timeline_entries(timeline, lang),
                           step_names={task.element_id: _step_name(task, lang) for task in timeline.tasks},
                           pdf_unavailable=pdf_reports.unavailable())


# --- lots ------------------------------------------------------------------------------------------------------------

@bp.get("/lots")
def lots():
    query = _text("q", 60)
    return render_template("audit/lots.html", query=query, found=auditor.find_lots(query))


@bp.get("/lots/<kind>/<int:lot_id>")
def lot(kind: str, lot_id: int):
    if kind not in auditor.LOT_KINDS:
        abort(404)
    return render_template("audit/lot.html", dossier=auditor.lot_dossier(kind, lot_id), audit_changes=audit_changes)


# --- signatures ------------------------------------------------------------------------------------------------------

def _signature_search() -> tuple[auditor.SignatureSearch, list[str]]:
    start, end, errors = _period()
    return auditor.SignatureSearch(start=start, end=end, signer=_text("signer"), meaning=_text("meaning", 40)), errors


@bp.get("/signatures")
def signatures():
    search, errors = _signature_search()
    report = auditor.signature_report(search, page=_page())
    return render_template("audit/signatures.html", search=search, report=report, errors=errors,
                           meanings=auditor.meanings(), signers=auditor.report_signers())


def _signature_rows(search: auditor.SignatureSearch, lang: str) -> Iterable[list]:
    zone = plant_time.zone()
    for row in auditor.all_signatures(search):
        documents = "; ".join(f"{item.get('filename')} {item.get('sha256')}" for item in row.documents)
        if row.kind == auditor.PROCEDURE_APPROVAL:
            version = row.approval
            record, instance, title = _("Procedure version approved"), "", _(
                "Version %(version)s of %(name)s, effective %(day)s", version=row.version,
                name=procedure_label(version.definition), day=version.effective_on.isoformat()
                if version.effective_on else "")
            step, link = "", url_for("procedure_control.review", key=row.process_key, version=row.version,
                                     _external=True)
        else:
            record, instance, title = _("Step signed"), row.instance.id, row.instance.title
            step, link = _step_name(row.task, lang), url_for("audit.instance", instance_id=row.instance.id,
                                                             _external=True)
        yield [row.signed_at.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %Z"), row.printed_name, row.username,
               display.meaning_label(row.meaning), row.meaning, instance, title, row.process_name, row.version,
               step, row.signed_hash, documents, record, link]


@bp.get("/signatures.csv")
def signatures_csv():
    search, _errors = _signature_search()
    header = [_("Signed at"), _("Printed name"), _("User name"), _("Meaning"), _("Meaning code"), _("Instance"),
              _("Title"), _("Procedure"), _("Version"), _("Step"), _("Signed hash"), _("Documents signed"),
              _("Record signed"), _("Link")]
    content = tables.csv_bytes(header, _signature_rows(search, ui_lang()))
    return send_file(io.BytesIO(content), mimetype=CSV_MIMETYPE, as_attachment=True,
                     download_name=_export_name("signatures", search.start, search.end, "csv"))


def _export_name(what: str, start: date | None, end: date | None, extension: str) -> str:
    period = "-".join(day.isoformat() for day in (start, end) if day)
    return f"{what}{'-' + period if period else ''}.{extension}"


def decoded(value: Any) -> str:
    """Return an audit value as readable JSON (never \\u escapes), for exports."""
    return "" if value is None else json.dumps(value, ensure_ascii=False, default=str)


# --- audit trail explorer --------------------------------------------------------------------------------------------

def _trail_search() -> tuple[trail.TrailSearch, list[str]]:
    start, end, errors = _period()
    instance_text = _text("instance", 12).lstrip("#")
    instance_id = int(instance_text) if instance_text.isdigit() and int(instance_text) < 2**31 else None
    if instance_text and instance_id is None:
        errors.append(_("%(value)s is not an instance number; the filter was left out.", value=instance_text))
    return trail.TrailSearch(user=_text("user"), object_type=_text("object_type", 60), object_id=_text("object_id", 80),
                             action=_text("action", 80), instance_id=instance_id, start=start, end=end), errors


def _action_choices(codes: Iterable[str]) -> list[tuple[str, str]]:
    """Return the action codes with their names in the page language, by name."""
    return sorted(((code, display.action_label(code)) for code in codes), key=lambda choice: choice[1].lower())


@bp.get("/trail")
def trail_index():
    search, errors = _trail_search()
    page = trail.search_trail(search, page=_page(), per_page=current_app.config["PAGE_SIZE"])
    return render_template("audit/trail.html", search=search, page=page, errors=errors,
                           actions=_action_choices(trail.actions()), object_types=trail.object_types(),
                           audit_changes=audit_changes)


@bp.get("/trail/verify")
def trail_verify():
    return render_template("audit/verify.html", result=trail.verify_trail())


def _trail_export(search: trail.TrailSearch) -> tuple[list[str], Iterable[list]]:
    header = ["#", _("When"), _("Who"), _("Action"), _("Action code"), _("Object"), _("Object id"), _("Instance"),
              _("Old"), _("New"), _("Reason"), _("Hash"), _("Previous hash")]
    zone = plant_time.zone()

    def rows() -> Iterable[list]:
        for event in trail.all_events(search):
            yield [event.id, event.at.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %Z"),
                   _("system") if event.actor_name == "system" else event.actor_name,
                   display.action_label(event.action), event.action, event.object_type, event.object_id,
                   event.instance_id, decoded(event.old), decoded(event.new), event.reason, event.hash,
                   event.prev_hash]

    return header, rows()


@bp.get("/trail.csv")
def trail_csv():
    search, _errors = _trail_search()
    header, rows = _trail_export(search)
    return send_file(io.BytesIO(tables.csv_bytes(header, rows)), mimetype=CSV_MIMETYPE, as_attachment=True,
                     download_name=_export_name("audit-trail", search.start, search.end, "csv"))


def _trail_scope(search: trail.TrailSearch) -> dict:
    return {"kind": "trail", "user": search.user, "object_type": search.object_type, "object_id": search.object_id,
            "action": search.action, "instance_id": search.instance_id,
            "from": search.start.isoformat() if search.start else None,
            "to": search.end.isoformat() if search.end else None}


def _scope_trail(scope: dict) -> trail.TrailSearch:
    return trail.TrailSearch(
        user=scope.get("user") or "", object_type=scope.get("object_type") or "",
        object_id=scope.get("object_id") or "", action=scope.get("action") or "",
        instance_id=scope.get("instance_id"), start=date.fromisoformat(scope["from"]) if scope.get("from") else None,
        end=date.fromisoformat(scope["to"]) if scope.get("to") else None)


def _trail_workbook(search: trail.TrailSearch, progress) -> tuple[bytes, dict]:
    """The audit trail rows of the search as one XLSX sheet (an XLSX of 100,000 rows takes some seconds: a job)."""
    total = trail.count_events(search)
    header, rows = _trail_export(search)

    def counted() -> Iterable[list]:
        progress(0, total)
        written = 0
        for written, row in enumerate(rows, 1):
            yield row
            if written % 1000 == 0:
                progress(written, total)
        progress(written, total)
        held["rows"] = written

    held: dict = {"title": _("Audit trail")}
    return tables.xlsx_bytes(_("Audit trail"), header, counted()), held


@bp.post("/trail.xlsx")
def trail_xlsx():
    """Start writing the audit trail rows of the filters as XLSX in the background; answer with its job page (the
    CSV, quick to write, downloads at once)."""
    search, _errors = _trail_search()
    return _start_export("trail_xlsx", _trail_scope(search),
                         _export_name("audit-trail", search.start, search.end, "xlsx"))


# --- evidence packages -----------------------------------------------------------------------------------------------

ZIP_MIMETYPE = "application/zip"
PROCEDURE_APPROVALS = "procedure_approvals.json"


def _css_string(text: str) -> str:
    """Quote text as a CSS string (inside a <style> element: no markup can end it)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("<", "\\3c ").replace("\n", " ") + '"'


def page_counter_css() -> str:
    """The PDF footer's "Page N of M" as a CSS content value, in the page language."""
    marker = "\x00"
    text = _("Page %(page)s of %(pages)s", page=f"{marker}page{marker}", pages=f"{marker}pages{marker}")
    parts = text.split(marker)  # text, "page", text, "pages", text
    return " ".join(f"counter({part})" if number % 2 else _css_string(part)
                    for number, part in enumerate(parts) if part or number % 2)


def _report_html(timeline: auditor.InstanceTimeline, lang: str, pdf_footer: str | None = None,
                 pdf_link: bool = False) -> bytes:
    """Render an instance's timeline as the package's standalone report (links relative to its folder, to its PDF
    copy with pdf_link); with pdf_footer, as the page WeasyPrint prints to PDF (A4, that footer and the page
    numbers on every page)."""
    instance_id = timeline.instance.id
    folder = f"instances/{instance_id}/"

    def document_href(item) -> str:
        return packages.document_path(instance_id, item).removeprefix(folder)

    return render_template(
        "audit/package/report.html", timeline=timeline, entries=timeline_entries(timeline, lang),
        step_names={task.element_id: _step_name(task, lang) for task in timeline.tasks},
        document_href=document_href, bpmn_href=packages.bpmn_path(timeline.instance).removeprefix(folder),
        generated=plant_time.utcnow(), pdf_footer=pdf_footer, pdf_link=pdf_link,
        page_counter=page_counter_css() if pdf_footer else None).encode("utf-8")


def _pdf_note(missing: list[int], made: int, reason: str | None) -> str:
    """The manifest's "pdf" value: produced, or why not (and for which instances when some were made)."""
    if not missing:
        return pdf_reports.PRODUCED
    if not made:
        return pdf_reports.not_produced(reason or "")
    return pdf_reports.not_produced(f"for instance(s) {', '.join(map(str, missing))}: {reason}")


def _package(instance_ids: list[int], scope: dict, title: str, extra: dict[str, bytes] | None = None,
             history: list | None = None, progress: exports.Progress | None = None,
             approvals: list | None = None) -> tuple[bytes, str]:
    """Build a package of the instances: each one's files and report (HTML, and PDF where WeasyPrint runs), an
    index page, the signed manifest. Return the zip and the manifest's word on the PDF reports."""
    lang = ui_lang()
    now = plant_time.utcnow()
    package_id = packages.package_id(scope, now)
    files: dict[str, bytes] = dict(extra or {})
    found = []
    missing: list[int] = []
    cannot_run = reason = pdf_reports.unavailable()
    if progress:
        progress(0, len(instance_ids))
    for number, instance_id in enumerate(instance_ids, 1):
        files.update(packages.instance_files(instance_id))
        timeline = auditor.instance_timeline(instance_id)
        root = f"instances/{instance_id}"
        try:
            if cannot_run:  # WeasyPrint cannot run here at all (its system libraries are missing)
                raise pdf_reports.PdfUnavailable(cannot_run)
            footer = f"{package_id} · #{instance_id} {timeline.instance.title}"
            files[f"{root}/report.pdf"] = pdf_reports.render(_report_html(timeline, lang, pdf_footer=footer))
        except pdf_reports.PdfUnavailable as err:
            reason = str(err)
            missing.append(instance_id)
        files[f"{root}/report.html"] = _report_html(timeline, lang, pdf_link=f"{root}/report.pdf" in files)
        found.append(timeline.instance)
        if progress:
            progress(number, len(instance_ids))
    note = _pdf_note(missing, len(found) - len(missing), reason)
    if missing:
        log.warning("evidence package %s holds no PDF report of instance(s) %s: %s", package_id,
                    ", ".join(map(str, missing)), reason)
    files["index.html"] = render_template("audit/package/index.html", title=title, instances=found,
                                          history=history or [], audit_changes=audit_changes, generated=now,
                                          pdf_reports={i.id for i in found} - set(missing), pdf_note=note,
                                          package_id=package_id, approvals=approvals or [],
                                          approvals_file=PROCEDURE_APPROVALS if approvals is not None else None
                                          ).encode("utf-8")
    return packages.seal(files, scope, now, notes={"package_id": package_id, "pdf": note}), note


def _send_zip(content: bytes, name: str):
    return send_file(io.BytesIO(content), mimetype=ZIP_MIMETYPE, as_attachment=True, download_name=name)


def instance_package(instance_id: int) -> bytes:
    """Return the evidence package of one instance (in a request context: the page language, the plant clock)."""
    instance = auditor.instance_timeline(instance_id).instance
    title = _("Evidence package of instance #%(id)s %(title)s", id=instance.id, title=instance.title)
    return _package([instance.id], {"kind": "instance", "id": instance.id}, title)[0]


@bp.get("/instances/<int:instance_id>/package.zip")
def instance_package_zip(instance_id: int):
    """One instance's package is small: it is built while the download waits."""
    return _send_zip(instance_package(instance_id), f"evidence-instance-{instance_id}.zip")


# --- packages of a lot or a search: background jobs -------------------------------------------------------------------

def _search_scope(search: auditor.InstanceSearch) -> dict:
    return {"kind": "search", "process": search.process_key, "status": search.status,
            "from": search.start.isoformat() if search.start else None,
            "to": search.end.isoformat() if search.end else None, "lot": search.lot, "product": search.product,
            "signer": search.signer, "text": search.text}


def _scope_search(scope: dict) -> auditor.InstanceSearch:
    return auditor.InstanceSearch(
        process_key=scope.get("process") or "", status=scope.get("status") or "",
        start=date.fromisoformat(scope["from"]) if scope.get("from") else None,
        end=date.fromisoformat(scope["to"]) if scope.get("to") else None, lot=scope.get("lot") or "",
        product=scope.get("product") or "", signer=scope.get("signer") or "", text=scope.get("text") or "")


def _period_approvals(scope: dict) -> tuple[list, dict[str, bytes]]:
    """A period's package also lists the procedure versions QA approved (e-signed) in that period - of the searched
    procedure when the search names one - in procedure_approvals.json and on its index page."""
    if not (scope.get("from") or scope.get("to")):
        return [], {}
    search = _scope_search(scope)
    rows = auditor.procedure_approvals(auditor.SignatureSearch(start=search.start, end=search.end),
                                       search.process_key)
    return rows, {PROCEDURE_APPROVALS: packages.approvals_file(row.approval for row in rows)}


def build_export(job, progress: exports.Progress) -> tuple[bytes, dict]:
    """Build an export job's package in the language it was asked in (the queue worker runs this)."""
    # A GET request context: the page language, and on SQLite a reading transaction (no write lock held while the
    # package is built, so the progress heartbeats can be written).
    with current_app.test_request_context(), force_locale("zh_CN" if job.language.startswith("zh") else "en"):
        if job.kind == "trail_xlsx":
            return _trail_workbook(_scope_trail(job.scope), progress)
        if job.kind == "search":
            ids = packages.check_size(auditor.matching_ids(_scope_search(job.scope), packages.MAX_INSTANCES + 1))
            title = _("Evidence package of %(n)s instance(s)", n=len(ids))
            approvals, extra = _period_approvals(job.scope)
            content, pdf = _package(ids, job.scope, title, extra, approvals=approvals, progress=progress)
        else:
            dossier = auditor.lot_dossier(job.kind.removesuffix("_lot"), int(job.scope["id"]))
            ids = packages.check_size([p.instance.id for p in dossier.procedures])
            title = _("Evidence package of lot %(number)s", number=dossier.lot.lot_number)
            extra = {"lot/status_changes.jsonl": packages.audit_file(dossier.history)}
            content, pdf = _package(ids, job.scope, title, extra, dossier.history, progress=progress)
    # The job page says when the package holds no PDF report, and why (the manifest records it too).
    return content, {"instances": len(ids), "title": title,
                     "notice": "" if pdf == pdf_reports.PRODUCED else pdf.removeprefix("not produced: ")}


jobs.register_export_builder(build_export)


def _start_export(kind: str, scope: dict, name: str):
    job_id = exports.start_export(kind, scope, name, current_user, ui_lang()).id
    jobs.enqueue_export(job_id)  # a queue worker builds it; the job page shows its progress
    return redirect(url_for("audit.export_job", job_id=job_id), 303)


@bp.post("/lots/<kind>/<int:lot_id>/package")
def lot_package(kind: str, lot_id: int):
    """Start building a lot's package in the background; answer with its job page."""
    if kind not in auditor.LOT_KINDS:
        abort(404)
    dossier = auditor.lot_dossier(kind, lot_id)
    packages.check_size([p.instance.id for p in dossier.procedures])
    scope = {"kind": f"{kind}_lot", "id": lot_id, "lot_number": dossier.lot.lot_number}
    return _start_export(f"{kind}_lot", scope, f"evidence-lot-{packages.safe_name(dossier.lot.lot_number)}.zip")


@bp.post("/package")
def search_package():
    """Start building one package of every instance the search finds (a period, a procedure ...), at most
    packages.MAX_INSTANCES, in the background; answer with its job page."""
    search, errors = _instance_search()
    if errors:
        abort(400, description=" ".join(errors))
    packages.check_size(auditor.matching_ids(search, packages.MAX_INSTANCES + 1))
    return _start_export("search", _search_scope(search), _export_name("evidence", search.start, search.end, "zip"))


@bp.get("/exports/")
def export_jobs():
    page = exports.list_exports(current_user, page=_page(), per_page=current_app.config["PAGE_SIZE"])
    return render_template("audit/exports.html", page=page)


@bp.get("/exports/<int:job_id>")
def export_job(job_id: int):
    return render_template("audit/export_job.html", job=exports.job_status(job_id, current_user))


@bp.get("/exports/<int:job_id>.json")
def export_job_json(job_id: int):
    return jsonify(exports.job_status(job_id, current_user))


@bp.get("/exports/<int:job_id>/download")
def export_download(job_id: int):
    """The package, after its bytes were checked again against the SHA-256 recorded when it was made."""
    content, name, digest = exports.download(job_id, current_user)
    response = send_file(io.BytesIO(content), mimetype=XLSX_MIMETYPE if name.endswith(".xlsx") else ZIP_MIMETYPE,
                         as_attachment=True, download_name=name)
    response.headers["X-Content-SHA256"] = digest
    return response

"""Lot pages: master-data lists and entry forms, product and material lot pages with status changes,
CSV/XLSX imports with live progress, and the trace search (/trace) with its exports."""
from __future__ import annotations

import io
import re
from datetime import date

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required

from app import jobs
from app.exceptions import Conflict, FormInvalid, QualiflowError, ValidationFailed
from app.services.lots import conditions, import_rules, imports, lots, sterilization, stock, trace
from app.services.procedures import supplier_returns
from app.services.workflow import plant_time
from app.services.workflow.forms import Field
from app.services.workflow.instances import WORKER_ROLES
from app.web.common import ui_lang

bp = Blueprint("lots", __name__, url_prefix="/lots")
trace_bp = Blueprint("trace", __name__, url_prefix="/trace")

XLSX_MIMETYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
HUB_NEAR_EXPIRY_ROWS = 10
# Where a newly entered record is shown: its lot page, else its list (kinds without a list go to the hub).
LOT_PAGES = {"product_lots": "lots.product_lot", "material_lots": "lots.material_lot"}


def _today() -> date:
    return plant_time.utcnow().date()


def _near_expiry_days() -> int:
    return current_app.config["LOT_NEAR_EXPIRY_DAYS"]


def _page_number() -> int:
    return max(request.args.get("page", 1, type=int), 1)


@bp.app_template_global()
def lot_near_expiry(lot) -> bool:
    """Say whether a lot expires within the configured warning period."""
    return lots.is_near_expiry(lot, _today(), _near_expiry_days())


# The fixed details the release checks give (services/lots/lots.py), translated where the lot page shows them.
RELEASE_CHECK_DETAILS = (_l("batch record is not complete"), _l("no final inspection recorded"),
                         _l("sterile product without a sterilization batch"), _l("labels with UDI not checked"),
                         _l("product has no UDI-DI (GTIN)"))


@bp.app_template_global()
def value_label(value: str | None) -> str:
    """Return a stored code (lot status, customer type, inspection result, ...) in the page language."""
    labels = {
        "quarantine": _("quarantine"), "released": _("released"), "hold": _("hold"), "recalled": _("recalled"),
        "expired": _("expired"), "scrapped": _("scrapped"), "returned": _("returned to the supplier"),
        "approved": _("approved"), "conditional": _("conditional"), "suspended": _("suspended"),
        "distributor": _("distributor"), "hospital": _("hospital"), "end_user": _("end user"),
        "incoming": _("incoming"), "in_process": _("in process"), "final": _("final"),
        "pass": _("pass"), "fail": _("fail"),
        # How a procedure concerns a lot (instance_lots.role).
        "subject": _("subject of the procedure"), "affected": _("affected"),
        "en": "English", "zh-CN": "简体中文",  # languages, each named in itself
        # What a sensor measures and where it sits.
        "temperature": _("temperature"), "humidity": _("humidity"), "warehouse": _("warehouse"),
        "vehicle": _("vehicle"), "shipment": _("with a shipment"),
        # Import job states; "failed" alone already means a failed e-mail in the catalog.
        "running": _("running"), "succeeded": _("imported"), "failed": _("import failed"),
        # Sterilization methods and a biological indicator still incubating.
        **{method: sterilization.method_label(method, ui_lang()) for method in sterilization.STERILIZATION_METHODS},
        "pending": _("pending"),
    }
    return labels.get(value or "", value or "")


@bp.app_template_global()
def kind_label(kind: import_rules.Kind) -> str:
    return kind.label_zh if ui_lang() == "zh-CN" else kind.label


@bp.app_template_global()
def column_label(column: import_rules.Column) -> str:
    return column.label_zh if ui_lang() == "zh-CN" else column.label


def _parser_settings(column: import_rules.Column) -> dict:
    """Return what a column's parser was built with (choices, limit, minimum), to draw a fitting control."""
    return {name: getattr(column.parse, name) for name in ("choices", "limit", "minimum")
            if hasattr(column.parse, name)}


def _status_choices(kind: import_rules.Kind) -> tuple[str, ...]:
    status = next((c for c in kind.columns if c.name == "status"), None)
    return tuple(_parser_settings(status).get("choices", ())) if status else ()


def _record_fields(kind: import_rules.Kind, values: dict, errors: dict[str, list[str]]) -> list[Field]:
    """Build the entry form's controls from the kind's import columns."""
    return [_record_field(column, values, errors) for column in kind.columns]


def _record_field(column: import_rules.Column, values: dict, errors: dict[str, list[str]]) -> Field:
    settings = _parser_settings(column)
    widget, options, attrs = "text", [], {}
    if column.parse is import_rules.parse_date:
        widget = "date"
    elif column.parse is import_rules.boolean:
        widget = "checkbox"
    elif column.parse is import_rules.email:
        widget = "email"
    elif "choices" in settings:
        widget = "select"
        options = [("", "—"), *((choice, value_label(choice)) for choice in settings["choices"])]
    elif "minimum" in settings:
        widget, attrs = "number", {"min": settings["minimum"], "step": 1}
    elif column.parse is import_rules.decimal_quantity:
        widget, attrs = "number", {"min": 0, "step": "any"}
    if "limit" in settings:
        attrs = {"maxlength": settings["limit"]}
    return Field(name=column.name, id=f"field-{column.name}", label=column_label(column), widget=widget,
                 required=column.required, value=values.get(column.name, ""), options=options,
                 errors=errors.get(column.name, []), attrs=attrs)


def _render_new_record(kind: import_rules.Kind, values: dict, errors: dict[str, list[str]], status: int = 200):
    columns = {c.name for c in kind.columns}
    general = [message for name, messages in errors.items() if name not in columns for message in messages]
    return render_template("lots/new.html", kind=kind, fields=_record_fields(kind, values, errors),
                           general_errors=general, listable=kind.name in lots.LIST_MODELS), status


# --- hub and lists ---------------------------------------------------------------------------------------------------

@bp.get("/")
@login_required
def index():
    near = lots.near_expiry(_today(), _near_expiry_days(), per_page=HUB_NEAR_EXPIRY_ROWS)
    return render_template("lots/index.html", kinds=import_rules.KINDS.values(), listable=lots.LIST_MODELS,
                           near=near, days=_near_expiry_days())


@bp.get("/near-expiry")
@login_required
def near_expiry():
    page = lots.near_expiry(_today(), _near_expiry_days(), page=_page_number(),
                            per_page=current_app.config["PAGE_SIZE"])
    return render_template("lots/near_expiry.html", page=page, days=_near_expiry_days())


@bp.url_defaults
def keep_kind(endpoint: str, values: dict) -> None:
    # The shared pagination macro passes only the query string; the list's kind lives in the path.
    if endpoint == "lots.records" and "kind" not in values and "kind" in (request.view_args or {}):
        values["kind"] = request.view_args["kind"]


@bp.get("/<kind>/")
@login_required
def records(kind: str):
    record_kind = import_rules.get_kind(kind)
    statuses = _status_choices(record_kind)
    q = request.args.get("q", "").strip()[:100]
    status = request.args.get("status", "") if request.args.get("status") in statuses else ""
    page = lots.list_records(kind, q=q, status=status, page=_page_number(), per_page=current_app.config["PAGE_SIZE"])
    return render_template("lots/records.html", kind=record_kind, page=page, q=q, status=status, statuses=statuses)


@bp.get("/<kind>/template.csv")
@login_required
def template_csv(kind: str):
    content = imports.template_csv(kind).encode("utf-8")
    return send_file(io.BytesIO(content), mimetype="text/csv", as_attachment=True, download_name=f"{kind}.csv")


@bp.route("/<kind>/new", methods=["GET", "POST"])
@login_required
def new_record(kind: str):
    record_kind = import_rules.get_kind(kind)
    if request.method == "GET":
        defaults = {c.name: c.default for c in record_kind.columns if c.default not in (None, "")}
        return _render_new_record(record_kind, defaults, {})
    data = {c.name: request.form[c.name].strip() for c in record_kind.columns if request.form.get(c.name, "").strip()}
    try:
        record_id = imports.create_record(kind, data, current_user, lang=ui_lang())
    except FormInvalid as err:
        # 409: a suspended supplier's lot; the message naming the supplier heads the form
        errors = {**err.errors, "_": [err.message]} if err.status == 409 else err.errors
        return _render_new_record(record_kind, request.form.to_dict(), errors, err.status)
    flash(_("%(kind)s: the record was saved.", kind=kind_label(record_kind)), "success")
    if kind == "inspections":  # a material lot's own page shows its supplier's warning
        for warning in lots.supplier_warnings(lots.get_record(kind, record_id)):
            flash(warning, "warning")
    if kind in LOT_PAGES:
        return redirect(url_for(LOT_PAGES[kind], lot_id=record_id))
    if kind == sterilization.BATCH_KIND.name:
        return redirect(url_for("sterilization.detail", batch_id=record_id))
    if kind in lots.LIST_MODELS:
        return redirect(url_for("lots.records", kind=kind))
    return redirect(url_for("lots.index"))


# --- lot pages -------------------------------------------------------------------------------------------------------

def _can_change_status() -> bool:
    return current_user.has_role(*WORKER_ROLES)


def _render_product_lot(lot_id: int, error: str | None = None, status: int = 200):
    page = lots.product_lot_page(lot_id)
    return render_template("lots/product_lot.html", page=page, lot=page.lot,
                           release=lots.release_checks(page.lot, _today()),
                           next_statuses=[status for status in lots.TRANSITIONS[page.lot.status]
                                          if status not in lots.MATERIAL_ONLY_STATUSES],
                           can_change=_can_change_status(), status_error=error, days=_near_expiry_days(),
                           excursions=conditions.excursions_for_lot(lot_id), holds=conditions.holds_for_lot(lot_id),
                           sterilization_batch=sterilization.batch_by_number(page.lot.sterilization_batch),
                           sterilization_records=sterilization.batches_for_lots([page.lot]).get(lot_id, []),
                           stock_rows=stock.lot_stock(lot_id), scraps=stock.scrap_records_for_lot(lot_id),
                           orders=stock.orders_for_lot(page.lot.lot_number)), status


def _render_material_lot(lot_id: int, error: str | None = None, status: int = 200):
    lot, inspections, history = lots.material_lot_page(lot_id)
    return render_template("lots/material_lot.html", lot=lot, inspections=inspections, history=history,
                           next_statuses=lots.TRANSITIONS[lot.status], can_change=_can_change_status(),
                           status_error=error, days=_near_expiry_days(),
                           returns=supplier_returns.returns_for_material_lot(lot_id)), status


RENDER_LOT = {"product": _render_product_lot, "material": _render_material_lot}
LOT_ENDPOINTS = {"product": "lots.product_lot", "material": "lots.material_lot"}


@bp.get("/product-lots/<int:lot_id>")
@login_required
def product_lot(lot_id: int):
    return _render_product_lot(lot_id)


@bp.get("/material-lots/<int:lot_id>")
@login_required
def material_lot(lot_id: int):
    return _render_material_lot(lot_id)


@bp.post("/product-lots/<int:lot_id>/status")
@login_required
def product_lot_status(lot_id: int):
    return _change_status("product", lot_id)


@bp.post("/product-lots/<int:lot_id>/release")
@login_required
def start_release(lot_id: int):
    try:
        instance = lots.start_release(lot_id, current_user)
    except Conflict as err:
        flash(err.message, "warning")
        return redirect(url_for("lots.product_lot", lot_id=lot_id))
    flash(_("Lot release started: request it with the lot filled in."), "success")
    first = next((t for t in instance.tasks if t.state == "ready"), None)
    return redirect(url_for("inbox.task", task_id=first.id) if first else
                    url_for("instances.detail", instance_id=instance.id))


@bp.post("/material-lots/<int:lot_id>/status")
@login_required
def material_lot_status(lot_id: int):
    return _change_status("material", lot_id)


def _change_status(kind: str, lot_id: int):
    new_status = request.form.get("status", "").strip()
    reason = request.form.get("reason", "").strip()
    if not new_status:
        return RENDER_LOT[kind](lot_id, _("Choose the new status."), 400)
    if not reason:
        return RENDER_LOT[kind](lot_id, _("Give a reason for the status change; it goes into the audit trail."), 400)
    try:
        lots.set_status(kind, lot_id, new_status, reason, current_user)
    except QualiflowError as err:
        if err.status not in (400, 403, 409):
            raise
        return RENDER_LOT[kind](lot_id, err.message, err.status)
    flash(_("Status changed to %(status)s.", status=value_label(new_status)), "success")
    return redirect(url_for(LOT_ENDPOINTS[kind], lot_id=lot_id))


# --- imports ---------------------------------------------------------------------------------------------------------

@bp.route("/import", methods=["GET", "POST"])
@login_required
def import_file():
    error, status = None, 200
    if request.method == "POST":
        request.max_content_length = current_app.config["IMPORT_MAX_BYTES"]  # a lot file can be large
        upload = request.files.get("file")
        if upload is None or not upload.filename:
            error, status = _("Choose a .csv or .xlsx file to upload."), 400
        else:
            try:
                job = imports.start_import(request.form.get("kind", ""), upload.filename, upload.read(), current_user)
            except QualiflowError as err:
                error, status = err.message, err.status
            else:
                job_id = job.id
                jobs.enqueue_import(job_id)  # the job queue runs it; the page polls the job row
                return redirect(url_for("lots.import_job", job_id=job_id))
    return render_template("lots/import.html", kinds=import_rules.KINDS.values(), selected=request.values.get("kind"),
                           error=error), status


def _job_status(job_id: int) -> dict:
    """Return the job's status with each row error's reason and column label in the page language."""
    status = imports.job_status(job_id)
    kind = import_rules.KINDS.get(status["kind"])
    labels = {c.name: column_label(c) for c in kind.columns} if kind else {}
    lang = ui_lang()
    status["errors"] = [{**error, "reason": import_rules.reason_text(error, lang),
                         "column_label": labels.get(error.get("column"), "")} for error in status["errors"] or []]
    skipped = imports.skipped_count(status["message"]) if status["status"] == "succeeded" else None
    if skipped is not None:
        status["message"] = _("%(count)s row(s) already stored with the same value were skipped.", count=skipped)
    return status


@bp.get("/imports/")
@login_required
def import_jobs():
    page = imports.list_jobs(page=_page_number(), per_page=current_app.config["PAGE_SIZE"])
    return render_template("lots/import_jobs.html", page=page, kinds=import_rules.KINDS)


@bp.get("/imports/<int:job_id>")
@login_required
def import_job(job_id: int):
    job = _job_status(job_id)
    return render_template("lots/import_job.html", job=job, kind=import_rules.KINDS.get(job["kind"]),
                           listable=job["kind"] in lots.LIST_MODELS)


@bp.get("/imports/<int:job_id>.json")
@login_required
def import_job_json(job_id: int):
    return jsonify(_job_status(job_id))


# --- trace -----------------------------------------------------------------------------------------------------------

@trace_bp.get("")
@login_required
def search():
    query = request.args.get("q", "").strip()[:200]
    report, error = None, None
    if query:
        try:
            report = trace.trace_report(query)
        except ValidationFailed as err:
            error = err.message
    return render_template("lots/trace.html", query=query, report=report, error=error), 400 if error else 200


def _export_name(query: str, extension: str) -> str:
    """Return a download name safe on every file system: trace-<query>.<extension>."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", query).strip("-.")[:80] or "query"
    return f"trace-{safe}.{extension}"


def _traced_query() -> str:
    query = request.args.get("q", "").strip()[:200]
    if not query:
        abort(400, description=_("Say what to trace: a lot number, serial, document number or UDI."))
    return query


@trace_bp.get("/export.xlsx")
@login_required
def export_xlsx():
    report = trace.trace_report(_traced_query())
    return send_file(io.BytesIO(trace.export_xlsx(report)), mimetype=XLSX_MIMETYPE, as_attachment=True,
                     download_name=_export_name(report.query, "xlsx"))


@trace_bp.get("/export.csv")
@login_required
def export_csv():
    report = trace.trace_report(_traced_query())
    # A byte-order mark lets spreadsheet programs read the UTF-8 (Chinese names) correctly.
    return send_file(io.BytesIO(trace.export_csv(report).encode("utf-8-sig")), mimetype="text/csv",
                     as_attachment=True, download_name=_export_name(report.query, "csv"))

"""Sterilization batch pages: the list (search, status and method filters, pages), a batch's record (parameters
against the validated limits, load with each lot's status, BI or dosimeter results, failure reasons, the CAPA, the
signature), entering the BI result, and QA's e-signed release or failure."""
from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required

from app.exceptions import NotFound, QualiflowError
from app.services.lots import sterilization
from app.web.common import ui_lang

bp = Blueprint("sterilization", __name__, url_prefix="/sterilization")

STATUS_LABELS = {"pending": ("pending", "待定"), "released": ("released", "已放行"), "failed": ("failed", "不合格")}
STATUS_COLORS = {"pending": "warning", "released": "success", "failed": "danger"}
RELEASE_PROBLEMS = (_l("the biological indicator result is still pending"), _l("the batch has no lots"))  # for babel
BI_LABELS = {"pending": _l("pending (incubating)"), "pass": _l("negative (pass)"), "fail": _l("positive (fail)")}


@bp.app_template_global()
def sterilization_status(status: str) -> str:
    labels = STATUS_LABELS.get(status)
    return (labels[1] if ui_lang() == "zh-CN" else labels[0]) if labels else status


@bp.app_template_global()
def sterilization_status_color(status: str) -> str:
    return STATUS_COLORS.get(status, "secondary")


@bp.app_template_global()
def sterilization_method(method: str) -> str:
    return sterilization.method_label(method, ui_lang())


@bp.app_template_global()
def sterilization_parameter(name: str) -> str:
    return sterilization.parameter_label(name, ui_lang())


@bp.app_template_global()
def sterilization_unit(unit: str) -> str:
    return sterilization.unit_label(unit, ui_lang())


@bp.app_template_global()
def sterilization_failure(reason: dict) -> str:
    return sterilization.failure_text(reason, ui_lang())


@bp.app_template_global()
def bi_label(result: str | None) -> str:
    return str(BI_LABELS.get(result or "", "—"))


def _page_number() -> int:
    return max(request.args.get("page", 1, type=int), 1)


@bp.get("/")
@login_required
def index():
    q = request.args.get("q", "").strip()[:100]
    status = request.args.get("status", "")
    status = status if status in sterilization.BATCH_STATUSES else ""
    method = request.args.get("method", "")
    method = method if method in sterilization.STERILIZATION_METHODS else ""
    page = sterilization.list_batches(q=q, status=status, method=method, page=_page_number(),
                                      per_page=current_app.config["PAGE_SIZE"])
    return render_template("sterilization/index.html", page=page, q=q, status=status, method=method,
                           statuses=sterilization.BATCH_STATUSES, methods=sterilization.STERILIZATION_METHODS,
                           counts=sterilization.lot_counts([batch.id for batch in page.items]),
                           filtered=bool(q or status or method))


def _render_batch(batch_id: int, error: str | None = None, errors: dict | None = None, status: int = 200):
    try:
        page = sterilization.batch_page(batch_id)
    except NotFound:
        abort(404)
    return render_template("sterilization/detail.html", page=page, batch=page.batch, error=error,
                           errors=errors or {}, form=request.form if request.method == "POST" else {},
                           release_problems=[_(problem) for problem in page.release_problems],
                           may_decide=sterilization.signer_may_decide(current_user)), status


@bp.get("/<int:batch_id>")
@login_required
def detail(batch_id: int):
    return _render_batch(batch_id)


@bp.get("/by-number/<path:batch_number>")
@login_required
def by_number(batch_number: str):
    """A batch by its number (links from lots and trace): its record, or 404 when none was entered."""
    batch = sterilization.batch_by_number(batch_number)
    if batch is None:
        abort(404)
    return redirect(url_for("sterilization.detail", batch_id=batch.id))


@bp.post("/<int:batch_id>/bi-result")
@login_required
def bi_result(batch_id: int):
    result = request.form.get("result", "")
    if result not in ("pass", "fail"):
        return _render_batch(batch_id, _("Choose the biological indicator's result."),
                             {"result": [_("Choose the biological indicator's result.")]}, 400)
    try:
        sterilization.record_bi_result(batch_id, result, current_user, note=request.form.get("note", ""))
    except QualiflowError as err:
        if err.status not in (400, 403, 404, 409):
            raise
        return _render_batch(batch_id, err.message, None, err.status)
    flash(_("Biological indicator result recorded.") if result == "pass" else
          _("Biological indicator positive: the batch failed, its lots are on hold and a CAPA was opened."),
          "success" if result == "pass" else "warning")
    return redirect(url_for("sterilization.detail", batch_id=batch_id))


@bp.post("/<int:batch_id>/decision")
@login_required
def decision(batch_id: int):
    choice = request.form.get("decision", "")
    if choice not in ("release", "fail"):
        return _render_batch(batch_id, _("Choose release or fail."), {"decision": [_("Choose release or fail.")]}, 400)
    try:
        sterilization.decide(batch_id, choice, request.form.get("reason", ""), current_user,
                             request.form.get("password"))
    except QualiflowError as err:
        if err.status not in (400, 401, 403, 404, 409, 422, 423):
            raise
        return _render_batch(batch_id, err.message, getattr(err, "errors", None), err.status)
    flash(_("Sterilization batch released with your electronic signature.") if choice == "release" else
          _("Sterilization batch failed with your electronic signature: its lots are on hold and a CAPA was opened."),
          "success" if choice == "release" else "warning")
    return redirect(url_for("sterilization.detail", batch_id=batch_id))

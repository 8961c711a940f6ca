"""Supplier quality pages: the approved-supplier list (status, score, band, trend, last evaluation, open review) with
its CSV and XLSX export, and a supplier's page with its score chart (Chart.js, with the threshold bands, and the
same figures as a table), its evaluations, reviews and material lots; scoring on demand and starting a review."""
from __future__ import annotations

import io
from datetime import datetime
from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, request, send_file, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext
from flask_login import current_user, login_required

from app.exceptions import FormInvalid, QualiflowError
from app.services.evidence import tables
from app.services.procedures import supplier_quality
from app.services.workflow import plant_time
from app.web.lots import value_label

bp = Blueprint("suppliers", __name__, url_prefix="/suppliers")

XLSX_MIMETYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
BAND_LABELS = {"good": lazy_gettext("good"), "alert": lazy_gettext("below the alert threshold"),
               "limit": lazy_gettext("below the limit"), "no_data": lazy_gettext("not enough data")}
TRIGGER_LABELS = {"alert": lazy_gettext("score below the alert threshold"),
                  "limit": lazy_gettext("score below the limit"), "manual": lazy_gettext("requested by QA"),
                  "scheduled": lazy_gettext("scheduled"), "on_demand": lazy_gettext("on demand")}
CHART_DAYS = (90, 365, 730)


def band_label(band: str) -> str:
    return str(BAND_LABELS.get(band, band))


def trigger_label(trigger: str) -> str:
    return str(TRIGGER_LABELS.get(trigger, trigger))


bp.add_app_template_global(band_label, "supplier_band_label")
bp.add_app_template_global(trigger_label, "supplier_trigger_label")


def _filters() -> dict[str, str]:
    return {"q": request.args.get("q", "").strip()[:100], "status": request.args.get("status", "").strip(),
            "band": request.args.get("band", "").strip()}


def _may_act() -> bool:
    return current_user.has_role("admin") or bool(current_user.group_names & set(supplier_quality.QA_GROUPS))


@bp.get("/")
@login_required
def index():
    filters = _filters()
    try:
        page = supplier_quality.approved_supplier_list(**filters, page=request.args.get("page", 1, type=int),
                                                       per_page=current_app.config["PAGE_SIZE"])
    except QualiflowError as err:
        return render_template("suppliers/index.html", page=None, error=err.message, filters=filters,
                               rule=supplier_quality.settings(), may_act=_may_act()), err.status
    return render_template("suppliers/index.html", page=page, error=None, filters=filters,
                           rule=supplier_quality.settings(), may_act=_may_act())


def _trend_text(row: supplier_quality.SupplierRow) -> str:
    return "" if row.trend is None else f"{row.trend:+.1f}"


def export_table(rows: list[supplier_quality.SupplierRow]) -> tuple[list[str], list[list[Any]]]:
    """The approved-supplier list as an export's header and rows (scores as numbers, dates in plant time)."""
    zone = plant_time.zone()
    header = [_("Code"), _("Supplier"), _("Status"), _("Score"), _("Band"), _("Trend"), _("Last evaluation"),
              _("Incoming inspections"), _("Failed"), _("Nonconforming %"), _("SCARs"), _("Late responses"),
              _("Lots returned"), _("Open review")]
    body = []
    for row in rows:
        figures = row.figures
        body.append([row.supplier.code, row.supplier.name, _value(row.supplier.status), row.score,
                     band_label(row.band), row.trend,
                     plant_time.format_moment(row.evaluated_at, zone) if row.evaluated_at else "",
                     figures.get("inspections"), figures.get("failed"), figures.get("nonconforming_pct"),
                     figures.get("scars"), figures.get("late_responses"), figures.get("returns"),
                     f"#{row.review.instance_id}" if row.review else ""])
    return [str(h) for h in header], body


def _value(status: str) -> str:
    return str(value_label(status))


def _export(extension: str):
    filters = _filters()
    rows = supplier_quality.export_rows(**filters)
    header, body = export_table(rows)
    stamp = datetime.now(plant_time.zone()).strftime("%Y%m%d-%H%M")
    name = f"approved-suppliers-{stamp}.{extension}"
    if extension == "csv":
        return send_file(io.BytesIO(tables.csv_bytes(header, body)), mimetype="text/csv", as_attachment=True,
                         download_name=name)
    return send_file(io.BytesIO(tables.xlsx_bytes(_("Approved suppliers"), header, body)), mimetype=XLSX_MIMETYPE,
                     as_attachment=True, download_name=name)


@bp.get("/export.csv")
@login_required
def export_csv():
    return _export("csv")


@bp.get("/export.xlsx")
@login_required
def export_xlsx():
    return _export("xlsx")


@bp.post("/evaluate")
@login_required
def evaluate_all():
    outcomes = supplier_quality.evaluate_all(actor=current_user, trigger="on_demand")
    started = sum(1 for o in outcomes if o.started)
    flash(_("%(n)s supplier(s) scored; %(started)s review(s) started.", n=len(outcomes), started=started), "success")
    return redirect(url_for("suppliers.index"))


def chart_data(evaluations, rule: supplier_quality.Settings) -> dict[str, Any]:
    """The score chart's figures for Chart.js: points (ms since 1970, score), the thresholds and labels."""
    # An evaluation without a score (not enough data) is a gap in the line, not a point.
    points = [[int(e.evaluated_at.timestamp() * 1000), e.score] for e in evaluations]
    return {"points": points if any(p[1] is not None for p in points) else [],
            "alert": rule.alert, "limit": rule.limit, "zone": str(plant_time.zone()),
            "labels": {"score": _("Score"), "good": band_label("good"), "alert": band_label("alert"),
                       "limit": band_label("limit")}}


def _detail_page(supplier_id: int, days: int = 365, page: int = 1, errors: dict | None = None,
                 values: Any = None, status: int = 200):
    row = supplier_quality.supplier_row(supplier_id)
    rule = supplier_quality.settings()
    evaluations = supplier_quality.history(supplier_id, days)
    return render_template("suppliers/detail.html", row=row, supplier=row.supplier, rule=rule, days=days,
                           periods=CHART_DAYS, chart=chart_data(evaluations, rule),
                           chart_rows=[e for e in reversed(evaluations) if e.score is not None][:50],
                           evaluations=supplier_quality.evaluations_page(supplier_id, page,
                                                                         current_app.config["PAGE_SIZE"]),
                           reviews=supplier_quality.reviews(supplier_id),
                           material_lots=supplier_quality.material_lots(supplier_id), may_act=_may_act(),
                           open_review=supplier_quality.open_review(supplier_id),
                           statuses=supplier_quality.SUPPLIER_STATUSES, errors=errors or {},
                           values=values or {}), status


@bp.get("/<int:supplier_id>")
@login_required
def detail(supplier_id: int):
    days = request.args.get("days", 365, type=int)
    return _detail_page(supplier_id, days if days in CHART_DAYS else 365, request.args.get("page", 1, type=int))


@bp.post("/<int:supplier_id>/evaluate")
@login_required
def evaluate(supplier_id: int):
    outcome = supplier_quality.evaluate_supplier(supplier_id, current_user)
    score = outcome.evaluation.score
    message = (_("Not enough data to score the supplier.") if score is None else
               _("Scored %(score)s (%(band)s).", score=f"{score:g}", band=band_label(outcome.evaluation.band)))
    if outcome.started:
        message += " " + _("A supplier review was started (#%(id)s).", id=outcome.review.instance_id)
    elif outcome.review is not None:
        message += " " + _("The open supplier review #%(id)s has the new score.", id=outcome.review.instance_id)
    flash(message, "success")
    return redirect(url_for("suppliers.detail", supplier_id=supplier_id))


@bp.post("/<int:supplier_id>/review")
@login_required
def request_review(supplier_id: int):
    try:
        review = supplier_quality.request_review(supplier_id, current_user, request.form.get("proposed_status", ""),
                                                 request.form.get("reason", ""))
    except FormInvalid as err:
        return _detail_page(supplier_id, errors=err.errors, values=request.form, status=422)
    flash(_("Supplier review #%(id)s started: the status changes only when the head of QA signs its decision.",
            id=review.instance_id), "success")
    return redirect(url_for("instances.detail", instance_id=review.instance_id))

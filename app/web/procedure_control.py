"""Controlled procedures' pages: a procedure's version history (status, author, reason, approver, effective date,
compare with the previous version), a version's review page where QA approves it with an e-signature or rejects it
and its author withdraws it, and the visual comparison of two versions for every reader."""
from __future__ import annotations

from datetime import date
from urllib.parse import urlencode

from flask import Blueprint, abort, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from app.exceptions import QualiflowError
from app.services.studio import studio
from app.services.workflow import plant_time, procedure_control, processes

bp = Blueprint("procedure_control", __name__, url_prefix="/processes")


@bp.app_template_global()
def version_status(version) -> str:
    """A version's document-control status now: pending, scheduled, effective, superseded, rejected, withdrawn."""
    return procedure_control.version_control(version)["status"]


@bp.app_template_global()
def version_status_label(status: str) -> str:
    return procedure_control.status_label(status)


@bp.get("/<key>/history")
@login_required
def history(key: str):
    effective, rows = procedure_control.history(key)
    return render_template("processes/history.html", definition=processes.get_definition(key), rows=rows,
                           effective=effective)


def _review(key: str, number: int, *, error: str | None = None, errors: dict | None = None, status: int = 200):
    version = processes.get_version(key, number)
    control = procedure_control.version_control(version)
    pending = version.status == "pending"
    previous = max((v.version for v in version.definition.versions if v.version < number), default=None)
    return render_template(
        "processes/review.html", version=version, control=control, previous=previous, error=error,
        errors=errors or {}, today=plant_time.local_date(plant_time.utcnow(), plant_time.zone()).isoformat(),
        may_decide=pending and procedure_control.may_approve(current_user) and version.author_id != current_user.id,
        may_withdraw=pending and version.author_id == current_user.id,
        approver_group=procedure_control.approver_group(), form=request.form), status


@bp.get("/<key>/<int:version>/review")
@login_required
def review(key: str, version: int):
    return _review(key, version)


def _decide(key: str, version: int, action, done: str):
    try:
        action()
    except QualiflowError as err:
        return _review(key, version, error=err.message, errors=getattr(err, "errors", None), status=err.status)
    flash(done, "success")
    return redirect(url_for("procedure_control.review", key=key, version=version))


@bp.post("/<key>/<int:version>/approve")
@login_required
def approve(key: str, version: int):
    raw = request.form.get("effective_date", "").strip()
    try:
        effective_on = date.fromisoformat(raw) if raw else None
    except ValueError:
        return _review(key, version, error=_("The effective date is a date such as 2026-12-31."),
                       errors={"effective_date": [_("The effective date is a date such as 2026-12-31.")]},
                       status=422)
    return _decide(key, version, lambda: procedure_control.approve(
        current_user, key, version, request.form.get("password"), effective_on),
        _("Version %(version)s approved with your electronic signature.", version=version))


@bp.post("/<key>/<int:version>/reject")
@login_required
def reject(key: str, version: int):
    return _decide(key, version, lambda: procedure_control.reject(current_user, key, version,
                                                                  request.form.get("reason")),
                   _("Version %(version)s rejected; it will not be used.", version=version))


@bp.post("/<key>/<int:version>/withdraw")
@login_required
def withdraw(key: str, version: int):
    return _decide(key, version, lambda: procedure_control.withdraw(current_user, key, version,
                                                                    request.form.get("reason")),
                   _("Version %(version)s withdrawn; it will not be used.", version=version))


def _versions_to_compare(key: str) -> tuple[object, list[int], int, int]:
    definition = processes.get_definition(key)
    versions = sorted(v.version for v in definition.versions)
    from_version, to_version = request.args.get("from", type=int), request.args.get("to", type=int)
    if from_version not in versions or to_version not in versions:
        abort(400, _("Choose two deployed versions of %(key)s.", key=key))
    return definition, versions, from_version, to_version


@bp.get("/<key>/compare")
@login_required
def compare(key: str):
    """Two versions side by side with their differences marked (the studio's comparison, for every reader)."""
    definition, versions, from_version, to_version = _versions_to_compare(key)
    query = urlencode({"from": from_version, "to": to_version})
    return render_template(
        "studio/diff.html", definition=definition, versions=versions, from_version=from_version,
        to_version=to_version, draft_id=None,
        from_url=url_for("processes.diagram", key=key, version=from_version),
        to_url=url_for("processes.diagram", key=key, version=to_version),
        diff_url=url_for("procedure_control.compare_json", key=key) + "?" + query,
        compare_action=url_for("procedure_control.compare", key=key),
        back_url=url_for("procedure_control.history", key=key), back_label=_("Back to the version history"))


@bp.get("/<key>/compare.json")
@login_required
def compare_json(key: str):
    """Elements added, removed and changed between two versions."""
    _definition, _versions, from_version, to_version = _versions_to_compare(key)
    return jsonify(studio.compare_versions(key, from_version, to_version))

"""Recall pages: the dashboard, a recall's workspace (affected list, consignees, returns, effectiveness checks),
starting a recall from a lot or a CAPA, and the public acknowledgment page a consignee's notice links to."""
from __future__ import annotations

import tempfile
from contextlib import nullcontext
from pathlib import Path

from flask import Blueprint, Response, current_app, flash, redirect, render_template, request, url_for
from flask_babel import force_locale
from flask_babel import gettext as _
from flask_login import current_user, login_required
from werkzeug.datastructures import MultiDict
from werkzeug.utils import secure_filename

from app.edge import whole_number
from app.exceptions import FormInvalid, ImportRefused, QualiflowError
from app.services.lots import lots
from app.services.procedures import dashboards, recalls
from app.web.common import ui_lang

bp = Blueprint("recalls", __name__, url_prefix="/recalls")
ack_bp = Blueprint("ack", __name__, url_prefix="/ack")

UPLOAD_SUFFIXES = (".csv", ".xlsx")
YES_NO = {"yes": True, "no": False}


@bp.app_template_filter("percent")
def percent(rate: float | None) -> str:
    """Return a share (0.85) as "85.0%", or a dash when there is nothing to divide by."""
    return "—" if rate is None else f"{100 * rate:.1f}%"


bp.add_app_template_global(recalls.recall_number, "recall_number")


@bp.get("/")
@login_required
def index():
    return render_template("recalls/index.html", board=dashboards.recall_dashboard())


# --- the workspace ---------------------------------------------------------------------------------------------------

def _render_workspace(instance_id: int, *, failed: str = "", message: str | None = None,
                      errors: dict[str, list[str]] | None = None, import_errors: list[dict] | None = None,
                      status: int = 200):
    """Render the workspace; after a refusal, `failed` names the form that was refused and keeps its input."""
    view = recalls.recall_view(instance_id)
    return render_template("recalls/detail.html", view=view, instance=view.instance,
                           can_edit=recalls.can_edit(current_user) and view.instance.status in recalls.OPEN_STATES,
                           check_methods=recalls.CHECK_METHODS, failed=failed, message=message, errors=errors or {},
                           import_errors=import_errors or []), status


def _refused(instance_id: int, form: str, err: QualiflowError):
    """Show the workspace again with why the service refused the form; nothing was changed."""
    if err.status >= 500:
        raise err
    return _render_workspace(instance_id, failed=form, message=err.message, status=err.status,
                             errors=err.errors if isinstance(err, FormInvalid) else None,
                             import_errors=err.errors if isinstance(err, ImportRefused) else None)


def _invalid(instance_id: int, form: str, errors: dict[str, list[str]]):
    return _render_workspace(instance_id, failed=form, message=_("The form has errors; nothing was saved."),
                             errors=errors, status=422)


def _back(instance_id: int, section: str):
    return redirect(url_for("recalls.detail", instance_id=instance_id, _anchor=section))


def _whole_numbers(names: tuple[str, ...]) -> tuple[dict[str, int], dict[str, list[str]]]:
    """Read non-negative whole numbers from the form, with a message for each field that is not one."""
    numbers, errors = {}, {}
    for name in names:
        number = whole_number(request.form.get(name, ""), minimum=0)
        if number is not None:
            numbers[name] = number
        else:
            errors[name] = [_("Enter a whole number of at least 0.")]
    return numbers, errors


@bp.get("/<int:instance_id>")
@login_required
def detail(instance_id: int):
    return _render_workspace(instance_id)


@bp.post("/<int:instance_id>/affected")
@login_required
def edit_affected(instance_id: int):
    try:
        recalls.edit_affected(instance_id, add=lots.split_list(request.form.get("add", "")),
                              remove=request.form.getlist("remove"), reason=request.form.get("reason", ""),
                              actor=current_user, lang=ui_lang())
    except QualiflowError as err:
        return _refused(instance_id, "affected", err)
    flash(_("The affected list was changed; the consignees follow it."), "success")
    return _back(instance_id, "lots-h")


@bp.post("/<int:instance_id>/returns")
@login_required
def record_return(instance_id: int):
    numbers, errors = _whole_numbers(("returned", "destroyed"))
    if errors:
        return _invalid(instance_id, "returns", errors)
    try:
        recalls.record_return(instance_id, request.form.get("customer", ""), request.form.get("lot", ""),
                              numbers["returned"], numbers["destroyed"], current_user, lang=ui_lang())
    except QualiflowError as err:
        return _refused(instance_id, "returns", err)
    flash(_("The return was recorded."), "success")
    return _back(instance_id, "returns-h")


@bp.post("/<int:instance_id>/returns/import")
@login_required
def import_returns(instance_id: int):
    upload = request.files.get("file")
    suffix = Path(upload.filename).suffix.lower() if upload and upload.filename else ""
    if suffix not in UPLOAD_SUFFIXES:
        return _render_workspace(instance_id, failed="import", message=_("Upload a .csv or .xlsx file."), status=400)
    # The file keeps its name (the audit trail cites it) in a folder of its own that is removed afterwards.
    name = (secure_filename(Path(upload.filename).stem) or "returns") + suffix
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        upload.save(path)
        try:
            count = recalls.import_returns(instance_id, path, current_user, lang=ui_lang())
        except QualiflowError as err:
            return _refused(instance_id, "import", err)
    flash(_("Returns imported: %(count)s row(s).", count=count), "success")
    return _back(instance_id, "returns-h")


@bp.post("/<int:instance_id>/consignees/<int:consignee_id>/check")
@login_required
def record_check(instance_id: int, consignee_id: int):
    form = f"check-{consignee_id}"
    effective = YES_NO.get(request.form.get("effective", ""))
    if effective is None:
        return _invalid(instance_id, form, {"effective": [_("Say whether the consignee acted on the notice.")]})
    try:
        recalls.record_check(instance_id, consignee_id, method=request.form.get("method", ""), effective=effective,
                             note=request.form.get("note", ""), actor=current_user, lang=ui_lang())
    except QualiflowError as err:
        return _refused(instance_id, form, err)
    flash(_("The effectiveness check was recorded."), "success")
    return _back(instance_id, "effectiveness-h")


@bp.post("/start")
@login_required
def start():
    instance = recalls.start_recall(current_user, lot_id=request.form.get("lot_id", type=int),
                                    capa_instance_id=request.form.get("capa_instance_id", type=int))
    flash(_("Recall started. Complete the trigger: it finds the affected lots and consignees."), "success")
    first = next((t for t in instance.tasks if t.state == "ready"), None)
    if first is None:
        return redirect(url_for("recalls.detail", instance_id=instance.id))
    return redirect(url_for("inbox.task", task_id=first.id))


# --- the public acknowledgment page ----------------------------------------------------------------------------------

@ack_bp.after_request
def keep_private(response: Response) -> Response:
    # The token in the address is the consignee's only credential: never cache the page nor send it on as a referrer.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _company() -> dict[str, str]:
    config = current_app.config
    return {"name": config["COMPANY_NAME"], "contact": config["COMPANY_CONTACT"]}


def _in_language(consignee: recalls.RecallConsignee, template: str, status: int = 200, **context):
    """Render a page in the consignee's language (the notice's), whatever the browser asks for."""
    with force_locale("zh_CN" if consignee.language == "zh-CN" else "en"):
        return render_template(template, consignee=consignee, company=_company(), **context), status


def _closed(err: QualiflowError, token: str):
    """Say why a link no longer opens the form: forged (404), already used (409) or expired (410); a used or
    expired link still answers in its consignee's language."""
    if err.status not in (404, 409, 410):
        raise err
    language = recalls.link_language(token)
    with force_locale("zh_CN" if language == "zh-CN" else "en") if language else nullcontext():
        return render_template("recalls/ack_closed.html", status=err.status, company=_company()), err.status


@ack_bp.get("/<token>")
def acknowledge_form(token: str):
    try:
        consignee = recalls.consignee_for_token(token)
    except QualiflowError as err:
        return _closed(err, token)
    return _in_language(consignee, "recalls/ack.html", token=token, values=MultiDict(), errors={})


@ack_bp.post("/<token>")
def acknowledge(token: str):
    answers = {**request.form.to_dict(), "received": YES_NO.get(request.form.get("received", "")),
               "forwarded": YES_NO.get(request.form.get("forwarded", ""))}
    try:
        consignee = recalls.acknowledge(token, answers)
    except FormInvalid as err:
        return _in_language(recalls.consignee_for_token(token), "recalls/ack.html", 422, token=token,
                            values=request.form, errors=err.errors)
    except QualiflowError as err:
        return _closed(err, token)
    return _in_language(consignee, "recalls/ack_done.html")

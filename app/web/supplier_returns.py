"""Supplier return pages: a return's workspace (lots, SCAR rounds with delivery, reminders, answers and
verification, the return records), starting a return from a material lot, and the public SCAR response page
a supplier's e-mail links to."""
from __future__ import annotations

from contextlib import nullcontext

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_babel import force_locale
from flask_babel import gettext as _
from flask_login import current_user, login_required

from app.exceptions import FormInvalid, QualiflowError
from app.services.procedures import supplier_returns
from app.web.recalls import keep_private

bp = Blueprint("supplier_returns", __name__, url_prefix="/supplier-returns")
scar_bp = Blueprint("scar", __name__, url_prefix="/scar")

bp.add_app_template_global(supplier_returns.return_number, "supplier_return_number")


@bp.get("/<int:instance_id>")
@login_required
def detail(instance_id: int):
    return render_template("supplier_returns/detail.html", view=supplier_returns.return_view(instance_id))


@bp.post("/start")
@login_required
def start():
    lot_id = request.form.get("material_lot_id", type=int)
    if lot_id is None:
        flash(_("Start a supplier return from a material lot's page."), "warning")
        return redirect(url_for("lots.records", kind="material_lots"))
    instance = supplier_returns.start_return(current_user, lot_id)
    flash(_("Supplier return started: identify the nonconforming lots; they are quarantined."), "success")
    first = next((t for t in instance.tasks if t.state == "ready"), None)
    if first is None:
        return redirect(url_for("supplier_returns.detail", instance_id=instance.id))
    return redirect(url_for("inbox.task", task_id=first.id))


# --- the public SCAR response page -----------------------------------------------------------------------------------

# The token in the address is the supplier's only credential, as a consignee's is: the same private headers.
scar_bp.after_request(keep_private)


def _company() -> dict[str, str]:
    config = current_app.config
    return {"name": config["COMPANY_NAME"], "contact": config["COMPANY_CONTACT"]}


def _locale(language: str | None):
    return force_locale("zh_CN" if language == "zh-CN" else "en") if language else nullcontext()


def _in_language(scar: supplier_returns.ScarRequest, template: str, status: int = 200, **context):
    """Render a page in the SCAR's language (the supplier's), whatever the browser asks for."""
    with _locale(scar.language):
        return render_template(template, scar=scar, company=_company(), **context), status


def _closed(err: QualiflowError, token: str):
    """Say why a link no longer opens the form: forged (404), already used (409) or expired (410)."""
    if err.status not in (404, 409, 410):
        raise err
    with _locale(supplier_returns.link_language(token)):
        return render_template("supplier_returns/scar_closed.html", status=err.status, company=_company()), err.status


@scar_bp.get("/<token>")
def response_form(token: str):
    try:
        scar = supplier_returns.scar_for_token(token)
    except QualiflowError as err:
        return _closed(err, token)
    return _in_language(scar, "supplier_returns/scar_response.html", token=token, values={}, errors={},
                        view=supplier_returns.return_view(scar.instance_id))


@scar_bp.post("/<token>")
def respond(token: str):
    try:
        scar = supplier_returns.respond(token, request.form.to_dict())
    except FormInvalid as err:
        scar = supplier_returns.scar_for_token(token)
        return _in_language(scar, "supplier_returns/scar_response.html", 422, token=token, values=request.form,
                            errors=err.errors, view=supplier_returns.return_view(scar.instance_id))
    except QualiflowError as err:
        return _closed(err, token)
    return _in_language(scar, "supplier_returns/scar_done.html")

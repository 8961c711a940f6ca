"""Stock pages: stock by warehouse and location with status and expiry (the dashboard's tiles link here), the
warehouses, shipping first-expiry-first-out with every refused lot and why, the QA-signed override of a shelf-life
refusal, and the shipment orders."""
from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from app.exceptions import Conflict, FormInvalid, NotFound, PermissionDenied, SignatureRejected
from app.services.lots import ledger, stock
from app.services.workflow import plant_time
from app.services.workflow.instances import WORKER_ROLES
from app.web.common import ui_lang

bp = Blueprint("stock", __name__, url_prefix="/stock")
SHIP_FIELDS = ("product", "customer", "quantity", "shipped_on", "warehouse", "document_no")


@bp.app_template_global()
def may_start_scrap() -> bool:
    """Read-only accounts (auditors) see no Destroy button."""
    return current_user.is_authenticated and current_user.has_role(*WORKER_ROLES)


@bp.app_template_global()
def lot_movements(lot_id: int):
    """The lot page's Movements: a page of the lot's stock ledger, newest first (?moves=N), at one location when the
    page was opened from a stock row (?location=)."""
    return ledger.movements(lot_id=lot_id, location=request.args.get("location", "")[:120].strip(),
                            page=max(request.args.get("moves", 1, type=int) or 1, 1))


def _today():
    return plant_time.local_date(plant_time.utcnow(), plant_time.zone())


@bp.get("/")
@login_required
def index():
    """Stock by warehouse and location, filtered (warehouse, location, expiry, status, text)."""
    warehouse = request.args.get("warehouse")
    if warehouse == "__all":  # the filter's "all"; no argument is all too, and "" the locations of no warehouse
        warehouse = None
    expiry = request.args.get("expiry", "")
    status = request.args.get("status", "")
    if expiry not in ("", *stock.EXPIRY_FILTERS):
        expiry = ""
    if status not in ("", *stock.LOT_STATUSES):
        status = ""
    days = current_app.config["LOT_NEAR_EXPIRY_DAYS"]
    page = stock.list_stock(warehouse=warehouse, location=request.args.get("location", "")[:120], expiry=expiry,
                            status=status, q=request.args.get("q", "")[:200], today=_today(), days=days,
                            page=max(request.args.get("page", 1, type=int), 1))
    return render_template("stock/index.html", page=page, warehouses=stock.list_warehouses(), warehouse=warehouse,
                           expiry=expiry, status=status, statuses=stock.LOT_STATUSES, days=days, today=_today(),
                           q=request.args.get("q", ""), location=request.args.get("location", ""))


@bp.get("/warehouses/<int:warehouse_id>")
@login_required
def warehouse(warehouse_id: int):
    try:
        found, locations = stock.warehouse_locations(warehouse_id)
    except NotFound:
        abort(404)
    return render_template("stock/warehouse.html", warehouse=found, locations=locations)


@bp.route("/ship", methods=["GET", "POST"])
@login_required
def ship():
    """Propose lots first-expiry-first-out, then ship (optionally overriding shelf-life refusals, QA-signed)."""
    lang = ui_lang()
    values = {name: (request.form.get(name) or request.args.get(name) or "").strip() for name in SHIP_FIELDS}
    overrides = request.form.getlist("overrides")
    errors: dict[str, list[str]] = {}
    message, proposal, status = "", None, 200
    if request.method == "POST":
        try:
            if request.form.get("action") == "ship":
                order = stock.ship(values, current_user, overrides=overrides, reason=request.form.get("reason"),
                                   password=request.form.get("password") or None, lang=lang)
                return render_template("stock/order.html", order=order, shipped=True), 201
            proposal = stock.propose(values, lang, overrides)
        except FormInvalid as invalid:
            errors, message, status = invalid.errors, invalid.message, 422
        except (Conflict, PermissionDenied, SignatureRejected) as refused:
            message, status = refused.message, refused.status
        if proposal is None and not errors.get("product") and not errors.get("customer") and values["product"]:
            try:
                proposal = stock.propose(values, lang, overrides)
            except FormInvalid:
                proposal = None
    return render_template("stock/ship.html", values=values, errors=errors, message=message, proposal=proposal,
                           overrides=overrides, may_override=stock.may_override(current_user), lang=lang,
                           reason=request.form.get("reason", ""), overridable=stock.OVERRIDABLE), status


@bp.post("/scrap")
@login_required
def scrap():
    """Start the scrap / destruction procedure for a lot's stock at a location (the request arrives filled in)."""
    lot_id = request.form.get("lot_id", type=int)
    location = (request.form.get("location") or "")[:120]
    back = request.form.get("next") or ""
    back = back if back.startswith("/") and not back.startswith("//") else url_for("stock.index")
    if not lot_id or not location:
        abort(400)
    try:
        instance = stock.start_scrap(lot_id, location, current_user)
    except (Conflict, NotFound, PermissionDenied) as err:
        flash(err.message, "warning")
        return redirect(back)
    flash(_("Scrap / destruction started: check the request and send it for approval."), "success")
    first = next((t for t in instance.tasks if t.state == "ready"), None)
    return redirect(url_for("inbox.task", task_id=first.id) if first else
                    url_for("instances.detail", instance_id=instance.id))


@bp.get("/orders")
@login_required
def orders():
    return render_template("stock/orders.html", page=stock.list_orders(max(request.args.get("page", 1, type=int), 1)))


@bp.get("/orders/<int:order_id>")
@login_required
def order(order_id: int):
    try:
        found = stock.get_order(order_id)
    except NotFound:
        abort(404)
    return render_template("stock/order.html", order=found, shipped=False)

"""Administration: incidents waiting for a retry, the e-mail outbox and the holiday calendars."""
from __future__ import annotations

from functools import wraps

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from app.edge import whole_number
from app.exceptions import FormInvalid, PermissionDenied, QualiflowError
from app.services.workflow import calendars, instances, notifications

bp = Blueprint("admin", __name__, url_prefix="/admin")


def admin_required(view):
    @wraps(view)
    @login_required
    def wrapper(*args, **kwargs):
        if not current_user.has_role("admin"):
            raise PermissionDenied("Administrators only.")
        return view(*args, **kwargs)

    return wrapper


@bp.get("/incidents")
@admin_required
def incidents():
    page = instances.list_incidents(page=request.args.get("page", 1, type=int),
                                    per_page=current_app.config["PAGE_SIZE"])
    return render_template("admin/incidents.html", page=page)


@bp.post("/incidents/check")
@admin_required
def check_instances():
    checked, stalled = instances.check_running(current_user)
    if stalled:
        flash(_("%(stalled)d of %(checked)d running instances had stalled; each is now listed as an incident.",
                stalled=len(stalled), checked=checked), "warning")
    else:
        flash(_("Checked %(checked)d running instances: none has stalled.", checked=checked), "success")
    return redirect(url_for("admin.incidents"))


@bp.get("/outbox")
@admin_required
def outbox():
    status = request.args.get("status") if request.args.get("status") in ("queued", "sent", "failed") else None
    page = notifications.list_outbox(status, page=request.args.get("page", 1, type=int),
                                     per_page=current_app.config["PAGE_SIZE"])
    return render_template("admin/outbox.html", page=page, status=status)


@bp.post("/outbox/resend")
@admin_required
def resend_outbox():
    """Send a failed (or waiting) message again, or every failed one, on the sender's next pass."""
    all_failed = request.form.get("all_failed") == "1"
    ids = [number for number in map(whole_number, request.form.getlist("id")) if number is not None]
    try:
        queued = notifications.resend(ids, all_failed=all_failed, actor=current_user)
    except QualiflowError as err:
        flash(err.message, "danger")
    else:
        flash(_("%(count)d message(s) queued again; the outbox sends them within a minute.", count=len(queued)),
              "success")
    return redirect(url_for("admin.outbox", status=request.form.get("status") or None))


@bp.get("/calendars")
@admin_required
def calendar_days():
    jurisdiction = request.args.get("jurisdiction", "").upper() or None
    year = request.args.get("year", type=int)
    return render_template("admin/calendars.html", days=calendars.list_days(jurisdiction, year),
                           jurisdictions=calendars.jurisdictions(), jurisdiction=jurisdiction, year=year)


@bp.post("/calendars")
@admin_required
def set_calendar_day():
    form = request.form
    try:
        calendars.set_day(current_user, form.get("jurisdiction", ""), form.get("day", ""), form.get("kind", ""),
                          form.get("name", ""))
    except FormInvalid as err:
        flash(_("The day was not saved: %(errors)s",
                errors="; ".join(f"{field}: {', '.join(problems)}" for field, problems in err.errors.items())),
              "danger")
    else:
        flash(_("%(day)s saved in the %(jurisdiction)s calendar.", day=form.get("day"),
                jurisdiction=form.get("jurisdiction", "").upper()), "success")
    return redirect(url_for("admin.calendar_days", jurisdiction=form.get("jurisdiction", "").upper() or None))


@bp.post("/calendars/remove")
@admin_required
def remove_calendar_day():
    jurisdiction = request.form.get("jurisdiction", "")
    calendars.remove_day(current_user, jurisdiction, request.form.get("day", ""))
    flash(_("%(day)s is an ordinary day again in the %(jurisdiction)s calendar.", day=request.form.get("day"),
            jurisdiction=jurisdiction.upper()), "success")
    return redirect(url_for("admin.calendar_days", jurisdiction=jurisdiction.upper() or None))

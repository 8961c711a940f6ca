"""Administration: incidents waiting for a retry and the e-mail outbox."""
from __future__ import annotations

from functools import wraps

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from app.exceptions import PermissionDenied
from app.services import instances, notifications

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

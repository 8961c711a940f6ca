"""Awaiting my approval (/approvals): the pending procedure versions a QA approver may approve and the e-signature
steps waiting on the signed-in user, each linking to where it is approved; the inbox shows their count."""
from __future__ import annotations

from flask import Blueprint, render_template
from flask_login import current_user, login_required

from app.services.workflow import approvals, procedure_control

bp = Blueprint("approvals", __name__, url_prefix="/approvals")


@bp.app_template_global()
def awaiting_approval_count() -> int:
    """How many things await the signed-in user's approval (the inbox's badge); 0 when signed out."""
    return approvals.count(current_user) if current_user.is_authenticated else 0


@bp.get("/")
@login_required
def index():
    return render_template("approvals/index.html", awaiting=approvals.awaiting(current_user),
                           may_approve=procedure_control.may_approve(current_user),
                           approver_group=procedure_control.approver_group())

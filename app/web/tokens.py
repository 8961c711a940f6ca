"""API tokens page: every signed-in user issues, lists and revokes their own tokens; admins see and revoke
everyone's. A new token is shown once, on the page that issued it."""
from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from app.exceptions import QualiflowError
from app.services import users

bp = Blueprint("tokens", __name__, url_prefix="/account/tokens")


def _page(status: int = 200, new_token: str | None = None, error: str | None = None):
    everyone = current_user.has_role("admin")
    return render_template("auth/tokens.html", tokens=users.list_tokens(current_user, everyone=everyone),
                           everyone=everyone, new_token=new_token, error=error,
                           max_days=current_app.config["API_TOKEN_DAYS"]), status


@bp.get("/")
@login_required
def index():
    return _page()


@bp.post("/")
@login_required
def issue():
    try:
        token = users.issue_own_token(current_user, name=request.form.get("name", ""),
                                      days=request.form.get("days", ""))
    except QualiflowError as err:
        return _page(err.status, error=err.message)
    # Shown once: only its hash is kept. The page is never cached (Cache-Control: no-store on every page).
    return _page(201, new_token=token)


@bp.post("/<int:token_id>/revoke")
@login_required
def revoke(token_id: int):
    users.revoke_token(token_id, current_user)
    flash(_("The token is revoked: it no longer opens the API."), "success")
    return redirect(url_for("tokens.index"))

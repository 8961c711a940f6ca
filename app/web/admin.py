"""Administration: incidents waiting for a retry, the e-mail outbox, the holiday calendars and the users."""
from __future__ import annotations

from functools import wraps

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from app.edge import whole_number
from app.exceptions import FormInvalid, PermissionDenied, QualiflowError
from app.services import users
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


# --- users ---------------------------------------------------------------------------------------------------------

def _account_fields() -> dict:
    form = request.form
    return {"full_name": form.get("full_name", ""), "email": form.get("email", ""),
            "language": form.get("language", ""), "roles": form.getlist("roles"), "groups": form.getlist("groups")}


@bp.get("/users")
@admin_required
def user_list():
    q = request.args.get("q", "").strip()[:100]
    page = users.search_users(q, page=max(request.args.get("page", 1, type=int), 1),
                              per_page=current_app.config["PAGE_SIZE"])
    return render_template("admin/users.html", page=page, q=q, roles=users.ROLES)


def _new_user_page(errors: dict | None = None, message: str | None = None, status: int = 200):
    return render_template("admin/user_new.html", groups=users.list_groups(), roles=users.ROLES,
                           languages=users.LANGUAGES, errors=errors or {}, message=message,
                           form=request.form, min_length=current_app.config["PASSWORD_MIN_LENGTH"]), status


@bp.get("/users/new")
@admin_required
def user_new():
    return _new_user_page()


@bp.post("/users/new")
@admin_required
def user_create():
    try:
        user = users.create_user(current_user, username=request.form.get("username", ""),
                                 password=request.form.get("password", ""), **_account_fields())
    except FormInvalid as err:
        return _new_user_page(err.errors, err.message, err.status)
    flash(_("User %(name)s created. Give them their initial password through a trusted channel; they choose their "
            "own at the first sign-in.", name=user.username), "success")
    return redirect(url_for("admin.user_detail", user_id=user.id))


def _user_page(user_id: int, *, failed: str = "", errors: dict | None = None, message: str | None = None,
               status: int = 200):
    """Render a user's page; after a refusal, `failed` names the form that was refused and keeps its input."""
    user = users.get_user(user_id)
    return render_template("admin/user.html", user=user, groups=users.list_groups(), roles=users.ROLES,
                           languages=users.LANGUAGES, tokens=users.user_tokens(current_user, user_id),
                           sessions=users.open_sessions(user_id), locked=users.locked_out(user), failed=failed,
                           errors=errors or {}, message=message, form=request.form,
                           min_length=current_app.config["PASSWORD_MIN_LENGTH"]), status


def _user_refused(user_id: int, form: str, err: QualiflowError):
    if err.status >= 500 or err.status == 404:
        raise err
    return _user_page(user_id, failed=form, message=err.message, status=err.status,
                      errors=err.errors if isinstance(err, FormInvalid) else None)


@bp.get("/users/<int:user_id>")
@admin_required
def user_detail(user_id: int):
    return _user_page(user_id)


@bp.post("/users/<int:user_id>")
@admin_required
def user_update(user_id: int):
    try:
        users.update_user(current_user, user_id, **_account_fields())
    except QualiflowError as err:
        return _user_refused(user_id, "edit", err)
    flash(_("The user's details were saved."), "success")
    return redirect(url_for("admin.user_detail", user_id=user_id))


@bp.post("/users/<int:user_id>/deactivate")
@admin_required
def user_deactivate(user_id: int):
    try:
        users.set_active(current_user, user_id, False, reason=request.form.get("reason", ""))
    except QualiflowError as err:
        return _user_refused(user_id, "active", err)
    flash(_("The account is deactivated: it cannot sign in, its sessions ended and its API tokens stopped "
            "working."), "success")
    return redirect(url_for("admin.user_detail", user_id=user_id))


@bp.post("/users/<int:user_id>/reactivate")
@admin_required
def user_reactivate(user_id: int):
    try:
        users.set_active(current_user, user_id, True, reason=request.form.get("reason", ""))
    except QualiflowError as err:
        return _user_refused(user_id, "active", err)
    flash(_("The account is active again; its API tokens that are not revoked or expired work again."), "success")
    return redirect(url_for("admin.user_detail", user_id=user_id))


@bp.post("/users/<int:user_id>/password")
@admin_required
def user_password(user_id: int):
    try:
        users.reset_password(current_user, user_id, request.form.get("password", ""))
    except QualiflowError as err:
        return _user_refused(user_id, "password", err)
    flash(_("The password was reset and the user's sessions ended. Give them the new password through a "
            "trusted channel; they choose their own at the next sign-in."), "success")
    return redirect(url_for("admin.user_detail", user_id=user_id))


@bp.post("/users/<int:user_id>/tokens/<int:token_id>/revoke")
@admin_required
def user_token_revoke(user_id: int, token_id: int):
    users.revoke_token(token_id, current_user)
    flash(_("The token is revoked: it no longer opens the API."), "success")
    return redirect(url_for("admin.user_detail", user_id=user_id, _anchor="tokens-h"))

"""Sign in and out, with lockout after repeated failures, a rate limit per address and server-side sessions;
language choice."""
from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from app import security
from app.exceptions import FormInvalid
from app.extensions import login_manager
from app.services import users

bp = Blueprint("auth", __name__)


class LoginForm(FlaskForm):
    username = StringField("username", validators=[DataRequired(), Length(max=80)])
    password = PasswordField("password", validators=[DataRequired(), Length(max=200)])


@login_manager.user_loader
def load_user(user_id: str) -> users.User | None:
    # The cookie names the user and its server-side session: signed out (or too old), it signs nobody in.
    return users.session_user(int(user_id), session.get("sid")) if user_id.isdigit() else None


def _safe_next(target: str | None) -> str:
    if target and not urlsplit(target).netloc and target.startswith("/"):
        return target
    return url_for("inbox.index")


@bp.route("/login", methods=["GET", "POST"])
@security.failed_sign_ins()
def login():
    if current_user.is_authenticated:
        return redirect(url_for("inbox.index"))
    form = LoginForm()
    error = None
    if form.validate_on_submit():
        config = current_app.config
        try:
            user = users.authenticate(form.username.data, form.password.data,
                                      max_failures=config["LOGIN_MAX_FAILURES"],
                                      lockout=timedelta(minutes=config["LOGIN_LOCKOUT_MINUTES"]))
        except users.AccountLocked:
            error = _("Too many failed attempts: the account is locked. Try again later or ask an administrator.")
        except users.LoginFailed:
            error = _("Wrong user name or password.")
        else:
            users.end_session(session.get("sid"))  # a session this browser still had
            session.clear()
            login_user(user)
            session["sid"] = users.start_session(user)
            return redirect(_safe_next(request.args.get("next")))
    elif request.method == "POST":
        error = _("Enter your user name and password.")
    status = 401 if error else 200
    return render_template("auth/login.html", form=form, error=error), status


@bp.post("/logout")
@login_required
def logout():
    users.end_session(session.get("sid"))
    logout_user()
    session.clear()
    flash(_("You are signed out."), "info")
    return redirect(url_for("auth.login"))


@bp.get("/language/<code>")
def language(code: str):
    if code in ("en", "zh_CN"):
        session["lang"] = code
    return redirect(_safe_next(request.args.get("next")))


# --- changing one's own password ------------------------------------------------------------------------------------

# What a user whose password an administrator set may still open before choosing their own.
OPEN_WHILE_CHANGE_REQUIRED = {"auth.change_password", "auth.change_password_submit", "auth.logout", "auth.language",
                              "auth.login", "static"}


@bp.before_app_request
def require_own_password():
    """After an administrator set the password (a new account, a reset), every page leads to the change page
    until the user has chosen their own. The API answers as before: its tokens are issued by the user."""
    if (request.endpoint in OPEN_WHILE_CHANGE_REQUIRED or request.path.startswith("/api/")
            or not current_user.is_authenticated or not getattr(current_user, "password_change_required", False)):
        return None
    return redirect(url_for("auth.change_password", next=request.full_path if request.method == "GET" else None),
                    303)


def _password_page(errors: dict | None = None, message: str | None = None, status: int = 200):
    return render_template("auth/password.html", errors=errors or {}, message=message,
                           required=current_user.password_change_required,
                           min_length=current_app.config["PASSWORD_MIN_LENGTH"]), status


@bp.get("/account/password")
@login_required
def change_password():
    return _password_page()


@bp.post("/account/password")
@login_required
def change_password_submit():
    form = request.form
    try:
        users.change_own_password(current_user, current=form.get("current", ""), new=form.get("new", ""),
                                  confirm=form.get("confirm", ""), session_key=session.get("sid"))
    except FormInvalid as err:
        return _password_page(err.errors, err.message, err.status)
    flash(_("Your password is changed. Your other sessions, if any, are signed out."), "success")
    return redirect(_safe_next(request.args.get("next")))

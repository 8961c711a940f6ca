"""Browser pages, one blueprint per area: auth, inbox, instances, processes, lots (and trace), recalls (and the
public acknowledgment page), supplier returns (and the public SCAR response page), admin."""
from __future__ import annotations

from datetime import datetime

from flask import Flask, g, jsonify, redirect, request, session
from flask.sessions import SecureCookieSessionInterface
from flask_babel import gettext as _
from flask_login import current_user
from flask_login.utils import login_url

from app.edge import is_api_request
from app.extensions import login_manager
from app.services import users
from app.services.workflow import deadlines, plant_time
from app.services.workflow.instances import WORKER_ROLES
from app.web.common import as_datetime, countdown, ui_lang


class PageSessionInterface(SecureCookieSessionInterface):
    """Signed-cookie sessions whose idle timeout is renewed by what the user does, not by background reads.

    A page's own background GETs (fetch: the diagram's states, an import's progress) answer without the
    session cookie unless they changed the session. Otherwise such a read still in flight when the user signs
    out would arrive after the sign-out and put the old, signed-in cookie back. The REST API (/api/v1, bearer
    tokens) answers without one at all.
    """

    def should_set_cookie(self, app: Flask, session) -> bool:
        if is_api_request():  # bearer tokens, never a session: an API client gets no cookie to keep or leak
            return False
        if g.get("signed_out_background"):  # never overwrite the cookie the sign-out (or a new sign-in) just set
            return False
        if (not session.modified and request.method in ("GET", "HEAD")
                and request.headers.get("Sec-Fetch-Dest") == "empty"):
            return False
        return super().should_set_cookie(app, session)


def register_web(app: Flask) -> None:
    from app.web import (
        admin,
        audit_workspace,
        auth,
        conditions,
        dashboard,
        display,
        inbox,
        instances,
        lots,
        processes,
        recalls,
        stock,
        studio,
        studio_api,
        studio_forms,
        supplier_returns,
        tokens,
    )

    for module in (auth, inbox, instances, processes, lots, conditions, stock, recalls, supplier_returns, admin,
                   studio, studio_api, studio_forms, tokens):
        app.register_blueprint(module.bp)
    app.register_blueprint(lots.trace_bp)
    app.register_blueprint(recalls.ack_bp)
    app.register_blueprint(supplier_returns.scar_bp)
    app.register_blueprint(audit_workspace.bp)
    from app.web import procedure_control  # controlled procedures: version history, review, approval, compare
    app.register_blueprint(procedure_control.bp)
    app.register_blueprint(dashboard.bp)
    from app.web import sterilization  # sterilization batch records: list, record, BI result, signed decision
    app.register_blueprint(sterilization.bp)
    from app.web import suppliers  # supplier quality: the approved-supplier list, scores, reviews
    app.register_blueprint(suppliers.bp)
    from app.web import approvals  # awaiting my approval: pending procedure versions and e-signature steps
    app.register_blueprint(approvals.bp)
    login_manager.login_view = "auth.login"
    login_manager.login_message = None
    login_manager.session_protection = "strong"

    @login_manager.unauthorized_handler
    def signed_out():
        """A page's own background request (fetch: a diagram, a job's progress) gets 401 in JSON once the session
        ended; only a page the browser navigates to is sent to the sign-in page. Sent there, a fetch still in
        flight at sign-out would render the sign-in page unseen - taking its "You are signed out." with it."""
        if request.headers.get("Sec-Fetch-Dest") == "empty" or request.accept_mimetypes.best == "application/json":
            g.signed_out_background = True
            return jsonify(error="Unauthorized", message=_("Your session has ended: sign in again.")), 401
        return redirect(login_url(login_manager.login_view, request.url))

    app.session_interface = PageSessionInterface()

    @app.before_request
    def idle_timeout() -> None:
        # A permanent session expires after PERMANENT_SESSION_LIFETIME without a request (idle timeout).
        # Set once: assigning it on every request would mark every session modified. The API has no session.
        if not session.permanent and not is_api_request():
            session.permanent = True

    @app.context_processor
    def page_globals() -> dict:
        return {"now": plant_time.utcnow(), "ui_lang": ui_lang(), "current_path": request.path}

    @app.template_filter("when")
    def when(value: datetime | None) -> str:
        """Show a stored UTC time on the plant's clock, with the zone: 2026-12-07 17:00 CST."""
        return plant_time.format_moment(value, plant_time.zone()) if value else "—"

    app.add_template_filter(as_datetime, "as_datetime")

    @app.template_filter("utc_iso")
    def utc_iso(value: datetime | str) -> str:
        """Return a UTC time as JavaScript's Date.parse reads it everywhere: 2026-11-23T09:00:00Z."""
        return as_datetime(value).strftime("%Y-%m-%dT%H:%M:%SZ")

    @app.template_filter("day")
    def day(value: datetime | None) -> str:
        """Show the plant's calendar date of a time (a date stays as it is)."""
        if not value:
            return "—"
        if isinstance(value, datetime) and value.tzinfo is not None:
            return plant_time.local_date(value, plant_time.zone()).isoformat()
        return value.strftime("%Y-%m-%d")

    @app.template_global()
    def group_label(name: str | None) -> str:
        if "group_labels" not in g:  # one query per page, not per row
            g.group_labels = users.group_labels()
        labels = g.group_labels
        label = labels.get(name or "")
        if label is None:
            return name or "—"
        return label[1] if ui_lang() == "zh-CN" else label[0]

    @app.template_global()
    def task_name(task) -> str:
        """Return the step's name in the page language when the diagram gives one."""
        return task.name_zh if ui_lang() == "zh-CN" and task.name_zh else task.name

    app.add_template_global(countdown)
    app.add_template_global(display.action_label, "action_label")
    app.add_template_global(display.meaning_label, "meaning_label")
    app.add_template_global(display.role_label, "role_label")
    app.add_template_global(display.release_check_label, "release_check_label")
    app.add_template_filter(display.json_text, "json_text")

    @app.template_global()
    def deadline_label(deadline: deadlines.Deadline) -> str:
        return deadline.label_zh if ui_lang() == "zh-CN" and deadline.label_zh else deadline.label

    @app.template_global()
    def is_worker() -> bool:
        """Say whether the user may change records (auditors read only)."""
        return current_user.is_authenticated and current_user.has_role(*WORKER_ROLES)

    @app.template_global()
    def is_admin() -> bool:
        return current_user.is_authenticated and current_user.has_role("admin")

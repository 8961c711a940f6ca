"""Browser pages, one blueprint per area: auth, inbox, instances, processes, lots (and trace), recalls (and the
public acknowledgment page), supplier returns (and the public SCAR response page), admin."""
from __future__ import annotations

from datetime import datetime

from flask import Flask, g, request, session
from flask.sessions import SecureCookieSessionInterface
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_login import current_user

from app.extensions import login_manager
from app.models import Deadline
from app.models.types import utcnow
from app.services import plant_time, users
from app.services.instances import WORKER_ROLES


class PageSessionInterface(SecureCookieSessionInterface):
    """Signed-cookie sessions whose idle timeout is renewed by what the user does, not by background reads.

    A page's own background GETs (fetch: the diagram's states, an import's progress) answer without the
    session cookie unless they changed the session. Otherwise such a read still in flight when the user signs
    out would arrive after the sign-out and put the old, signed-in cookie back.
    """

    def should_set_cookie(self, app: Flask, session) -> bool:
        if (not session.modified and request.method in ("GET", "HEAD")
                and request.headers.get("Sec-Fetch-Dest") == "empty"):
            return False
        return super().should_set_cookie(app, session)


def ui_lang() -> str:
    """Return the page language as forms and documents spell it ("en" or "zh-CN")."""
    return "zh-CN" if str(get_locale()).startswith("zh") else "en"


def as_datetime(value: datetime | str) -> datetime:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def time_span(seconds: float) -> str:
    """Say a duration in its two largest units, whole minutes: "2 d 3 h", "5 h 10 min", "7 min"."""
    minutes = int(abs(seconds) // 60)
    days, hours, minutes = minutes // 1440, minutes % 1440 // 60, minutes % 60
    if days:
        parts = [_("%(n)s d", n=days)] + ([_("%(n)s h", n=hours)] if hours else [])
    elif hours:
        parts = [_("%(n)s h", n=hours)] + ([_("%(n)s min", n=minutes)] if minutes else [])
    else:
        parts = [_("%(n)s min", n=minutes)]
    return " ".join(parts)


def countdown(due: datetime | str, now: datetime) -> str:
    """Say how long until a due time, or how long it is overdue ("in 2 d 3 h", "5 h overdue")."""
    seconds = (as_datetime(due) - now).total_seconds()
    span = time_span(seconds)
    return _("in %(time)s", time=span) if seconds >= 0 else _("%(time)s overdue", time=span)


def register_web(app: Flask) -> None:
    from app.web import (
        admin,
        auth,
        display,
        inbox,
        instances,
        lots,
        processes,
        recalls,
        studio,
        studio_api,
        studio_forms,
        supplier_returns,
    )

    for module in (auth, inbox, instances, processes, lots, recalls, supplier_returns, admin, studio,
                   studio_api, studio_forms):
        app.register_blueprint(module.bp)
    app.register_blueprint(lots.trace_bp)
    app.register_blueprint(recalls.ack_bp)
    app.register_blueprint(supplier_returns.scar_bp)
    login_manager.login_view = "auth.login"
    login_manager.login_message = None
    login_manager.session_protection = "strong"

    app.session_interface = PageSessionInterface()

    @app.before_request
    def idle_timeout() -> None:
        # A permanent session expires after PERMANENT_SESSION_LIFETIME without a request (idle timeout).
        # Set once: assigning it on every request would mark every session modified.
        if not session.permanent:
            session.permanent = True

    @app.context_processor
    def page_globals() -> dict:
        return {"now": utcnow(), "ui_lang": ui_lang(), "current_path": request.path}

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
    app.add_template_global(display.release_check_label, "release_check_label")
    app.add_template_filter(display.json_text, "json_text")

    @app.template_global()
    def deadline_label(deadline: Deadline) -> str:
        return deadline.label_zh if ui_lang() == "zh-CN" and deadline.label_zh else deadline.label

    @app.template_global()
    def is_worker() -> bool:
        """Say whether the user may change records (auditors read only)."""
        return current_user.is_authenticated and current_user.has_role(*WORKER_ROLES)

    @app.template_global()
    def is_admin() -> bool:
        return current_user.is_authenticated and current_user.has_role("admin")

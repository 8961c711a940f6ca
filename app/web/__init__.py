"""Browser pages, one blueprint per area: auth, inbox, instances, processes, lots (and trace), admin."""
from __future__ import annotations

from datetime import datetime

from flask import Flask, g, request, session
from flask_babel import get_locale
from flask_login import current_user

from app.extensions import login_manager
from app.models.types import utcnow
from app.services import users


def ui_lang() -> str:
    """Return the page language as forms and documents spell it ("en" or "zh-CN")."""
    return "zh-CN" if str(get_locale()).startswith("zh") else "en"


def register_web(app: Flask) -> None:
    from app.web import admin, auth, inbox, instances, lots, processes

    for module in (auth, inbox, instances, processes, lots, admin):
        app.register_blueprint(module.bp)
    app.register_blueprint(lots.trace_bp)
    login_manager.login_view = "auth.login"
    login_manager.login_message = None
    login_manager.session_protection = "strong"

    @app.before_request
    def idle_timeout() -> None:
        # A permanent session expires after PERMANENT_SESSION_LIFETIME without a request (idle timeout).
        session.permanent = True

    @app.context_processor
    def page_globals() -> dict:
        return {"now": utcnow(), "ui_lang": ui_lang(), "current_path": request.path}

    @app.template_filter("when")
    def when(value: datetime | None) -> str:
        return value.strftime("%Y-%m-%d %H:%M UTC") if value else "—"

    @app.template_filter("day")
    def day(value: datetime | None) -> str:
        return value.strftime("%Y-%m-%d") if value else "—"

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

    @app.template_global()
    def is_admin() -> bool:
        return current_user.is_authenticated and current_user.has_role("admin")

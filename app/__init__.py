"""Qualiflow: BPMN-driven quality and compliance procedures with evidence, signatures and an audit trail."""
from __future__ import annotations

import gc
import os

from flask import Flask, has_request_context, request, session
from flask_login import current_user
from sqlalchemy import event

from app.edge import is_api_request
from config import CONFIGS, DEV_SECRET_KEY


def _sqlite_pragmas(dbapi_connection, connection_record) -> None:
    dbapi_connection.isolation_level = None  # let the begin hook below issue BEGIN itself
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin(connection) -> None:
    # BEGIN IMMEDIATE takes SQLite's write lock up front, so two use cases never both read an old
    # snapshot and then fail to write; PostgreSQL gets row locks (SELECT ... FOR UPDATE) instead.
    # Page and API reads (GET) only read: a deferred BEGIN reads a WAL snapshot without waiting, so
    # pages (an import's progress bar) stay live while a long import holds the write lock.
    if has_request_context() and request.method in ("GET", "HEAD"):
        connection.exec_driver_sql("BEGIN")
    else:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def freeze_start_up_objects() -> None:
    """Keep what start-up built (modules, the app, SQLAlchemy's mappers: ~190,000 objects) out of the
    cyclic garbage collector's full collections, which otherwise walk all of it every few requests (~0.5 ms of CPU
    per request on average, measured with bench/engine.py). Called once a web worker has its app (wsgi.py); the
    objects stay alive for the worker's life anyway."""
    gc.collect()
    gc.freeze()


def select_locale() -> str | None:
    """Pick the UI language: ?lang=, then the session, then the user's setting, then the browser."""
    if not has_request_context():
        return None  # the command line and the scheduler: the default (en) unless they force one
    chosen = request.args.get("lang")
    if chosen in ("en", "zh_CN", "zh-CN"):
        if is_api_request():  # the API keeps no session: ?lang= is for this request only
            return chosen.replace("-", "_")
        session["lang"] = chosen.replace("-", "_")
    if session.get("lang"):
        return session["lang"]
    if current_user and getattr(current_user, "is_authenticated", False):
        return current_user.language.replace("-", "_")
    best = request.accept_languages.best_match(["en", "zh_CN", "zh"])
    return "zh_CN" if best and best.startswith("zh") else "en"


def register_extensions() -> None:
    """Fill the platform's registries: service-task handlers (handlers/) and the procedures' form checks."""
    import handlers  # noqa: F401 - registers the service-task handlers
    from app.services import procedures
    from app.services.lots import sterilization  # noqa: F401 - registers the sterilization batch import kind
    procedures.register_all()


def create_app(config_name: str | None = None, overrides: dict | None = None) -> Flask:
    """Build the application; nothing runs at import time."""
    from app import cli, errors, security
    from app.api import register_api
    from app.extensions import babel, csrf, db, login_manager, migrate
    from app.services.evidence import audit
    from app.web import register_web

    app = Flask(__name__, instance_relative_config=False)
    config_name = config_name or os.environ.get("QUALIFLOW_CONFIG", "development")
    app.config.from_object(CONFIGS[config_name])
    app.config.update(overrides or {})
    secret = app.config.get("SECRET_KEY")
    if config_name == "production" and (not secret or not str(secret).strip() or secret == DEV_SECRET_KEY):
        raise RuntimeError("Set SECRET_KEY in the environment for production (a long random value, not empty).")
    if config_name == "production" and not app.config["AUDIT_CHECKPOINT_KEY"]:
        raise RuntimeError("Set AUDIT_CHECKPOINT_KEY in the environment for production (it signs the audit "
                           "trail's checkpoints; keep it out of the database).")
    from app.services.users import token_days_setting
    try:
        app.config["API_TOKEN_DAYS"] = token_days_setting(app.config["API_TOKEN_DAYS"])
    except ValueError as err:
        raise RuntimeError(str(err)) from None
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///"):
        os.makedirs(os.path.dirname(app.config["SQLALCHEMY_DATABASE_URI"][len("sqlite:///"):]) or ".", exist_ok=True)

    db.init_app(app)
    audit.watch_sessions()
    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            event.listen(db.engine, "connect", _sqlite_pragmas)
            event.listen(db.engine, "begin", _sqlite_begin)
    migrate.init_app(app, db, directory=os.path.join(os.path.dirname(os.path.dirname(__file__)), "migrations"),
                     render_as_batch=True)
    login_manager.init_app(app)
    csrf.init_app(app)
    babel.init_app(app, locale_selector=select_locale,
                   default_translation_directories=os.path.join(os.path.dirname(__file__), "translations"))
    register_extensions()
    from app import edge
    edge.init_app(app)  # before any route: the bounded `int` converter and the checks of what requests carry
    register_web(app)
    register_api(app)
    security.init_app(app)
    errors.register(app)
    cli.register(app)
    return app

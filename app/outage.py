"""The database cannot be reached: requests answer 503 at once (a page or the API's JSON error, with Retry-After),
nothing is half-saved (each use case is one transaction, rolled back), and the scheduler skips the tick."""
from __future__ import annotations

import sqlite3

from flask import Flask, g, jsonify, render_template, request, session
from flask_babel import force_locale
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

RETRY_AFTER_SECONDS = 30
MESSAGE = "The database cannot be reached just now; nothing was saved. Try again in a minute."
# SQLite's OperationalError also says "no such table" (a bug, not an outage): only these mean the file is unusable.
_SQLITE_OUTAGE = ("unable to open database", "database is locked", "disk i/o error", "readonly database",
                  "database or disk is full", "database disk image is malformed")


def database_unavailable(err: BaseException) -> bool:
    """Tell whether err says the database cannot be used now (down, unreachable, restarting, connection lost,
    pool exhausted, SQLite file unusable) rather than that a statement is wrong."""
    if isinstance(err, (InterfaceError, PoolTimeout)):
        return True
    if not isinstance(err, OperationalError):
        return False
    if isinstance(err, DBAPIError) and err.connection_invalidated:
        return True
    if isinstance(err.orig, sqlite3.OperationalError):
        text = str(err.orig).lower()
        return any(part in text for part in _SQLITE_OUTAGE)
    return True  # PostgreSQL (psycopg): connection refused or lost, shutting down, timeouts


def _page_lang() -> str:
    """The page language without asking the database for the user's setting."""
    chosen = request.args.get("lang") or session.get("lang")
    if chosen in ("en", "zh_CN", "zh-CN"):
        return chosen.replace("-", "_")
    best = request.accept_languages.best_match(["en", "zh_CN", "zh"])
    return "zh_CN" if best and best.startswith("zh") else "en"


def register(app: Flask, wants_json) -> None:
    @app.errorhandler(OperationalError)
    @app.errorhandler(InterfaceError)
    @app.errorhandler(PoolTimeout)
    def database_error(err: Exception):
        if not database_unavailable(err):
            raise err  # a wrong statement: the usual 500
        from app.extensions import db, login_manager
        app.logger.error("database unavailable: %s", err)
        try:
            db.session.rollback()
        except Exception:  # noqa: BLE001 - the connection is gone; the pool replaces it
            pass
        g._login_user = login_manager.anonymous_user()  # nothing more asks the database for the user
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
        if wants_json():
            return jsonify({"error": "Service Unavailable", "message": MESSAGE}), 503, headers
        with force_locale(_page_lang()):
            return render_template("unavailable.html"), 503, headers

"""The database cannot be reached: every request answers 503 at once (a page, or the API's JSON error, with
Retry-After), nothing is half-saved, and the scheduler skips its ticks until the database is back, then goes on
by itself."""
from __future__ import annotations

import logging
import socket
import sqlite3
import time

from sqlalchemy import event
from sqlalchemy.exc import OperationalError

from app import create_app
from app.extensions import db
from app.models import AuditEvent, ProcessInstance, Task
from app.scheduler import _job
from app.services import demo, users
from tests.conftest import _reset_database


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_unreachable_database_answers_503_at_once(tmp_path):
    app = create_app("testing", {"SQLALCHEMY_DATABASE_URI": f"postgresql+psycopg://qualiflow@127.0.0.1:"
                                                            f"{_closed_port()}/qualiflow",
                                 "AUDIT_CHECKPOINT_DIR": tmp_path})
    client = app.test_client()
    started = time.monotonic()

    api = client.get("/api/v1/tasks", headers={"Authorization": "Bearer some-token"})
    page = client.post("/login?lang=zh_CN", data={"username": "qa", "password": demo.DEMO_PASSWORD})

    assert time.monotonic() - started < 5
    assert (api.status_code, api.headers["Retry-After"]) == (503, "30")
    assert api.get_json() == {"error": "Service Unavailable", "message": "The database cannot be reached just now; "
                                                                       "nothing was saved. Try again in a minute."}
    assert (page.status_code, page.headers["Retry-After"]) == (503, "30")
    assert "暂时无法使用" in page.get_data(as_text=True)


def test_a_use_case_whose_commit_fails_leaves_nothing_and_the_next_request_works(app, client, seeded):
    token = users.issue_token("qa")
    before = db.session.scalar(db.select(db.func.count(AuditEvent.id)))
    db.session.rollback()

    def note_instance(conn, cursor, statement, *args) -> None:
        if statement.startswith("INSERT INTO process_instances"):
            conn.info["instance_written"] = True

    def drop_at_commit(conn) -> None:  # the database goes away as the use case commits
        if conn.info.pop("instance_written", False):
            raise OperationalError("COMMIT", None, sqlite3.OperationalError("disk I/O error"))

    event.listen(db.engine, "after_cursor_execute", note_instance)
    event.listen(db.engine, "commit", drop_at_commit)
    body = {"process": "capa", "title": "Burr on hub"}
    headers = {"Authorization": f"Bearer {token}"}
    try:
        response = client.post("/api/v1/instances", json=body, headers=headers)
    finally:
        event.remove(db.engine, "commit", drop_at_commit)
        event.remove(db.engine, "after_cursor_execute", note_instance)

    assert response.status_code == 503
    db.session.rollback()
    assert db.session.scalar(db.select(db.func.count(ProcessInstance.id))) == 0
    assert db.session.scalar(db.select(db.func.count(Task.id))) == 0
    assert db.session.scalar(db.select(db.func.count(AuditEvent.id))) == before
    assert client.post("/api/v1/instances", json=body, headers=headers).status_code == 201


def test_the_scheduler_skips_ticks_while_the_database_is_gone_and_recovers_by_itself(tmp_path, caplog):
    folder = tmp_path / "database"
    app = create_app("testing", {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder / 'q.sqlite'}",
                                 "AUDIT_CHECKPOINT_DIR": tmp_path / "checkpoints", "SMTP_PORT": 1})
    with app.app_context():
        _reset_database()
        db.engine.dispose()
    client = app.test_client()
    sign_in = {"username": "qa", "password": demo.DEMO_PASSWORD}
    folder.rename(tmp_path / "moved")  # the database is gone: no connection can open it
    caplog.set_level(logging.WARNING, logger="app.scheduler")

    for name in ("timers", "outbox", "expiry", "imports"):
        _job(app, name)  # no exception escapes: the scheduler thread lives on
    page = client.post("/login", data=sign_in)

    assert page.status_code == 503
    skipped = [r for r in caplog.records if r.name == "app.scheduler"]
    assert len(skipped) == 4 and all("the database cannot be reached" in r.getMessage() for r in skipped)
    assert all(r.levelno == logging.WARNING and not r.exc_info for r in skipped)

    (tmp_path / "moved").rename(folder)  # it is back
    caplog.clear()
    for name in ("timers", "outbox", "expiry", "imports"):
        _job(app, name)
    assert [r for r in caplog.records if r.name == "app.scheduler"] == []
    assert client.post("/login", data=sign_in).status_code == 401  # the database answers: no such user
    with app.app_context():
        db.engine.dispose()

"""Shared fixtures: a fresh app and database per test (SQLite file, or PostgreSQL via TEST_DATABASE_URL)."""
from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import flask_babel
import pytest
from argon2 import PasswordHasher
from flask import g, request_started
from sqlalchemy import text

from app import create_app
from app.extensions import db
from app.models.audit import (
    DROP_APPEND_ONLY_SQL,
    DROP_EVIDENCE_GUARDS_SQL,
    install_append_only,
    install_evidence_guards,
)
from app.services import demo, users

ROOT = Path(__file__).resolve().parent.parent
T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # a Monday


_postgres_schema_created = False  # this test process created the PostgreSQL schema: later tests truncate


def _reset_database() -> None:
    global _postgres_schema_created
    if db.engine.dialect.name == "postgresql" and _postgres_schema_created:
        # Emptying the tables is about twice as fast as dropping and creating the schema for every test.
        tables = ", ".join(f'"{table.name}"' for table in db.metadata.sorted_tables)
        with db.engine.begin() as connection:
            # The guards refuse TRUNCATE of the evidence, and a test may have dropped them (to tamper with
            # the trail): drop them all, empty the tables, put them back.
            for statement in [*DROP_APPEND_ONLY_SQL["postgresql"], *DROP_EVIDENCE_GUARDS_SQL["postgresql"]]:
                connection.exec_driver_sql(statement)
            connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
            install_append_only(connection)
            install_evidence_guards(connection)
        return
    if db.engine.dialect.name == "postgresql":
        with db.engine.begin() as connection:
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
    db.create_all()
    with db.engine.begin() as connection:
        install_append_only(connection)
        install_evidence_guards(connection)
    _postgres_schema_created = db.engine.dialect.name == "postgresql"


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch):
    """Hash passwords with minimal argon2 cost in tests: seeding seven users otherwise dominates each test."""
    monkeypatch.setattr(users, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@pytest.fixture
def app(tmp_path):
    uri = os.environ.get("TEST_DATABASE_URL") or f"sqlite:///{tmp_path / 'test.sqlite'}"
    app = create_app("testing", {"SQLALCHEMY_DATABASE_URI": uri, "SMTP_PORT": 1,
                                  "AUDIT_CHECKPOINT_DIR": tmp_path / "checkpoints",
                                  "PLANT_TIME_ZONE": "UTC"})
    with app.app_context():
        _reset_database()
        yield app
        db.session.remove()
        db.engine.dispose()


def _fresh_request_state(sender, **extra) -> None:
    """Forget per-request state cached on `g`: the test client shares one app context across requests,
    where a real server starts each request afresh (the page language, the loaded user)."""
    flask_babel.refresh()
    g.pop("_login_user", None)


@pytest.fixture
def client(app):
    request_started.connect(_fresh_request_state, app)
    yield app.test_client()
    request_started.disconnect(_fresh_request_state, app)


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def seeded(app):
    """Demo groups and users and the shipped processes, without demo instances."""
    demo.seed_people()
    from app.services.workflow import processes
    processes.deploy_directory(ROOT / "processes", None, "test setup",
                               release="Initial release of the shipped procedures at installation (test setup)")
    return app


@pytest.fixture
def user(seeded):
    """Return a demo user by name."""
    return users.get_by_username


def login(client, username: str, password: str = demo.DEMO_PASSWORD):
    """Sign in through the login page (CSRF is off in the testing config)."""
    return client.post("/login", data={"username": username, "password": password})


# QUALIFLOW_ENGINE_CACHES=cold runs the procedure paths cold only (CI's PostgreSQL pass), instead of both ways.
ENGINE_CACHES = os.environ.get("QUALIFLOW_ENGINE_CACHES", "warm,cold").split(",")


@pytest.fixture(params=ENGINE_CACHES)
def engine_caches(request, monkeypatch):
    """Run a procedure path twice: warm (one process from start to end) and cold, where every engine step
    starts with no parsed spec, as after a restart or on another worker. Both must pass the same assertions."""
    if request.param == "cold":
        from app.engine import runner
        load_spec = runner.load_spec

        def load_cold(version):
            runner._SPEC_CACHE.clear()
            return load_spec(version)

        monkeypatch.setattr(runner, "load_spec", load_cold)
    return request.param

"""Shared fixtures: a fresh app and database per test (SQLite file, or PostgreSQL via TEST_DATABASE_URL)."""
from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from sqlalchemy import text

from app import create_app
from app.extensions import db
from app.models.audit import install_append_only
from app.services import demo, users

ROOT = Path(__file__).resolve().parent.parent
T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # a Monday


def _reset_database() -> None:
    if db.engine.dialect.name == "postgresql":
        with db.engine.begin() as connection:
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
    db.create_all()
    with db.engine.begin() as connection:
        install_append_only(connection)


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch):
    """Hash passwords with minimal argon2 cost in tests: seeding seven users otherwise dominates each test."""
    monkeypatch.setattr(users, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@pytest.fixture
def app(tmp_path):
    uri = os.environ.get("TEST_DATABASE_URL") or f"sqlite:///{tmp_path / 'test.sqlite'}"
    app = create_app("testing", {"SQLALCHEMY_DATABASE_URI": uri, "SMTP_PORT": 1})
    with app.app_context():
        _reset_database()
        yield app
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def seeded(app):
    """Demo groups and users and the shipped processes, without demo instances."""
    demo.seed_people()
    from app.services import processes
    processes.deploy_directory(ROOT / "processes", None, "test setup")
    return app


@pytest.fixture
def user(seeded):
    """Return a demo user by name."""
    return users.get_by_username


def login(client, username: str, password: str = demo.DEMO_PASSWORD):
    """Sign in through the login page (CSRF is off in the testing config)."""
    return client.post("/login", data={"username": username, "password": password})

"""Shared fixtures: a fresh app and database per test (SQLite file, or PostgreSQL via TEST_DATABASE_URL)."""
from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import flask_babel
import pytest
from argon2 import PasswordHasher
from flask import g, request_started
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from app import create_app
from app.extensions import db
from app.models.audit import (
    DROP_APPEND_ONLY_SQL,
    DROP_EVIDENCE_GUARDS_SQL,
    install_append_only,
    install_evidence_guards,
)
from app.models.stock import DROP_LEDGER_GUARDS_SQL, install_ledger_guards
from app.services import demo, users

ROOT = Path(__file__).resolve().parent.parent
T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # a Monday


_postgres_schema_created = False  # this test process created the PostgreSQL schema: later tests empty the tables


def _reset_database() -> None:
    global _postgres_schema_created
    if db.engine.dialect.name == "postgresql" and _postgres_schema_created:
        try:
            _empty_postgres_tables()
            return
        except DBAPIError:  # should a foreign key ever refuse the deletes: TRUNCATE everything as below
            pass
        # Emptying the tables is about twice as fast as dropping and creating the schema for every test.
        tables = ", ".join(f'"{table.name}"' for table in db.metadata.sorted_tables)
        with db.engine.begin() as connection:
            # The guards refuse TRUNCATE of the evidence, and a test may have dropped them (to tamper with
            # the trail): drop them all, empty the tables, put them back.
            for statement in [*DROP_APPEND_ONLY_SQL["postgresql"], *DROP_EVIDENCE_GUARDS_SQL["postgresql"],
                              *DROP_LEDGER_GUARDS_SQL["postgresql"]]:
                connection.exec_driver_sql(statement)
            connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
            install_append_only(connection)
            install_evidence_guards(connection)
            install_ledger_guards(connection)
        return
    if db.engine.dialect.name == "postgresql":
        with db.engine.begin() as connection:
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
    db.create_all()
    with db.engine.begin() as connection:
        install_append_only(connection)
        install_evidence_guards(connection)
        install_ledger_guards(connection)
    _postgres_schema_created = db.engine.dialect.name == "postgresql"


# The sequences a test used (pg_sequences shows no last value for one not read since its restart).
_USED_SEQUENCES_SQL = ("SELECT quote_ident(schemaname) || '.' || quote_ident(sequencename), start_value, last_value "
                       "FROM pg_sequences WHERE schemaname = current_schema() AND last_value IS NOT NULL")


def _filled_tables(connection) -> set[str]:
    tables = [table.name for table in db.metadata.sorted_tables]
    return set(connection.exec_driver_sql(" UNION ALL ".join(
        f"SELECT '{name}' WHERE EXISTS (SELECT 1 FROM \"{name}\")" for name in tables)).scalars())


def _set_sequences(connection, values: list[tuple[str, int, bool]]) -> None:
    """setval each (sequence, value, is_called), in one statement."""
    if values:
        connection.execute(text("SELECT " + ", ".join(
            f"setval(CAST(:s{n} AS regclass), :v{n}, :c{n})" for n in range(len(values)))),
            {f"{key}{n}": item for n, value in enumerate(values) for key, item in zip("svc", value, strict=True)})


def _empty_postgres_tables() -> None:
    """Empty the PostgreSQL tables as TRUNCATE ... RESTART IDENTITY would: DELETE from the few tables a test
    filled (children first) and restart the sequences it used. Several times faster than TRUNCATE, which makes
    new files for every table it empties (and so, with CASCADE, for nearly all of them)."""
    with db.engine.begin() as connection:
        # The guards refuse deleting the evidence, and a test may have dropped them (to tamper with the
        # trail): drop them all, empty the tables, put them back.
        for statement in [*DROP_APPEND_ONLY_SQL["postgresql"], *DROP_EVIDENCE_GUARDS_SQL["postgresql"],
                          *DROP_LEDGER_GUARDS_SQL["postgresql"]]:
            connection.exec_driver_sql(statement)
        filled = _filled_tables(connection)
        for table in reversed(db.metadata.sorted_tables):
            if table.name in filled:
                connection.exec_driver_sql(f'DELETE FROM "{table.name}"')
        _set_sequences(connection, [(sequence, start, False)
                                    for sequence, start, _ in connection.exec_driver_sql(_USED_SEQUENCES_SQL)])
        install_append_only(connection)
        install_evidence_guards(connection)
        install_ledger_guards(connection)


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch):
    """Hash passwords with minimal argon2 cost in tests: seeding seven users otherwise dominates each test."""
    monkeypatch.setattr(users, "_hasher", _cheap_hasher())


def _cheap_hasher() -> PasswordHasher:
    return PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


def _seed() -> None:
    """Demo groups and users and the shipped processes, without demo instances."""
    demo.seed_people()
    from app.services.workflow import processes
    processes.deploy_directory(ROOT / "processes", None, "test setup",
                               release="Initial release of the shipped procedures at installation (test setup)")


def _test_app(uri: str, tmp_path: Path):
    return create_app("testing", {"SQLALCHEMY_DATABASE_URI": uri, "SMTP_PORT": 1,
                                  "AUDIT_CHECKPOINT_DIR": tmp_path / "checkpoints",
                                  "PLANT_TIME_ZONE": "UTC"})


class _SqliteTemplates:
    """Template SQLite files, each built once per session on first use: "empty" (the schema, its guards and the
    audit chain's head row, as _reset_database leaves it) and "seeded" (that, then _seed()). A test starts from a
    file copy of one, which is much cheaper than building the schema and deploying every process again."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.files: dict[str, Path] = {}

    def file(self, kind: str) -> Path:
        if kind not in self.files:
            path = self.directory / f"{kind}.sqlite"
            if kind == "empty":
                self._build(path, None, _reset_database)
            else:
                self._build(path, self.file("empty"), _seed)
            self.files[kind] = path
        return self.files[kind]

    def _build(self, path: Path, start: Path | None, fill) -> None:
        building = path.with_name(f"building-{path.name}")  # renamed to path once complete
        for leftover in building.parent.glob(f"{building.name}*"):  # of an earlier attempt that failed
            leftover.unlink()
        if start is not None:
            shutil.copyfile(start, building)
        template_app = _test_app(f"sqlite:///{building}", self.directory)
        with pytest.MonkeyPatch.context() as patch, template_app.app_context():
            patch.setattr(users, "_hasher", _cheap_hasher())
            try:
                fill()
            finally:
                db.session.remove()
                db.engine.dispose()  # the last connection checkpoints the WAL into the file and removes it
        assert not list(building.parent.glob(f"{building.name}-*")), "the template's WAL was not checkpointed"
        building.rename(path)


@pytest.fixture(scope="session")
def _sqlite_templates(tmp_path_factory) -> _SqliteTemplates:
    return _SqliteTemplates(tmp_path_factory.mktemp("database-templates"))


class _PostgresSeed:
    """The rows and sequence values of a freshly seeded PostgreSQL database, taken once per session, restored
    with COPY after the tables are emptied: much cheaper than seeding again."""

    def __init__(self) -> None:
        self.tables: list[tuple[str, bytes]] = []
        self.sequences: list[tuple[str, int, bool]] = []
        self.head: tuple[int, str] | None = None

    def take(self) -> None:
        with db.engine.begin() as connection:
            cursor = connection.connection.cursor()
            filled = _filled_tables(connection)
            for table in db.metadata.sorted_tables:  # parents first
                if table.name in filled and table.name != "audit_head":
                    data = bytearray()
                    with cursor.copy(f'COPY "{table.name}" TO STDOUT (FORMAT BINARY)') as copy:
                        for chunk in copy:
                            data += chunk
                    self.tables.append((table.name, bytes(data)))
            self.sequences = [(sequence, last, True)
                              for sequence, _, last in connection.exec_driver_sql(_USED_SEQUENCES_SQL)]
            self.head = tuple(connection.execute(text("SELECT last_id, last_hash FROM audit_head WHERE id = 1")).one())

    def restore(self) -> None:
        """Put the seeded rows back into the emptied tables (their guards and the chain's genesis head in place)."""
        with db.engine.begin() as connection:
            cursor = connection.connection.cursor()
            for name, data in self.tables:
                with cursor.copy(f'COPY "{name}" FROM STDIN (FORMAT BINARY)') as copy:
                    copy.write(data)
            _set_sequences(connection, self.sequences)
            # The head moves forward along the restored chain, as the evidence guards require.
            connection.execute(text("UPDATE audit_head SET last_id = :last_id, last_hash = :last_hash WHERE id = 1"),
                               {"last_id": self.head[0], "last_hash": self.head[1]})


_postgres_seed: _PostgresSeed | None = None


# Pytest item key: the app fixture already seeded this test's database (the test asks for `seeded`).
_PRESEEDED = pytest.StashKey[bool]()


@pytest.fixture
def app(tmp_path, request, cheap_password_hashing, _sqlite_templates):
    """A fresh app on a fresh database, already seeded when the test asks for `seeded` (see there)."""
    global _postgres_seed
    seed = "seeded" in request.fixturenames
    uri = os.environ.get("TEST_DATABASE_URL")
    if not uri:
        database = tmp_path / "test.sqlite"
        shutil.copyfile(_sqlite_templates.file("seeded" if seed else "empty"), database)
        uri = f"sqlite:///{database}"
    app = _test_app(uri, tmp_path)
    with app.app_context():
        if db.engine.dialect.name == "postgresql":
            _reset_database()
            if seed and _postgres_seed is not None:
                _postgres_seed.restore()
            elif seed:
                _seed()
                taken = _PostgresSeed()
                taken.take()
                _postgres_seed = taken
        request.node.stash[_PRESEEDED] = seed
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
def seeded(app, request):
    """Demo groups and users and the shipped processes, without demo instances.

    The app fixture has put them in already when the test asks for `seeded` (from a copy of a seeded template
    file on SQLite, by restoring the seeded rows on PostgreSQL), before any other fixture touches the database;
    only a test that asks for it late (request.getfixturevalue) gets them seeded here."""
    if not request.node.stash.get(_PRESEEDED, False):
        _seed()
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

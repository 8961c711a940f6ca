"""`flask backup create / verify / restore`: a restored copy passes `flask audit verify`, a tampered backup is named,
a database that holds data is replaced only with --force (SQLite always; PostgreSQL when TEST_DATABASE_URL is one and
the client tools are installed)."""
from __future__ import annotations

import json
import shutil
import threading
import time

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from app import create_app
from app.extensions import db
from app.models import AuditEvent, Document, ProcessInstance, Signature
from app.models.audit import install_append_only, install_evidence_guards
from app.services import backups
from app.services.evidence import audit
from app.services.workflow.transaction import atomic
from tests.integration.services.scenarios import close_capa


def _postgres() -> bool:
    return db.engine.dialect.name == "postgresql"


@pytest.fixture
def closed_capa(runner, user):
    """A closed CAPA (documents, signatures, a queued e-mail) and a signed checkpoint of the trail."""
    instance = close_capa(user)
    result = runner.invoke(args=["audit", "checkpoint"])
    assert result.exit_code == 0, result.output
    return instance


@pytest.fixture
def other_install(app, tmp_path):
    """A second installation to restore into: its own empty database and checkpoint folder."""
    if _postgres():
        if shutil.which("pg_restore") is None:
            pytest.skip("pg_restore is not installed")
        url = make_url(app.config["SQLALCHEMY_DATABASE_URI"])
        name = f"{url.database}_restore"
        admin = create_engine(url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        uri = url.set(database=name).render_as_string(hide_password=False)
    else:
        uri = f"sqlite:///{tmp_path / 'restored.sqlite'}"
    other = create_app("testing", {"SQLALCHEMY_DATABASE_URI": uri, "SMTP_PORT": 1,
                                   "AUDIT_CHECKPOINT_DIR": tmp_path / "restored-checkpoints",
                                   "PLANT_TIME_ZONE": "UTC"})
    yield other
    with other.app_context():
        db.engine.dispose()
    if _postgres():
        admin = create_engine(make_url(app.config["SQLALCHEMY_DATABASE_URI"]), isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{make_url(uri).database}" WITH (FORCE)'))
        admin.dispose()


def _invoke(other, *args: str):
    """Run a command on the other install (the test's own app context would otherwise be used)."""
    with other.app_context():
        result = other.test_cli_runner().invoke(args=list(args))
        db.session.remove()
    return result


def _counts() -> dict[str, int]:
    return {model.__tablename__: db.session.scalar(select(func.count()).select_from(model))
            for model in (AuditEvent, Document, Signature, ProcessInstance)}


def _create(runner, path) -> None:
    result = runner.invoke(args=["backup", "create", str(path)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Backup written to {path}")


def test_a_backup_restored_into_an_empty_install_passes_audit_verify(runner, closed_capa, other_install, tmp_path):
    counts = _counts()
    backup = tmp_path / "backup"
    _create(runner, backup)

    manifest = json.loads((backup / "manifest.json").read_text())
    database = "database.pgdump" if _postgres() else "database.sqlite"
    assert {item["path"] for item in manifest["files"]} == {database, *(
        f"checkpoints/{path.name}" for path in (tmp_path / "checkpoints").glob("checkpoint-*.json"))}
    assert all(len(item["sha256"]) == 64 for item in manifest["files"])
    assert manifest["audit"]["last_id"] == counts["audit_events"]
    verified = runner.invoke(args=["backup", "verify", str(backup)])
    assert verified.exit_code == 0 and verified.output.startswith("OK: 2 files match"), verified.output

    restored = _invoke(other_install, "backup", "restore", str(backup))

    assert restored.exit_code == 0, restored.output
    assert ("chain intact, matches 1 checkpoint(s); documents, signatures, completed steps and stock match"
            in restored.output)
    check = _invoke(other_install, "audit", "verify")
    assert check.exit_code == 0 and check.output.startswith("OK:"), check.output
    with other_install.app_context():
        after = _counts()
        assert after == {**counts, "audit_events": counts["audit_events"] + 1}  # + backup.restored
        last = db.session.scalar(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1))
        assert (last.action, last.actor_name) == ("backup.restored", "flask backup restore")
        db.session.remove()
    # The live install recorded that a backup was made (after the copy, so not in it).
    assert db.session.scalar(select(AuditEvent.action).order_by(AuditEvent.id.desc()).limit(1)) == "backup.created"


@pytest.mark.parametrize("tamper, named", [
    (lambda b: b.joinpath(next(p.name for p in b.iterdir() if p.name.startswith("database"))).open("ab").write(b"x"),
     "altered file: database."),
    (lambda b: next(b.joinpath("checkpoints").iterdir()).write_text("{}"), "altered file: checkpoints/checkpoint-"),
    (lambda b: next(b.joinpath("checkpoints").iterdir()).unlink(), "missing file: checkpoints/checkpoint-"),
    (lambda b: b.joinpath("checkpoints", "checkpoint-999.json").write_text("{}"),
     "unexpected file (not in the manifest): checkpoints/checkpoint-999.json"),
    (lambda b: b.joinpath("manifest.json").write_text(
        b.joinpath("manifest.json").read_text().replace('"last_id": ', '"last_id": 1', 1)),
     "manifest.json: its signature does not match"),
], ids=["database", "checkpoint", "missing", "added", "manifest"])
def test_a_tampered_backup_fails_verify_naming_the_file_and_is_not_restored(runner, closed_capa, other_install,
                                                                            tmp_path, tamper, named):
    backup = tmp_path / "backup"
    _create(runner, backup)
    tamper(backup)

    result = runner.invoke(args=["backup", "verify", str(backup)])

    assert result.exit_code == 1
    assert named in result.output
    restore = _invoke(other_install, "backup", "restore", str(backup))
    assert restore.exit_code == 1
    assert "The backup does not verify; nothing was restored" in restore.output and named in restore.output
    with other_install.app_context():
        assert not backups.holds_data()
        db.session.remove()


def test_restore_over_a_database_with_data_needs_force(runner, closed_capa, other_install, user, tmp_path):
    backup = tmp_path / "backup"
    _create(runner, backup)
    with other_install.app_context():  # the other install has its own users, trail and checkpoint
        db.create_all()
        with db.engine.begin() as connection:
            install_append_only(connection)
            install_evidence_guards(connection)
        from app.services import demo
        demo.seed_people()
        db.session.remove()
    assert _invoke(other_install, "audit", "checkpoint").exit_code == 0
    own_checkpoints = sorted(p.name for p in (tmp_path / "restored-checkpoints").glob("checkpoint-*.json"))

    refused = _invoke(other_install, "backup", "restore", str(backup))

    assert refused.exit_code == 1
    assert "The database already holds data (" in refused.output and "users" in refused.output
    assert "pass --force to replace it" in refused.output
    with other_install.app_context():
        assert db.session.scalar(select(func.count()).select_from(ProcessInstance)) == 0
        db.session.remove()

    forced = _invoke(other_install, "backup", "restore", str(backup), "--force")

    assert forced.exit_code == 0, forced.output
    assert _invoke(other_install, "audit", "verify").exit_code == 0
    (aside,) = (tmp_path / "restored-checkpoints").glob("replaced-*")
    assert sorted(p.name for p in aside.iterdir()) == own_checkpoints  # moved aside, not deleted
    with other_install.app_context():
        assert db.session.scalar(select(func.count()).select_from(ProcessInstance)) == 1
        db.session.remove()


def test_backup_refuses_an_existing_folder_and_restore_a_missing_backup(runner, closed_capa, tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    result = runner.invoke(args=["backup", "create", str(tmp_path / "full")])
    assert result.exit_code == 1 and "already exists and is not an empty folder" in result.output
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["keep.txt"]

    missing = runner.invoke(args=["backup", "restore", str(tmp_path / "nothing")])
    assert missing.exit_code == 1 and "is not a backup folder" in missing.output
    incomplete = tmp_path / "incomplete"
    incomplete.mkdir()
    result = runner.invoke(args=["backup", "verify", str(incomplete)])
    assert result.exit_code == 1 and "manifest.json is missing" in result.output


def test_without_the_postgresql_client_tools_the_backup_says_so(runner, seeded, tmp_path, monkeypatch):
    if not _postgres():
        pytest.skip("the PostgreSQL path")
    monkeypatch.setenv("PATH", str(tmp_path))  # no pg_dump on it
    result = runner.invoke(args=["backup", "create", str(tmp_path / "backup")])
    assert result.exit_code == 1
    assert "pg_dump is not on PATH" in result.output and "docs/operating.md" in result.output
    assert not (tmp_path / "backup").exists()


def test_a_backup_taken_while_the_trail_grows_is_one_consistent_moment(app, runner, closed_capa, other_install,
                                                                       tmp_path):
    """Online: a writer appends audit events all through the backup; the copy holds a whole prefix of the chain, its
    manifest names that head, and the restored copy verifies against the checkpoints copied before it."""
    stop, written = threading.Event(), []

    def writer():
        with app.app_context():
            while not stop.is_set():
                with atomic():
                    audit.record(None, "calendar.day_set", "calendar_day", len(written), actor_name="writer",
                                 new={"n": len(written)})
                written.append(1)
            db.session.remove()

    db.session.remove()  # SQLite: the test's session holds no lock
    thread = threading.Thread(target=writer)
    thread.start()
    try:
        while len(written) < 5:
            time.sleep(0.01)
        before = len(written)
        _create(runner, tmp_path / "backup")
        during = len(written) - before
    finally:
        stop.set()
        thread.join()
    manifest = json.loads((tmp_path / "backup" / "manifest.json").read_text())

    restored = _invoke(other_install, "backup", "restore", str(tmp_path / "backup"))

    assert restored.exit_code == 0, restored.output
    with other_install.app_context():
        copied = db.session.scalar(select(func.max(AuditEvent.id))) - 1  # but the restore's own event
        assert copied == manifest["audit"]["last_id"]
        db.session.remove()
    assert _invoke(other_install, "audit", "verify").exit_code == 0
    assert during > 0 or manifest["audit"]["last_id"] < db.session.scalar(select(func.max(AuditEvent.id)))


def _set_revision(backup, revision: str) -> None:
    """Say the backup's database is at another schema revision, signed as flask backup signs it."""
    path = backup / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest.pop("hmac")
    manifest["database"]["revision"] = revision
    path.write_text(json.dumps({**manifest, "hmac": backups._mac(manifest)}))


def test_a_backup_of_a_newer_schema_is_refused_and_an_older_one_restored_with_the_upgrade_to_run(
        runner, closed_capa, other_install, tmp_path):
    backup = tmp_path / "backup"
    _create(runner, backup)
    _set_revision(backup, "9999")

    newer = _invoke(other_install, "backup", "restore", str(backup))

    assert newer.exit_code == 1
    assert "schema revision 9999 is unknown to this release (it was made by a newer one); nothing was restored" \
        in newer.output
    _set_revision(backup, "0016")
    older = _invoke(other_install, "backup", "restore", str(backup))
    assert older.exit_code == 0, older.output
    heads, _ = backups.schema_revisions()
    assert f"The restored schema is at revision 0016, this release's is {', '.join(heads)}: run `flask db upgrade`" \
        in older.output


def test_the_postgresql_connection_is_passed_to_the_client_tools_whole_and_without_the_password():
    from psycopg.conninfo import conninfo_to_dict

    url = make_url("postgresql+psycopg://qa'user:se%27cr%5Cet@db.example:5433/qf\\db?sslmode=require")
    conninfo, env = backups._pg_connection(url)
    assert conninfo_to_dict(conninfo) == {"host": "db.example", "port": "5433", "user": "qa'user", "dbname": "qf\\db",
                                          "sslmode": "require"}
    assert env["PGPASSWORD"] == "se'cr\\et" and "se'cr" not in conninfo


def test_postgresql_restores_only_into_an_empty_database_or_one_of_the_backups_schema(runner, closed_capa,
                                                                                       other_install, tmp_path):
    if not _postgres():
        pytest.skip("the PostgreSQL path (SQLite replaces the whole file)")
    backup = tmp_path / "backup"
    _create(runner, backup)
    _set_revision(backup, "0016")
    with other_install.app_context():
        with db.engine.begin() as connection:
            connection.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)"))
            connection.execute(text("INSERT INTO alembic_version VALUES ('0017')"))
        db.engine.dispose()

    refused = _invoke(other_install, "backup", "restore", str(backup), "--force")

    assert refused.exit_code == 1
    assert "The database is at schema revision 0017, the backup at 0016: restore it into an empty database" \
        in refused.output

"""Backups of what an inspector's verification needs: the database (documents and signatures live in it) and the
audit checkpoint files kept outside it (AUDIT_CHECKPOINT_DIR), with a manifest of every file's SHA-256.

A backup is a folder:

    manifest.json           format, when, the database's dialect and schema revision, the audit chain's head in the
                            copy, every file with its SHA-256 and size, signed with HMAC-SHA256 (AUDIT_CHECKPOINT_KEY)
    database.sqlite         SQLite: a copy made with SQLite's online backup API (consistent while the server runs)
    database.pgdump         PostgreSQL: `pg_dump --format=custom` of one snapshot (online, consistent)
    checkpoints/*.json      the signed checkpoint files, copied before the database so none is ahead of the copy

`verify` checks a backup without the database; `restore` verifies it first, refuses a database that holds data
unless forced, replaces the database, puts the backup's checkpoints in place (moving the ones there aside, never
deleting them) and records the restore in the restored audit trail.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from flask import current_app
from sqlalchemy import inspect, text
from sqlalchemy.engine import URL

from app.exceptions import Conflict, QualiflowError, ValidationFailed
from app.extensions import db
from app.models.types import utcnow
from app.services.evidence import audit, audit_checkpoints
from app.services.workflow.transaction import atomic

FORMAT = "qualiflow-backup/1"
MANIFEST = "manifest.json"
SQLITE_FILE = "database.sqlite"
PG_FILE = "database.pgdump"
CHECKPOINTS = "checkpoints"
# Tables whose rows make a database "hold data": restoring over them needs --force.
DATA_TABLES = ("users", "audit_events", "process_definitions", "process_instances", "documents", "product_lots")
PG_TOOLS_MISSING = ("{tool} is not on PATH: backups of a PostgreSQL database use the PostgreSQL client tools "
                    "(pg_dump, pg_restore) of the server's major version or newer. Install them (Debian/Ubuntu: "
                    "apt-get install postgresql-client) or follow the plain pg_dump procedure in docs/operating.md.")


class BackupFailed(QualiflowError):
    """The backup or restore could not be done; nothing was changed."""


@dataclass
class BackupReport:
    path: Path
    dialect: str = ""
    files: int = 0
    size: int = 0
    audit_last_id: int = 0
    checkpoints: int = 0
    revision: str | None = None
    created_at: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


# --- helpers ---------------------------------------------------------------------------------------------------------

def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _mac(body: dict) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return hmac.new(audit_checkpoints._key(), canonical, hashlib.sha256).hexdigest()


def _url() -> URL:
    return db.engine.url


def _sqlite_file(url: URL) -> Path:
    if not url.database or url.database == ":memory:" or url.database.startswith("file::memory:"):
        raise ValidationFailed("The database is an in-memory SQLite database: there is no file to back up or "
                               "restore. Set DATABASE_URL to a database file or a PostgreSQL server.")
    return Path(url.database)


def _pg_tool(tool: str) -> str:
    found = shutil.which(tool)
    if not found:
        raise BackupFailed(PG_TOOLS_MISSING.format(tool=tool))
    return found


def _pg_connection(url: URL) -> tuple[str, dict[str, str]]:
    """A libpq connection string without the password, and the environment that carries the password."""
    parts = {"host": url.host, "port": str(url.port) if url.port else None, "user": url.username,
             "dbname": url.database, **{key: str(value) for key, value in url.query.items()}}

    def quoted(value: str) -> str:  # libpq: a value in single quotes, with \ and ' escaped by a backslash
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"

    conninfo = " ".join(f"{key}={quoted(value)}" for key, value in parts.items() if value)
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    return conninfo, env


def _run(command: list[str], env: dict[str, str], what: str) -> None:
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise BackupFailed(f"{what} failed (exit {result.returncode}): {' '.join(detail[-3:]) or 'no message'}")


def _revision(connection) -> str | None:
    if not inspect(connection).has_table("alembic_version"):
        return None
    return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def _head(connection) -> tuple[int, str]:
    row = connection.execute(text("SELECT last_id, last_hash FROM audit_head WHERE id = 1")).first()
    return (int(row[0]), str(row[1])) if row else (0, audit.GENESIS)


def _checkpoint_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("checkpoint-*.json")) if directory.is_dir() else []


# --- create ----------------------------------------------------------------------------------------------------------

def create_backup(target: Path, now: datetime | None = None) -> BackupReport:
    """Write a backup folder at target (which must not exist, or be empty) while the server may keep running."""
    target = Path(target)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ValidationFailed(f"{target} already exists and is not an empty folder; choose a new path.")
    url = _url()
    dialect = url.get_backend_name()
    if dialect not in ("sqlite", "postgresql"):
        raise ValidationFailed(f"Backups support SQLite and PostgreSQL, not {dialect}.")
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        # Checkpoints first: every one copied is at or behind the database copy made after it.
        (work / CHECKPOINTS).mkdir()
        for path in _checkpoint_files(Path(current_app.config["AUDIT_CHECKPOINT_DIR"])):
            shutil.copy2(path, work / CHECKPOINTS / path.name)
        if dialect == "sqlite":
            database = SQLITE_FILE
            revision, head = _backup_sqlite(_sqlite_file(url), work / database)
        else:
            database = PG_FILE
            revision, head = _backup_postgresql(url, work / database)
        files = sorted(path for path in work.rglob("*") if path.is_file())
        body = {
            "format": FORMAT, "created_at": (now or utcnow()).isoformat(),
            "database": {"dialect": dialect, "file": database, "revision": revision},
            "audit": {"last_id": head[0], "last_hash": head[1]},
            "files": [{"path": path.relative_to(work).as_posix(), "sha256": _sha256(path),
                       "size": path.stat().st_size} for path in files],
        }
        (work / MANIFEST).write_text(json.dumps({**body, "hmac": _mac(body)}, indent=2, ensure_ascii=False),
                                     encoding="utf-8")
        if target.exists():
            target.rmdir()
        work.rename(target)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    with atomic():
        audit.record(None, "backup.created", "backup", target.name, actor_name="flask backup create",
                     new={"path": str(target), "database": dialect, "audit_last_id": head[0],
                          "files": len(body["files"])})
    return BackupReport(path=target, dialect=dialect, files=len(body["files"]), size=sum(
        item["size"] for item in body["files"]), audit_last_id=head[0],
        checkpoints=sum(1 for item in body["files"] if item["path"].startswith(f"{CHECKPOINTS}/")),
        revision=revision, created_at=body["created_at"])


def _backup_sqlite(source: Path, destination: Path) -> tuple[str | None, tuple[int, str]]:
    if not source.exists():
        raise ValidationFailed(f"The database file {source} does not exist.")
    # The online backup API copies a consistent snapshot page by page while other connections read and write.
    src, dst = sqlite3.connect(source), sqlite3.connect(destination)
    try:
        src.execute("PRAGMA busy_timeout=30000")
        src.backup(dst)
        dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
        tables = {row[0] for row in dst.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        revision = (dst.execute("SELECT version_num FROM alembic_version").fetchone() or [None])[0] \
            if "alembic_version" in tables else None
        row = dst.execute("SELECT last_id, last_hash FROM audit_head WHERE id = 1").fetchone() \
            if "audit_head" in tables else None
    finally:
        src.close()
        dst.close()
    return revision, ((int(row[0]), str(row[1])) if row else (0, audit.GENESIS))


def _backup_postgresql(url: URL, destination: Path) -> tuple[str | None, tuple[int, str]]:
    pg_dump = _pg_tool("pg_dump")
    conninfo, env = _pg_connection(url)
    # One snapshot for the manifest's audit head and pg_dump: the head recorded is the head of the dump.
    with db.engine.connect().execution_options(isolation_level="REPEATABLE READ") as connection:
        snapshot = connection.execute(text("SELECT pg_export_snapshot()")).scalar()
        revision, head = _revision(connection), _head(connection)
        _run([pg_dump, "--format=custom", "--no-owner", "--no-privileges", f"--snapshot={snapshot}",
              f"--file={destination}", f"--dbname={conninfo}"], env, "pg_dump")
        connection.rollback()
    return revision, head


# --- verify ----------------------------------------------------------------------------------------------------------

def verify_backup(path: Path) -> BackupReport:
    """Check a backup folder without the database: the manifest's signature, every file's SHA-256 and size, no
    file missing or added, and that the database copy opens (SQLite integrity check, pg_restore --list)."""
    path = Path(path)
    report = BackupReport(path=path)
    manifest_path = path / MANIFEST
    if not path.is_dir():
        report.problems.append(f"{path} is not a backup folder")
        return report
    if not manifest_path.is_file():
        report.problems.append(f"{MANIFEST} is missing: this is not a complete backup")
        return report
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        mac = manifest.pop("hmac")
        listed = {item["path"]: item for item in manifest["files"]}
        database = manifest["database"]
        report.dialect, report.revision = database["dialect"], database.get("revision")
        report.audit_last_id = int(manifest["audit"]["last_id"])
        report.created_at = str(manifest.get("created_at", ""))
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        report.problems.append(f"{MANIFEST} cannot be read: {err}")
        return report
    if manifest.get("format") != FORMAT:
        report.problems.append(f"{MANIFEST}: unknown format {manifest.get('format')!r}")
    if not hmac.compare_digest(str(mac), _mac(manifest)):
        report.problems.append(f"{MANIFEST}: its signature does not match - the manifest was altered, or the backup "
                               "was made with another AUDIT_CHECKPOINT_KEY")
    for name, item in sorted(listed.items()):
        file = path / name
        if not file.is_file():
            report.problems.append(f"missing file: {name}")
            continue
        digest, size = _sha256(file), file.stat().st_size
        if digest != item.get("sha256") or size != item.get("size"):
            report.problems.append(f"altered file: {name} (SHA-256 {digest[:12]}…, the manifest recorded "
                                   f"{str(item.get('sha256'))[:12]}…)")
        report.files += 1
        report.size += size
        report.checkpoints += name.startswith(f"{CHECKPOINTS}/")
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        name = file.relative_to(path).as_posix()
        if name != MANIFEST and name not in listed:
            report.problems.append(f"unexpected file (not in the manifest): {name}")
    if database.get("file") not in listed:
        report.problems.append(f"{MANIFEST}: the database file {database.get('file')!r} is not listed")
    elif report.ok:
        _check_database_file(path / database["file"], report)
    return report


def _check_database_file(file: Path, report: BackupReport) -> None:
    if report.dialect == "sqlite":
        try:
            connection = sqlite3.connect(f"file:{file}?mode=ro", uri=True)
            try:
                result = connection.execute("PRAGMA integrity_check").fetchone()[0]
            finally:
                connection.close()
        except sqlite3.DatabaseError as err:
            report.problems.append(f"{file.name}: not a readable SQLite database ({err})")
            return
        if result != "ok":
            report.problems.append(f"{file.name}: SQLite integrity check failed: {result}")
    elif report.dialect == "postgresql":
        pg_restore = shutil.which("pg_restore")
        if pg_restore is None:
            return  # the hashes matched; reading the archive needs the client tools
        result = subprocess.run([pg_restore, "--list", str(file)], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            report.problems.append(f"{file.name}: pg_restore cannot read it ({result.stderr.strip()[:200]})")
    else:
        report.problems.append(f"{MANIFEST}: unknown database dialect {report.dialect!r}")


# --- restore ---------------------------------------------------------------------------------------------------------

def schema_revisions() -> tuple[list[str], set[str]]:
    """This release's migration heads and every revision it knows (Alembic's scripts in migrations/)."""
    from alembic.script import ScriptDirectory
    scripts = ScriptDirectory(current_app.extensions["migrate"].directory)
    return list(scripts.get_heads()), {script.revision for script in scripts.walk_revisions()}


def upgrade_note(revision: str | None) -> str:
    """What to do about a restored schema that is older than this release's (empty when it is current)."""
    heads, _ = schema_revisions()
    if revision is None or revision in heads:
        return ""
    return (f"The restored schema is at revision {revision}, this release's is {', '.join(heads)}: run "
            "`flask db upgrade` before starting the application.")


def holds_data() -> dict[str, int]:
    """Rows in the tables that make a database worth keeping (empty: nothing would be lost by a restore)."""
    found = {}
    with db.engine.connect() as connection:
        existing = set(inspect(connection).get_table_names())
        for table in DATA_TABLES:
            if table in existing:
                count = connection.execute(text(f'SELECT count(*) FROM "{table}"')).scalar() or 0
                if count:
                    found[table] = int(count)
    return found


def restore_backup(path: Path, *, force: bool = False, now: datetime | None = None) -> BackupReport:
    """Replace the database and the checkpoint files with a verified backup's; refuse a database that holds data
    (or a checkpoint folder that holds other checkpoints) unless force. Record the restore in the audit trail."""
    report = verify_backup(path)
    if not report.ok:
        raise ValidationFailed("The backup does not verify; nothing was restored: " + "; ".join(report.problems))
    url = _url()
    dialect = url.get_backend_name()
    if dialect != report.dialect:
        raise ValidationFailed(f"The backup is of a {report.dialect} database; DATABASE_URL names a {dialect} one. "
                               "Restore it into a database of the same kind.")
    _, known = schema_revisions()
    if report.revision is not None and report.revision not in known:
        raise ValidationFailed(f"The backup's schema revision {report.revision} is unknown to this release (it was "
                               "made by a newer one); nothing was restored. Restore it with that release or newer.")
    if dialect == "sqlite":
        _sqlite_file(url)
    else:
        _pg_tool("pg_restore")
    directory = Path(current_app.config["AUDIT_CHECKPOINT_DIR"])
    ours = {p.name for p in _checkpoint_files(path / CHECKPOINTS)}
    foreign = [p for p in _checkpoint_files(directory) if p.name not in ours]
    if not force:
        data = holds_data()
        if data:
            counts = ", ".join(f"{count} {table}" for table, count in data.items())
            raise Conflict(f"The database already holds data ({counts}); restoring would replace it. Restore into "
                           "an empty database, or pass --force to replace it.")
        if foreign:
            raise Conflict(f"{directory} holds {len(foreign)} checkpoint file(s) that are not in the backup; they "
                           "belong to another audit trail. Pass --force to move them aside (into a replaced-... "
                           "folder) and restore.")
    if dialect == "postgresql":
        # pg_restore --clean replaces the objects the dump holds, in one transaction; a schema of another release
        # would keep tables the backup does not know.
        with db.engine.connect() as connection:
            current = _revision(connection)
        if current is not None and report.revision is not None and current != report.revision:
            raise Conflict(f"The database is at schema revision {current}, the backup at {report.revision}: restore it "
                           "into an empty database (createdb), then run flask db upgrade.")
    db.session.remove()
    db.engine.dispose()
    if dialect == "sqlite":
        _restore_sqlite(path / SQLITE_FILE, _sqlite_file(url))
    else:
        _restore_postgresql(path / PG_FILE, url)
    db.engine.dispose()
    stamp = (now or utcnow()).strftime("%Y%m%dT%H%M%S%fZ")
    directory.mkdir(parents=True, exist_ok=True)
    if foreign:
        aside = directory / f"replaced-{stamp}"
        aside.mkdir()
        for file in foreign:
            file.rename(aside / file.name)
    for file in _checkpoint_files(path / CHECKPOINTS):
        shutil.copy2(file, directory / file.name)
    with atomic():
        audit.record(None, "backup.restored", "backup", Path(path).name, actor_name="flask backup restore",
                     new={"path": str(path), "created_at": report.created_at, "audit_last_id": report.audit_last_id,
                          "forced": force})
    return report


def _restore_sqlite(backup: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    # The backup API writes the whole copy into the target in one go (a reader sees the old or the new database).
    src, dst = sqlite3.connect(f"file:{backup}?mode=ro", uri=True), sqlite3.connect(target)
    try:
        dst.execute("PRAGMA busy_timeout=30000")
        src.backup(dst)
        dst.execute("PRAGMA journal_mode=WAL")
    finally:
        src.close()
        dst.close()


def _restore_postgresql(backup: Path, url: URL) -> None:
    pg_restore = _pg_tool("pg_restore")
    conninfo, env = _pg_connection(url)
    _run([pg_restore, "--clean", "--if-exists", "--no-owner", "--no-privileges", "--single-transaction",
          "--exit-on-error", f"--dbname={conninfo}", str(backup)], env, "pg_restore")

"""The append-only, hash-chained audit trail."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.types import UTCDateTime, utcnow


class AuditEvent(db.Model):
    __tablename__ = "audit_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    actor_name: Mapped[str] = mapped_column(String(200), default="")
    action: Mapped[str] = mapped_column(String(80), index=True)
    object_type: Mapped[str] = mapped_column(String(60), default="")
    object_id: Mapped[str] = mapped_column(String(80), default="")
    instance_id: Mapped[int | None] = mapped_column(index=True)
    old: Mapped[dict | None] = mapped_column(JSON)
    new: Mapped[dict | None] = mapped_column(JSON)
    reason: Mapped[str] = mapped_column(Text, default="")
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(db.Model):
    """One row whose update serializes appends, so two writers never chain to the same predecessor."""

    __tablename__ = "audit_head"
    id: Mapped[int] = mapped_column(primary_key=True)
    last_id: Mapped[int] = mapped_column(default=0)
    last_hash: Mapped[str] = mapped_column(String(64))


# Database-level refusal of UPDATE/DELETE on the trail; installed by the migration (and by tests' create_all).
APPEND_ONLY_SQL = {
    "sqlite": [
        "CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events "
        "BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END",
        "CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events "
        "BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END",
    ],
    "postgresql": [
        "CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger AS $$ "
        "BEGIN RAISE EXCEPTION 'the audit trail is append-only'; END; $$ LANGUAGE plpgsql",
        "CREATE TRIGGER audit_events_no_update BEFORE UPDATE OR DELETE ON audit_events "
        "FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()",
    ],
}
DROP_APPEND_ONLY_SQL = {
    "sqlite": ["DROP TRIGGER IF EXISTS audit_events_no_update", "DROP TRIGGER IF EXISTS audit_events_no_delete"],
    "postgresql": ["DROP TRIGGER IF EXISTS audit_events_no_update ON audit_events",
                   "DROP FUNCTION IF EXISTS audit_events_append_only()"],
}


# The evidence around the trail, guarded the same way (migration 0011): TRUNCATE of the trail is refused
# (PostgreSQL row triggers do not see it; SQLite has no TRUNCATE and runs its row triggers for a bare DELETE),
# signatures and documents are never changed by the app, and the head row only moves forward along the chain.
EVIDENCE_TABLES = ("signatures", "documents")
_HEAD_MOVES_FORWARD = (
    "NEW.id = OLD.id AND ((NEW.last_id = OLD.last_id AND NEW.last_hash = OLD.last_hash) OR "
    "(NEW.last_id > OLD.last_id AND EXISTS (SELECT 1 FROM audit_events e "
    "WHERE e.id = NEW.last_id AND e.hash = NEW.last_hash)))")
EVIDENCE_GUARDS_SQL = {
    "sqlite": [
        *(f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
          f"BEGIN SELECT RAISE(ABORT, '{table} is append-only evidence'); END"
          for table in EVIDENCE_TABLES for verb in ("UPDATE", "DELETE")),
        "CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head "
        "BEGIN SELECT RAISE(ABORT, 'the audit head cannot be removed'); END",
        f"CREATE TRIGGER audit_head_forward_only BEFORE UPDATE ON audit_head WHEN NOT ({_HEAD_MOVES_FORWARD}) "
        "BEGIN SELECT RAISE(ABORT, 'the audit head only moves forward along the chain'); END",
    ],
    "postgresql": [
        "CREATE OR REPLACE FUNCTION evidence_append_only() RETURNS trigger AS $$ "
        "BEGIN RAISE EXCEPTION USING MESSAGE = TG_TABLE_NAME || ' is append-only evidence'; END; $$ LANGUAGE plpgsql",
        "CREATE OR REPLACE FUNCTION audit_head_forward_only() RETURNS trigger AS $$ "
        f"BEGIN IF {_HEAD_MOVES_FORWARD} THEN RETURN NEW; END IF; "
        "RAISE EXCEPTION 'the audit head only moves forward along the chain'; END; $$ LANGUAGE plpgsql",
        *(f"CREATE TRIGGER {table}_no_update BEFORE UPDATE OR DELETE ON {table} "
          "FOR EACH ROW EXECUTE FUNCTION evidence_append_only()" for table in EVIDENCE_TABLES),
        *(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
          "FOR EACH STATEMENT EXECUTE FUNCTION evidence_append_only()"
          for table in ("audit_events", "audit_head", *EVIDENCE_TABLES)),
        "CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head "
        "FOR EACH ROW EXECUTE FUNCTION evidence_append_only()",
        "CREATE TRIGGER audit_head_forward_only BEFORE UPDATE ON audit_head "
        "FOR EACH ROW EXECUTE FUNCTION audit_head_forward_only()",
    ],
}
DROP_EVIDENCE_GUARDS_SQL = {
    "sqlite": [*(f"DROP TRIGGER IF EXISTS {table}_no_{verb}" for table in EVIDENCE_TABLES
                 for verb in ("update", "delete")),
               "DROP TRIGGER IF EXISTS audit_head_no_delete", "DROP TRIGGER IF EXISTS audit_head_forward_only"],
    "postgresql": ["DROP FUNCTION IF EXISTS evidence_append_only() CASCADE",
                   "DROP FUNCTION IF EXISTS audit_head_forward_only() CASCADE"],
}


def install_evidence_guards(connection) -> None:
    """Create the triggers that refuse TRUNCATE of the trail, changes to signatures and documents, and a
    head that moves back or off the chain."""
    for statement in EVIDENCE_GUARDS_SQL[connection.dialect.name]:
        connection.exec_driver_sql(statement)


def install_append_only(connection) -> None:
    """Create the triggers that make audit_events append-only, and the chain's head row."""
    for statement in APPEND_ONLY_SQL[connection.dialect.name]:
        connection.exec_driver_sql(statement)
    start_chain(connection)


def start_chain(connection) -> None:
    """Insert the chain's head row of an empty audit trail (the genesis hash)."""
    connection.exec_driver_sql(f"INSERT INTO audit_head (id, last_id, last_hash) VALUES (1, 0, '{'0' * 64}')")

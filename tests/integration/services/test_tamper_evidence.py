"""Tampering with the evidence through the database: refused by triggers, or found by verify and downloads."""
from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DatabaseError

from app.extensions import db
from app.models import AuditEvent, AuditHead
from tests.integration.services.scenarios import close_capa


def _empty(table: str) -> str:
    """Empty a table the fastest way the database has (SQLite has no TRUNCATE: a bare DELETE)."""
    return f"TRUNCATE {table} CASCADE" if db.engine.dialect.name == "postgresql" else f"DELETE FROM {table}"


@pytest.mark.parametrize("statement", [
    lambda: _empty("audit_events"),
    lambda: _empty("audit_head"),
    lambda: "DELETE FROM audit_head",
    lambda: f"UPDATE audit_head SET last_id = 0, last_hash = '{'0' * 64}'",
    lambda: f"UPDATE audit_head SET last_hash = '{'f' * 64}'",
    lambda: "UPDATE audit_head SET last_id = last_id + 1",
    lambda: _empty("signatures"),
    lambda: "UPDATE signatures SET printed_name = 'Someone Else'",
    lambda: "DELETE FROM signatures",
    lambda: _empty("documents"),
    lambda: f"UPDATE documents SET sha256 = '{'a' * 64}'",
    lambda: "DELETE FROM documents",
], ids=["truncate trail", "truncate head", "delete head", "head back", "head off chain", "head past the end",
        "truncate signatures", "rename signer", "delete signature", "truncate documents", "rewrite document",
        "delete document"])
def test_the_database_refuses_to_change_the_evidence(user, statement):
    close_capa(user)
    counts = {table: db.session.scalar(text(f"SELECT count(*) FROM {table}"))
              for table in ("audit_events", "signatures", "documents")}
    head = db.session.get(AuditHead, 1)
    expected_head = (head.last_id, head.last_hash)
    db.session.commit()

    with pytest.raises(DatabaseError, match="append-only|audit head"):
        db.session.execute(text(statement()))
        db.session.commit()
    db.session.rollback()

    assert {table: db.session.scalar(text(f"SELECT count(*) FROM {table}")) for table in counts} == counts
    head = db.session.get(AuditHead, 1, populate_existing=True)
    assert (head.last_id, head.last_hash) == expected_head
    assert expected_head[0] == db.session.scalar(db.select(db.func.max(AuditEvent.id)))

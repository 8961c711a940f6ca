"""Tampering with the evidence through the database: refused by triggers, or found by verify and downloads."""
from __future__ import annotations

import hashlib
import json

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DatabaseError

from app import create_app
from app.extensions import db
from app.models import AuditEvent, AuditHead, Document, Incident, ProcessInstance, Signature, Task
from app.models.audit import DROP_APPEND_ONLY_SQL, DROP_EVIDENCE_GUARDS_SQL
from app.services import users
from app.services.evidence import audit
from app.services.evidence.audit import GENESIS
from tests.conftest import login
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


def _as_database_owner(*statements: str, **params) -> None:
    """Do what someone with the owner's rights on the database could: drop every guard, then change the evidence."""
    dialect = db.engine.dialect.name
    for sql in [*DROP_APPEND_ONLY_SQL[dialect], *DROP_EVIDENCE_GUARDS_SQL[dialect]]:
        db.session.execute(text(sql))
    for statement in statements:
        db.session.execute(text(statement), params)
    db.session.commit()


def _checkpoint(runner) -> int:
    result = runner.invoke(args=["audit", "checkpoint"])
    assert result.exit_code == 0, result.output
    verified = runner.invoke(args=["audit", "verify"])
    assert verified.exit_code == 0 and "matches 1 checkpoint(s)" in verified.output, verified.output
    return db.session.get(AuditHead, 1, populate_existing=True).last_id


def _refused(runner, *problems: str) -> None:
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 1, result.output
    assert "OK:" not in result.output
    for problem in problems:
        assert problem in result.output


def test_verify_refuses_an_emptied_trail_and_head_against_the_checkpoint(runner, seeded):
    rows = _checkpoint(runner)

    _as_database_owner(_empty("audit_events"), f"UPDATE audit_head SET last_id = 0, last_hash = '{GENESIS}'")

    _refused(runner, "broken at row 1: the checkpoint of", f"anchored {rows} rows", "rows were removed")


def test_verify_refuses_a_tail_deleted_with_the_head_moved_back(runner, seeded):
    rows = _checkpoint(runner)
    keep = rows - 2
    kept_hash = db.session.get(AuditEvent, keep).hash

    _as_database_owner(f"DELETE FROM audit_events WHERE id > {keep}",
                       f"UPDATE audit_head SET last_id = {keep}, last_hash = '{kept_hash}'")

    _refused(runner, f"broken at row {keep + 1}:", "rows were removed")


def test_verify_finds_a_row_rewritten_and_the_rest_rechained(runner, seeded):
    rows = _checkpoint(runner)
    events = db.session.scalars(db.select(AuditEvent).order_by(AuditEvent.id)).all()
    _as_database_owner()
    events[1].reason = "tidied up"
    for before, event in zip(events, events[1:], strict=False):
        event.prev_hash = before.hash
        event.hash = audit._digest(before.hash, event)
    db.session.flush()
    db.session.execute(text("UPDATE audit_head SET last_hash = :hash"), {"hash": events[-1].hash})
    db.session.commit()
    assert audit.verify().ok  # the chain alone cannot tell: only the anchor outside the database can

    _refused(runner, f"broken at row {rows}:", "the trail was rewritten")


def test_verify_refuses_a_forged_checkpoint_file(app, runner, seeded):
    _checkpoint(runner)
    (path,) = (app.config["AUDIT_CHECKPOINT_DIR"]).glob("checkpoint-*.json")
    body = json.loads(path.read_text())
    path.write_text(json.dumps({**body, "last_id": 1}))

    _refused(runner, f"{path.name} does not carry a valid signature")


def test_verify_names_a_signature_whose_printed_name_changed(runner, user):
    instance = close_capa(user)
    (signature,) = db.session.scalars(db.select(Signature)).all()

    _as_database_owner("UPDATE signatures SET printed_name = 'Someone Else'")

    _refused(runner, f"signature {signature.id} (instance {instance.id}) does not match audit event",
             ": printed name")


def _completed_step(instance_id: int, element_id: str) -> Task:
    return db.session.scalars(db.select(Task).where(Task.instance_id == instance_id, Task.element_id == element_id,
                                                    Task.state == "completed")).one()


def test_a_closed_procedure_verifies_with_its_completed_steps(runner, user):
    close_capa(user)

    result = runner.invoke(args=["audit", "verify"])

    assert result.exit_code == 0, result.output
    assert "documents, signatures, completed steps and stock match" in result.output


@pytest.mark.parametrize(("statement", "changed"), [
    ("UPDATE tasks SET completed_by_id = (SELECT id FROM users WHERE username = 'admin') WHERE id = :id",
     "completed by"),
    ("UPDATE tasks SET completed_at = '2020-01-01 00:00:00' WHERE id = :id", "time"),
    ("UPDATE tasks SET data = '{\"description\": \"nothing happened\"}' WHERE id = :id", "data, data hash"),
], ids=["other completer", "other time", "other answer"])
def test_verify_names_a_completed_step_edited_in_the_database(runner, user, statement, changed):
    instance = close_capa(user)
    task = _completed_step(instance.id, "describe_problem")
    task_id = task.id

    _as_database_owner(statement, id=task_id)

    _refused(runner, f"task {task_id} (describe_problem, instance {instance.id}) does not match audit event",
             f": {changed}")


def test_verify_names_a_completion_no_audit_event_records(runner, user):
    instance = close_capa(user)
    task = _completed_step(instance.id, "describe_problem")
    task_id = task.id

    _as_database_owner("DELETE FROM audit_events WHERE action = 'task.completed' AND object_id = :spiff",
                       spiff=task.spiff_id)

    _refused(runner, f"task {task_id} (describe_problem, instance {instance.id}): completed by user",
             "no task.completed audit event records it")


FORGED = b"PK forged report"
REWRITES = {  # statement, what `flask audit verify` says
    "bytes": ("UPDATE documents SET content = :content", "the stored bytes"),
    "bytes and hash": ("UPDATE documents SET content = :content, sha256 = :sha256, size = :size",
                       "the row no longer matches what the document.stored audit event recorded"),
}


@pytest.mark.parametrize("rewrite", REWRITES.values(), ids=REWRITES.keys())
@pytest.mark.parametrize("download", [
    lambda client, token, document_id: client.get(f"/instances/documents/{document_id}"),
    lambda client, token, document_id: client.get(f"/api/v1/documents/{document_id}",
                                                  headers={"Authorization": f"Bearer {token}"}),
], ids=["web", "api"])
def test_a_document_whose_bytes_changed_is_not_served(client, runner, user, download, rewrite):
    instance = close_capa(user)
    document = db.session.scalars(db.select(Document).order_by(Document.id.desc())).first()  # the signed report
    document_id, filename = document.id, document.filename
    token = users.issue_token("auditor")
    login(client, "auditor")
    assert download(client, token, document_id).status_code == 200
    statement, problem = rewrite

    _as_database_owner(statement, content=FORGED, sha256=hashlib.sha256(FORGED).hexdigest(), size=len(FORGED))

    response = download(client, token, document_id)
    assert response.status_code == 409
    assert b"forged" not in response.data
    assert "changed after it was stored" in response.get_data(as_text=True)
    (incident,) = db.session.scalars(db.select(Incident)).all()
    assert incident.instance_id == instance.id and filename in incident.message
    assert db.session.get(ProcessInstance, instance.id).status == "completed"
    (tampered,) = db.session.scalars(db.select(AuditEvent).where(AuditEvent.action == "document.tampered")).all()
    assert tampered.new["stored_sha256"] == hashlib.sha256(FORGED).hexdigest()
    _refused(runner, f"document {document_id} ({filename}): {problem}")


def test_the_refused_download_page_speaks_chinese(client, user):
    close_capa(user)
    document = db.session.scalars(db.select(Document).order_by(Document.id.desc())).first()
    _as_database_owner(REWRITES["bytes"][0], content=FORGED)
    login(client, "auditor")

    response = client.get(f"/instances/documents/{document.id}?lang=zh_CN")

    assert response.status_code == 409
    assert "此文件在保存后被更改" in response.get_data(as_text=True)


def test_production_refuses_to_start_without_a_checkpoint_key(tmp_path, monkeypatch):
    monkeypatch.delenv("AUDIT_CHECKPOINT_KEY", raising=False)
    with pytest.raises(RuntimeError, match="AUDIT_CHECKPOINT_KEY"):
        create_app("production", {"SECRET_KEY": "a real secret", "AUDIT_CHECKPOINT_KEY": "",
                                  "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'prod.sqlite'}"})


def test_completed_steps_are_compared_instance_by_instance_in_rounds(runner, user, monkeypatch):
    from app.services.evidence import verification
    monkeypatch.setattr(verification, "COMPLETION_CHUNK", 1)  # each instance in a round of its own
    first, second = close_capa(user), close_capa(user)
    assert verification.verify_completions() == []
    task = _completed_step(second.id, "describe_problem")
    task_id = task.id

    _as_database_owner("UPDATE tasks SET completed_at = '2020-01-01 00:00:00' WHERE id = :id", id=task_id)

    assert verification.verify_completions() == [
        f"task {task_id} (describe_problem, instance {second.id}) does not match audit event "
        f"{_completion_event(second.id, task.spiff_id)}: time"]
    assert first.id != second.id


def _completion_event(instance_id: int, spiff_id: str) -> int:
    return db.session.scalar(db.select(AuditEvent.id).where(
        AuditEvent.action == "task.completed", AuditEvent.instance_id == instance_id, AuditEvent.object_id == spiff_id))

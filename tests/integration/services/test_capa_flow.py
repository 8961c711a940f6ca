"""The shipped CAPA through app.services.tasks.complete_task: steps, loops, the e-signed gate and its evidence."""
from __future__ import annotations

import hashlib
from datetime import timedelta
from io import BytesIO

import docx
import pytest

from app.exceptions import FormInvalid, SignatureRejected
from app.extensions import db
from app.models import AuditEvent, Document, ProcessInstance, Signature, Task
from app.services import demo, instances, tasks, users
from tests.conftest import T0
from tests.integration.capa_steps import STEPS, ready_task, run_capa_to_approval
from tests.integration.services.scenarios import APPROVE, REJECT, approve, count

HOUR = timedelta(hours=1)


def _docx_text(document: Document) -> tuple[str, list[list[str]]]:
    """Return the paragraphs of a rendered .docx as one text, and every table row as a list of cell texts."""
    parsed = docx.Document(BytesIO(document.content))
    rows = [[cell.text for cell in row.cells] for table in parsed.tables for row in table.rows]
    return "\n".join(p.text for p in parsed.paragraphs), rows


def _reports(instance_id: int) -> list[Document]:
    return list(db.session.scalars(db.select(Document).where(
        Document.instance_id == instance_id, Document.kind == "capa_report").order_by(Document.revision)))


def _run_steps(instance_id: int, steps, user, now) -> None:
    for element, username, data in steps:
        tasks.complete_task(ready_task(instance_id, element).id, data, user(username), now=now)


def test_happy_path_completes_with_one_task_row_per_step(user):
    instance = instances.start_instance("capa", user("qa"), title="Burr on hub", now=T0)
    for hours, (element, username, data) in enumerate(STEPS, start=1):
        tasks.complete_task(ready_task(instance.id, element).id, data, user(username), now=T0 + hours * HOUR)
    closed_at = T0 + (len(STEPS) + 1) * HOUR
    approve(instance.id, user, closed_at)

    db.session.expire_all()
    instance = db.session.get(ProcessInstance, instance.id)
    assert (instance.status, instance.completed_at) == ("completed", closed_at)
    rows = db.session.scalars(db.select(Task).where(Task.instance_id == instance.id, Task.kind == "user")
                              .order_by(Task.id)).all()
    expected = [(element, username, T0 + hours * HOUR) for hours, (element, username, _) in enumerate(STEPS, 1)]
    assert [(r.element_id, r.completed_by.username, r.completed_at) for r in rows] == [
        *expected, ("qa_approval", "head", closed_at)]
    assert {r.state for r in rows} == {"completed"}
    assert rows[0].data == STEPS[0][2] and rows[0].data_hash and len(rows[0].data_hash) == 64
    automated = db.session.scalars(db.select(Task.element_id).where(
        Task.instance_id == instance.id, Task.kind == "service", Task.state == "completed")).all()
    assert sorted(automated) == ["notify_closed", "render_report"]
    assert count(Task, Task.instance_id == instance.id, Task.state == "ready") == 0


def test_approval_signature_binds_the_rendered_report(user):
    instance = run_capa_to_approval(user)
    signed_at = T0 + timedelta(days=1)
    approval = approve(instance.id, user, signed_at)

    [report] = _reports(instance.id)
    assert report.sha256 == hashlib.sha256(report.content).hexdigest()
    [signature] = db.session.scalars(db.select(Signature).where(Signature.instance_id == instance.id)).all()
    assert signature.task_id == approval.id
    assert (signature.user.username, signature.printed_name, signature.meaning, signature.signed_at) == (
        "head", "Helen Head", "approved", signed_at)
    assert len(signature.signed_hash) == 64 and int(signature.signed_hash, 16) >= 0
    assert signature.documents == [{"id": report.id, "kind": "capa_report", "filename": report.filename,
                                    "sha256": report.sha256}]
    applied = db.session.scalar(db.select(AuditEvent).where(AuditEvent.action == "signature.applied"))
    assert applied.new["hash"] == signature.signed_hash
    assert applied.new["printed_name"] == "Helen Head"


def test_rendered_capa_report_shows_the_case(user):
    instance = run_capa_to_approval(user)

    [report] = _reports(instance.id)
    assert report.revision == 1
    assert report.filename.endswith(".zh-CN.docx")  # the starter (qa) works in Chinese
    text, rows = _docx_text(report)
    assert text.startswith("纠正和预防措施报告")
    assert "Burr found on the catheter hub" in text
    assert ["CAPA 标题", "Burr on hub"] in rows
    assert ["批号", "L2026-001"] in rows
    assert ["根本原因", "Worn deburring tool at station 3"] in rows
    assert ["1", "Replace tool", "prod", "2026-12-01"] in rows


def test_not_effective_loops_back_to_investigation(user):
    instance = instances.start_instance("capa", user("qa"), title="Burr on hub", now=T0)
    *before, (element, username, data) = STEPS
    _run_steps(instance.id, before, user, T0)
    looped_at = T0 + HOUR
    tasks.complete_task(ready_task(instance.id, element).id, {**data, "effective": False}, user(username),
                        now=looped_at)

    again = ready_task(instance.id, "investigation")
    assert again is not None and again.group_name == "qa"
    assert again.due_at == looped_at + timedelta(days=7)
    assert db.session.get(ProcessInstance, instance.id).status == "running"
    assert [t.element_id for t in db.session.scalars(db.select(Task).where(
        Task.instance_id == instance.id, Task.state == "ready"))] == ["investigation"]
    assert count(Task, Task.instance_id == instance.id, Task.element_id == "investigation",
                 Task.state == "completed") == 1
    assert _reports(instance.id) == []


def test_rejected_approval_loops_back_and_the_second_pass_renders_revision_2(user):
    instance = run_capa_to_approval(user)
    approve(instance.id, user, T0 + HOUR, REJECT)
    assert ready_task(instance.id, "investigation") is not None
    assert db.session.get(ProcessInstance, instance.id).status == "running"

    second = [(e, u, dict(d)) for e, u, d in STEPS[2:]]
    second[0][2]["root_cause"] = "Deburring tool not on the maintenance plan"
    _run_steps(instance.id, second, user, T0 + 2 * HOUR)
    first, revised = _reports(instance.id)
    assert (first.revision, revised.revision) == (1, 2)
    assert first.filename != revised.filename and first.sha256 != revised.sha256
    assert ["根本原因", "Worn deburring tool at station 3"] in _docx_text(first)[1]
    assert ["根本原因", "Deburring tool not on the maintenance plan"] in _docx_text(revised)[1]

    approve(instance.id, user, T0 + 3 * HOUR)
    assert db.session.get(ProcessInstance, instance.id).status == "completed"
    signatures = db.session.scalars(db.select(Signature).where(Signature.instance_id == instance.id)
                                    .order_by(Signature.id)).all()
    assert [[d["sha256"] for d in s.documents] for s in signatures] == [[first.sha256], [revised.sha256]]
    assert [s.meaning for s in signatures] == ["rejected", "approved"]  # a rejection is never signed "approved"


def test_invalid_form_data_is_refused_and_changes_nothing(user):
    instance = instances.start_instance("capa", user("qa"), title="Burr on hub", now=T0)
    task = ready_task(instance.id, "describe_problem")
    lock_version, audit_rows, task_rows = instance.lock_version, count(AuditEvent), count(Task)

    with pytest.raises(FormInvalid) as refused:
        tasks.complete_task(task.id, {"title": "x" * 201, "source": "rumour", "reported_on": "20.11.2026"},
                            user("qa"), now=T0)

    assert set(refused.value.errors) == {"title", "source", "reported_on", "description", "severity"}
    assert all(refused.value.errors.values())
    assert not (db.session.new or db.session.dirty or db.session.deleted)  # nothing left pending either
    db.session.rollback()
    assert (task.state, task.assignee_id, task.completed_by_id, task.data) == ("ready", None, None, None)
    assert instance.lock_version == lock_version
    assert (count(AuditEvent), count(Task)) == (audit_rows, task_rows)


def test_wrong_signature_password_is_refused_and_audited(user):
    instance = run_capa_to_approval(user)
    task = ready_task(instance.id, "qa_approval")

    with pytest.raises(SignatureRejected):
        tasks.complete_task(task.id, APPROVE, user("head"), password="not-my-password", now=T0 + HOUR)

    db.session.rollback()  # what follows was committed by the service, not left pending
    failed = db.session.scalars(db.select(AuditEvent).where(AuditEvent.action == "signature.failed")).all()
    assert [(e.actor_name, e.new) for e in failed] == [("Helen Head", {"locked": False})]
    assert count(Signature) == 0
    assert db.session.get(Task, task.id).state == "ready"
    assert db.session.get(ProcessInstance, instance.id).status == "running"


def test_five_wrong_signature_passwords_lock_the_account(app, user):
    instance = run_capa_to_approval(user)
    task_id = ready_task(instance.id, "qa_approval").id
    now = T0 + HOUR
    for attempt in range(1, 6):
        with pytest.raises(SignatureRejected) as refused:
            tasks.complete_task(task_id, APPROVE, user("head"), password=f"guess {attempt}", now=now)
    assert "locked" in refused.value.message

    lockout = timedelta(minutes=app.config["LOGIN_LOCKOUT_MINUTES"])
    assert user("head").locked_until == now + lockout
    with pytest.raises(SignatureRejected, match="locked"):
        tasks.complete_task(task_id, APPROVE, user("head"), password=demo.DEMO_PASSWORD, now=now)
    with pytest.raises(users.AccountLocked):
        users.authenticate("head", demo.DEMO_PASSWORD, max_failures=5, lockout=lockout, now=now)
    failed = db.session.scalars(db.select(AuditEvent.new).where(AuditEvent.action == "signature.failed")
                                .order_by(AuditEvent.id)).all()
    assert failed == [{"locked": False}] * 4 + [{"locked": True}]
    assert count(Signature) == 0

    tasks.complete_task(task_id, APPROVE, user("head"), password=demo.DEMO_PASSWORD, now=now + lockout)
    assert db.session.get(ProcessInstance, instance.id).status == "completed"
    assert count(Signature) == 1

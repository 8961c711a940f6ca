"""The hash-chained audit trail after a real CAPA run and under concurrent appends."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import event as sa_event

from app.extensions import db
from app.models import AuditEvent, AuditHead, Document
from app.services import users
from app.services.evidence import audit
from app.services.workflow import instances, tasks, timers
from tests.conftest import T0
from tests.integration.capa_steps import MEASURED, PLAN, STEPS, ready_task
from tests.integration.services.scenarios import approve, run_together

APPENDS_PER_THREAD = 20
PERIOD = timedelta(days=31)  # past the plan's 30-day verification period


def _events(action: str) -> list[AuditEvent]:
    return list(db.session.scalars(db.select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)))


def test_capa_run_leaves_a_complete_verifiable_chain(user):
    with pytest.raises(users.LoginFailed):
        users.authenticate("qa", "wrong password", max_failures=5, lockout=timedelta(minutes=15), now=T0)
    instance = instances.start_instance("capa", user("qa"), title="Burr on hub", now=T0)
    tasks.claim_task(ready_task(instance.id, "describe_problem").id, user("qa"), now=T0)
    for step_element, step_user, step_data in STEPS:
        tasks.complete_task(ready_task(instance.id, step_element).id, step_data, user(step_user), now=T0)
    timers.fire_due_timers(T0 + PERIOD)
    missed = {**MEASURED, "measured_value": 0.9}  # not met: back to the investigation
    tasks.complete_task(ready_task(instance.id, "effectiveness").id, missed, user("qa"), now=T0 + PERIOD)
    revised = {**STEPS[2][2], "root_cause": "Deburring tool not on the maintenance plan"}
    later = T0 + PERIOD
    plan = {**PLAN, "actions": [{**PLAN["actions"][0], "due_date": "2027-01-15"}]}  # the first due date is past
    for step_element, step_user, step_data in [(STEPS[2][0], STEPS[2][1], revised), (STEPS[3][0], STEPS[3][1], plan),
                                               *STEPS[4:]]:
        tasks.complete_task(ready_task(instance.id, step_element).id, step_data, user(step_user), now=later)
    timers.fire_due_timers(later + PERIOD)
    tasks.complete_task(ready_task(instance.id, "effectiveness").id, MEASURED, user("qa"), now=later + PERIOD)
    approve(instance.id, user, later + PERIOD)

    report = audit.verify()
    assert report.ok, report
    assert report.checked == db.session.scalar(db.select(db.func.count(AuditEvent.id)))
    assert [e.actor_name for e in _events("login.failed")] == ["Li Na"]
    assert [e.new["process"] for e in _events("instance.started")] == ["capa"]
    assert [e.new for e in _events("task.claimed")] == [{"assignee": "qa"}]
    rework = [e for e in _events("task.completed") if e.new["element"] == "investigation"][-1]
    assert rework.old["root_cause"] == "Worn deburring tool at station 3"
    assert rework.new["data"] == revised
    [signed] = _events("signature.applied")
    assert (signed.actor_name, signed.new["meaning"]) == ("Helen Head", "approved")
    document, issued = db.session.scalars(db.select(Document).order_by(Document.id)).all()
    rendered = [e.new for e in _events("task.automated") if e.new["element"] == "render_report"]
    assert [r["result"]["capa_report"]["sha256"] for r in rendered] == [document.sha256]
    assert signed.new["documents"] == [{"id": issued.id, "kind": "capa_report", "filename": issued.filename,
                                        "sha256": issued.sha256}]  # the report as issued with the signature


def test_concurrent_appends_keep_the_chain_contiguous_and_valid(app):
    def append_as(writer: str):
        def append() -> int:
            for n in range(APPENDS_PER_THREAD):
                audit.record(None, "test.appended", "writer", writer, new={"n": n}, at=T0)
                db.session.commit()
            return APPENDS_PER_THREAD
        return append

    db.session.commit()
    results = run_together(app, [append_as("left"), append_as("right")])

    assert results == [APPENDS_PER_THREAD, APPENDS_PER_THREAD]
    report = audit.verify()
    assert report.ok, report
    ids = db.session.scalars(db.select(AuditEvent.id).order_by(AuditEvent.id)).all()
    assert ids == list(range(1, 2 * APPENDS_PER_THREAD + 1))
    assert db.session.get(AuditHead, 1).last_id == ids[-1]
    for writer in ("left", "right"):
        written = db.session.scalars(db.select(AuditEvent.new).where(AuditEvent.object_id == writer)
                                     .order_by(AuditEvent.id)).all()
        assert written == [{"n": n} for n in range(APPENDS_PER_THREAD)]


@pytest.mark.postgres
def test_verify_while_another_transaction_appends_finds_the_chain_intact(app):
    """`flask audit verify` (and the scheduler's checkpoint) on a live PostgreSQL system: a transaction that
    appends and commits while the verification reads is neither a removed tail nor rows added past the head;
    its rows are verified the next time. (The kill -9 loop found the false alarm "rows after the last one were
    removed" under load.) On SQLite a verification holds the write lock, so nothing can append meanwhile."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("on SQLite the verification's transaction holds the write lock: no append commits meanwhile")
    for n in range(3):
        audit.record(None, "test.appended", "writer", "before", new={"n": n}, at=T0)
    db.session.commit()

    def append_once() -> None:
        audit.record(None, "test.appended", "writer", "during", at=T0)
        db.session.commit()

    reads, appended = [], []

    def append_while_reading(connection, cursor, statement, parameters, context, executemany) -> None:
        if "FROM audit_events" in statement and "ORDER BY audit_events.id" in statement:
            reads.append(statement)
            if len(reads) == 2:  # the read that finds no more rows: another session commits one right after it
                appended.append(run_together(app, [append_once]))

    sa_event.listen(db.engine, "after_cursor_execute", append_while_reading)
    try:
        report = audit.verify()
    finally:
        sa_event.remove(db.engine, "after_cursor_execute", append_while_reading)

    assert appended == [[None]]
    assert report.ok, report
    assert report.checked == 3
    later = audit.verify()
    assert later.ok and later.checked == 4


def test_verify_refuses_rows_added_past_the_head(app):
    for n in range(3):
        audit.record(None, "test.appended", "writer", "before", new={"n": n}, at=T0)
    db.session.commit()
    # Someone writes a row the chain's head does not know (the head row is left as it was).
    forged = audit.record(None, "test.forged", "writer", "forger", at=T0)
    db.session.flush()
    db.session.execute(db.update(AuditHead).where(AuditHead.id == 1).values(last_id=3, last_hash=forged.prev_hash))
    db.session.info.pop("qualiflow_audit_chain", None)
    db.session.commit()

    report = audit.verify()

    assert not report.ok
    assert (report.broken_id, report.problem) == (4, "rows were added past the chain's head")

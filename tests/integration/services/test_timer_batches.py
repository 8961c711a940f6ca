"""The timer tick fires its due instances in batches (one transaction, one flush per batch): every due timer fires
exactly once, and one instance that fails - in the engine or when the database refuses its rows - is rolled back
alone while the others of its batch fire, with the audit chain intact."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import AuditEvent, ProcessInstance, Task
from app.services.evidence import audit
from app.services.workflow import instances, timers
from tests.conftest import T0
from tests.integration.capa_steps import ready_task
from tests.integration.services.scenarios import deploy, diagram, open_incident, user_task

WAITING = diagram("waiting", f"""
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f0" sourceRef="start" targetRef="wait"/>
    <bpmn:intermediateCatchEvent id="wait">
      <bpmn:timerEventDefinition id="wait_timer">
        <bpmn:timeDuration>"PT1H"</bpmn:timeDuration>
      </bpmn:timerEventDefinition>
    </bpmn:intermediateCatchEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="wait" targetRef="check"/>
    {user_task('check', 'Check')}
    <bpmn:sequenceFlow id="f2" sourceRef="check" targetRef="end"/>
    <bpmn:endEvent id="end"/>
""", lane_nodes=["start", "wait", "check", "end"])


@pytest.fixture
def waiting(seeded, user):
    """Five instances waiting an hour on a timer, started a minute apart."""
    deploy(WAITING, "waiting.bpmn")
    started = [instances.start_instance("waiting", user("qa"), now=T0 + timedelta(minutes=n)).id for n in range(5)]
    db.session.commit()
    return started


def _fired(instance_id: int) -> int:
    return db.session.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "timer.fired", AuditEvent.instance_id == instance_id))


@pytest.mark.parametrize("batch", [1, 2, 25])
def test_every_due_timer_fires_once_whatever_the_batch(monkeypatch, waiting, batch):
    monkeypatch.setattr(timers, "BATCH", batch)

    report = timers.tick(T0 + timedelta(hours=2))

    assert (report.fired, report.failed) == (5, [])
    assert timers.tick(T0 + timedelta(hours=2)).fired == 0  # fired: nothing is due any more
    db.session.expire_all()
    for instance_id in waiting:
        assert _fired(instance_id) == 1
        assert ready_task(instance_id, "check") is not None
        assert db.session.get(ProcessInstance, instance_id).next_timer_at is None
    assert audit.verify().ok


def test_a_row_the_database_refuses_stops_only_its_instance(monkeypatch, waiting):
    """The refusal comes at the batch's flush: the batch is rolled back and fired again instance by instance."""
    monkeypatch.setattr(timers, "BATCH", 3)
    bad = waiting[1]
    real = timers.record_outcome

    def refused_for_bad(actor, instance, outcome, now):
        real(actor, instance, outcome, now)
        if instance.id == bad:  # a task row without its element: NOT NULL refuses it at the flush
            db.session.add(Task(instance_id=instance.id, spiff_id="x", element_id=None, kind="user", state="ready"))

    monkeypatch.setattr(timers, "record_outcome", refused_for_bad)

    report = timers.tick(T0 + timedelta(hours=2))

    assert (report.fired, report.failed) == (4, [bad])
    db.session.expire_all()
    assert db.session.get(ProcessInstance, bad).status == "incident"
    assert open_incident(bad) is not None and _fired(bad) == 0
    assert ready_task(bad, "check") is None
    for instance_id in waiting:
        if instance_id != bad:
            assert _fired(instance_id) == 1 and ready_task(instance_id, "check") is not None
    assert audit.verify().ok

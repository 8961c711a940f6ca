"""Incidents: a failing service task or script stops the instance at that task until an admin retries it."""
from __future__ import annotations

from datetime import timedelta

import pytest

from app.engine import validation
from app.exceptions import Conflict, InvalidBpmn, PermissionDenied
from app.extensions import db
from app.models import AuditEvent, Incident, OutboxMessage, ProcessInstance, Task
from app.services import demo, users
from app.services.workflow import instances, tasks
from tests.conftest import T0
from tests.integration.services.scenarios import count, deploy, diagram, open_incident, scripted, user_task

GHOST_NOTICE = diagram("ghost_notice", f"""
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="decide"/>
    {user_task('decide', 'Decide')}
    <bpmn:sequenceFlow id="f2" sourceRef="decide" targetRef="notify_ghosts"/>
    <bpmn:serviceTask id="notify_ghosts" name="Tell the ghosts">
      <bpmn:extensionElements>
        <spiffworkflow:serviceTaskOperator id="notify.email" resultVariable="ghost_notice">
          <spiffworkflow:parameters>
            <spiffworkflow:parameter id="to" type="list" value="['group:ghosts']"/>
            <spiffworkflow:parameter id="subject" type="str" value="'Decision: ' + escalation_action"/>
            <spiffworkflow:parameter id="body" type="str" value="'A decision was taken.'"/>
          </spiffworkflow:parameters>
        </spiffworkflow:serviceTaskOperator>
      </bpmn:extensionElements>
    </bpmn:serviceTask>
    <bpmn:sequenceFlow id="f3" sourceRef="notify_ghosts" targetRef="end"/>
    <bpmn:endEvent id="end"/>
""", lane_nodes=["start", "decide", "notify_ghosts", "end"])


@pytest.fixture
def stuck(user) -> ProcessInstance:
    """A ghost_notice instance whose user task was completed at T0 and whose e-mail task failed."""
    deploy(GHOST_NOTICE, "ghost_notice.bpmn")
    instance = instances.start_instance("ghost_notice", user("qa"), title="Ghost notice", now=T0)
    decide = db.session.scalar(db.select(Task).where(Task.instance_id == instance.id, Task.element_id == "decide"))
    tasks.complete_task(decide.id, {"escalation_action": "Stop shipment"}, user("qa"), now=T0)
    return instance


def test_failing_service_task_keeps_the_completion_and_raises_an_incident(stuck):
    db.session.rollback()  # everything below was committed by complete_task
    decide = db.session.scalar(db.select(Task).where(Task.instance_id == stuck.id, Task.element_id == "decide"))
    assert (decide.state, decide.completed_by.username, decide.data) == (
        "completed", "qa", {"escalation_action": "Stop shipment"})
    assert count(AuditEvent, AuditEvent.action == "task.completed", AuditEvent.object_id == decide.spiff_id) == 1

    assert db.session.get(ProcessInstance, stuck.id).status == "incident"
    incident = open_incident(stuck.id)
    assert incident.element_id == "notify_ghosts"
    assert "unknown group 'ghosts'" in incident.message
    assert "Traceback" not in incident.message and incident.traceback
    raised = db.session.scalar(db.select(AuditEvent).where(AuditEvent.action == "incident.raised"))
    assert raised.new["element"] == "notify_ghosts"
    assert [i.id for i in instances.list_incidents().items] == [incident.id]
    assert count(OutboxMessage, OutboxMessage.instance_id == stuck.id) == 0


@pytest.mark.parametrize("username", ["qa", "owner", "head", "auditor"])
def test_only_an_administrator_may_retry(stuck, user, username):
    with pytest.raises(PermissionDenied):
        instances.retry_instance(stuck.id, user(username), now=T0 + timedelta(hours=1))
    assert db.session.get(ProcessInstance, stuck.id).status == "incident"
    assert open_incident(stuck.id).retry_count == 0


def test_retry_after_the_fix_completes_the_step_once(stuck, user):
    instances.retry_instance(stuck.id, user("admin"), now=T0 + timedelta(hours=1))
    assert db.session.get(ProcessInstance, stuck.id).status == "incident"  # nothing fixed yet
    assert open_incident(stuck.id).retry_count == 1
    assert count(OutboxMessage, OutboxMessage.instance_id == stuck.id) == 0

    users.ensure_user("casper", full_name="Casper Ghost", password=demo.DEMO_PASSWORD,
                      email="casper@qualiflow.example", roles=["staff"], groups=["ghosts"])
    db.session.commit()
    fixed_at = T0 + timedelta(hours=2)
    instances.retry_instance(stuck.id, user("admin"), now=fixed_at)

    db.session.expire_all()
    assert db.session.get(ProcessInstance, stuck.id).status == "completed"
    [incident] = db.session.scalars(db.select(Incident).where(Incident.instance_id == stuck.id)).all()
    assert incident.resolved_at == fixed_at
    [message] = db.session.scalars(db.select(OutboxMessage).where(OutboxMessage.instance_id == stuck.id)).all()
    assert (message.recipients, message.subject) == ("casper@qualiflow.example", "Decision: Stop shipment")
    assert count(Task, Task.instance_id == stuck.id, Task.element_id == "notify_ghosts") == 1

    with pytest.raises(Conflict):
        instances.retry_instance(stuck.id, user("admin"), now=fixed_at + timedelta(hours=1))
    assert count(OutboxMessage, OutboxMessage.instance_id == stuck.id) == 1


def test_failing_script_raises_an_incident(user):
    deploy(scripted("x = 1/0"), "scripted.bpmn")

    instance = instances.start_instance("scripted", user("qa"), now=T0)

    assert instance.status == "incident"
    incident = open_incident(instance.id)
    assert incident.element_id == "compute"
    assert "division by zero" in incident.message


ESCAPES = [
    "__import__('os').system('touch {target}')",
    "open('{target}', 'w').write('owned')",
    "().__class__.__base__.__subclasses__()",
]


@pytest.mark.parametrize("escape", ESCAPES)
def test_script_escape_is_refused_at_deploy(user, tmp_path, escape):
    with pytest.raises(InvalidBpmn) as refused:
        deploy(scripted(escape.format(target=tmp_path / "escaped")), "scripted.bpmn")
    assert {(p.element_id, p.line) for p in refused.value.problems} == {("compute", 8)}
    assert all("refused by the script sandbox on its line 1" in p.message for p in refused.value.problems)


@pytest.mark.parametrize("escape", ESCAPES)
def test_script_escape_deployed_before_the_check_is_rejected_as_an_incident(user, tmp_path, escape, monkeypatch):
    target = tmp_path / "escaped"
    monkeypatch.setattr(validation, "_sandbox_problems", lambda source, mode: [])  # as deploys did before
    deploy(scripted(escape.format(target=target)), "scripted.bpmn")

    instance = instances.start_instance("scripted", user("qa"), now=T0)

    assert instance.status == "incident"
    incident = open_incident(instance.id)
    assert incident.element_id == "compute"
    assert "rejected" in incident.message.lower()
    assert not target.exists()


def test_cancelling_an_instance_with_an_incident_closes_the_incident(stuck, user):
    incident = open_incident(stuck.id)
    instances.cancel_instance(stuck.id, user("admin"), "Obsolete: the ghosts were never a real group")
    db.session.refresh(incident)
    assert stuck.status == "cancelled" and incident.resolved_at is not None

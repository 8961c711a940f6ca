"""The user-task properties evaluated over a task's own data: `assignee`, `dueDate` and `subject`."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.exceptions import InvalidBpmn
from app.extensions import db
from app.models import Incident, ProcessInstance, Task
from app.services.workflow import instances
from tests.conftest import T0
from tests.integration.services.scenarios import deploy, diagram


def _assigned(assignee: str, due: str, subject: str = "who") -> bytes:
    return diagram("assigned", f"""
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="work"/>
    <bpmn:userTask id="work" name="Work">
      <bpmn:extensionElements>
        <spiffworkflow:properties>
          <spiffworkflow:property name="formJsonSchemaFilename" value="capa_escalation.schema.json"/>
          <spiffworkflow:property name="dueIn" value="P3D"/>
          <spiffworkflow:property name="assignee" value="{assignee}"/>
          <spiffworkflow:property name="dueDate" value="{due}"/>
          <spiffworkflow:property name="subject" value="{subject}"/>
        </spiffworkflow:properties>
      </bpmn:extensionElements>
    </bpmn:userTask>
    <bpmn:sequenceFlow id="f2" sourceRef="work" targetRef="end"/>
    <bpmn:endEvent id="end"/>
""", lane_nodes=["start", "work", "end"])


def _work(instance_id: int) -> Task:
    return db.session.scalar(db.select(Task).where(Task.instance_id == instance_id, Task.element_id == "work"))


@pytest.mark.parametrize(("who", "due", "assignee", "due_at"), [
    ("prod", "2026-12-01", "prod", datetime(2026, 12, 1, 23, 59, 59, tzinfo=UTC)),  # a date: the end of that day
    ("prod", "2026-12-01T08:00:00+08:00", "prod", datetime(2026, 12, 1, 0, 0, tzinfo=UTC)),
    ("nobody", "2026-12-01T08:00:00", None, datetime(2026, 12, 1, 8, 0, tzinfo=UTC)),  # unknown: left to the lane
    ("auditor", "", None, T0.replace(day=26)),  # read-only: left to the lane; no dueDate: dueIn applies
])
def test_a_task_goes_to_the_named_user_and_is_due_when_its_data_says(user, who, due, assignee, due_at):
    deploy(_assigned("who", "due or None"), "assigned.bpmn")
    instance = instances.start_instance("assigned", user("qa"), {"who": who, "due": due}, title="Assigned", now=T0)
    task = _work(instance.id)
    assert (task.assignee.username if task.assignee else None, task.due_at, task.group_name) == (
        assignee, due_at, "qa")
    assert task.name == f"Work: {who}"


def test_a_failing_expression_holds_the_instance_with_an_incident(user):
    deploy(_assigned("missing['x']", "'2026-12-01'"), "assigned.bpmn")
    instance = instances.start_instance("assigned", user("qa"), title="Broken", now=T0)
    assert db.session.get(ProcessInstance, instance.id).status == "incident"
    assert _work(instance.id) is None  # no task nobody is meant to see
    incident = db.session.scalar(db.select(Incident).where(Incident.instance_id == instance.id))
    assert incident.element_id == "work" and incident.message.startswith("Task properties of work failed:")
    assert "missing" in incident.message


def test_the_lint_refuses_a_property_that_is_not_an_expression(user):
    with pytest.raises(InvalidBpmn) as refused:
        deploy(_assigned("action[", "'2026-12-01'"), "assigned.bpmn")
    assert any("assignee must be an expression" in p.message and p.element_id == "work"
               for p in refused.value.problems)

"""Engine trust: no instance stalls after a restart, one bad instance or value never stops the others."""
from __future__ import annotations

from datetime import timedelta

import pytest
from marshmallow import Schema

import handlers
from app.engine import runner
from app.extensions import db
from app.models import AuditEvent, ProcessInstance, Task
from app.services import users
from app.services.workflow import instances, tasks, timers
from handlers.base import Handler
from tests.conftest import T0, login
from tests.integration.capa_steps import STEPS, ready_task
from tests.integration.services.scenarios import NS, count, deploy, diagram, open_incident, user_task


def _restart() -> None:
    """Forget every parsed spec, as a new process (a deploy, a crash, a second worker) would."""
    runner._SPEC_CACHE.clear()


def _capa_to_action(user) -> ProcessInstance:
    """A CAPA whose single action task (inside the parallel multi-instance subprocess) is ready."""
    instance = instances.start_instance("capa", user("qa"), title="Burr on hub", now=T0)
    for element, username, data in STEPS[:-1]:
        tasks.complete_task(ready_task(instance.id, element).id, data, user(username), now=T0)
    return instance


# 1. A restart never strands an instance -------------------------------------------------------------------

def test_capa_action_completed_after_a_restart_moves_on_to_the_verification_period(seeded, user):
    instance = _capa_to_action(user)
    element, username, data = STEPS[-1]
    _restart()

    tasks.complete_task(ready_task(instance.id, element).id, data, user(username), now=T0)

    db.session.refresh(instance)
    assert instance.status == "running"
    assert open_incident(instance.id) is None
    assert instance.next_timer_at is not None  # the verification period runs
    _restart()
    timers.fire_due_timers(instance.next_timer_at + timedelta(minutes=1))
    assert ready_task(instance.id, "effectiveness") is not None


@pytest.fixture
def unwired(monkeypatch):
    """Parse specs as before the fix: no completion wiring for multi-instance children until one is created."""
    monkeypatch.setattr(runner, "as_restored", lambda spec, subprocess_specs: (spec, subprocess_specs))
    _restart()
    yield
    monkeypatch.undo()
    _restart()


def _strand(instance: ProcessInstance, user, monkeypatch) -> None:
    """Complete the action task in a 'new process' whose spec lacks the wiring: its parent never merges it."""
    monkeypatch.setattr(runner, "as_restored", lambda spec, subprocess_specs: (spec, subprocess_specs))
    _restart()
    element, username, data = STEPS[-1]
    tasks.complete_task(ready_task(instance.id, element).id, data, user(username), now=T0)
    monkeypatch.undo()
    _restart()


def test_an_instance_that_stalls_becomes_an_incident_naming_the_element(seeded, user, monkeypatch):
    instance = _capa_to_action(user)

    _strand(instance, user, monkeypatch)

    db.session.refresh(instance)
    assert instance.status == "incident"
    incident = open_incident(instance.id)
    assert incident.element_id == "implement_actions"
    assert "Stalled at implement_actions" in incident.message
    assert count(AuditEvent, AuditEvent.instance_id == instance.id, AuditEvent.action == "incident.raised") == 1


def test_retry_merges_what_a_stranded_multi_instance_missed(seeded, user, monkeypatch):
    instance = _capa_to_action(user)
    _strand(instance, user, monkeypatch)

    instances.retry_instance(instance.id, user("admin"), now=T0 + timedelta(hours=1))

    db.session.refresh(instance)
    assert instance.status == "running"
    assert open_incident(instance.id) is None
    assert instance.next_timer_at is not None


def test_check_command_finds_instances_stalled_before_the_detector(seeded, user, monkeypatch, runner_cli):
    instance = _capa_to_action(user)
    monkeypatch.setattr(runner, "_stuck", lambda *args: None)  # as before the detector: a silent stall
    _strand(instance, user, monkeypatch)
    db.session.refresh(instance)
    assert instance.status == "running"

    result = runner_cli.invoke(args=["instances", "check"])

    assert result.exit_code == 1
    assert f"instance {instance.id} (capa" in result.output
    assert "stalled at implement_actions" in result.output
    db.session.expire_all()
    assert db.session.get(ProcessInstance, instance.id).status == "incident"
    again = runner_cli.invoke(args=["instances", "check"])
    assert again.exit_code == 0, again.output
    assert "0 stalled" in again.output


def test_incidents_page_checks_running_instances(seeded, user, monkeypatch, client):
    instance = _capa_to_action(user)
    monkeypatch.setattr(runner, "_stuck", lambda *args: None)
    _strand(instance, user, monkeypatch)
    login(client, "admin")

    page = client.post("/admin/incidents/check", follow_redirects=True).get_data(as_text=True)

    assert "1 of" in page and "had stalled" in page
    assert "Stalled at implement_actions" in page
    client.post("/logout")
    login(client, "qa")
    assert client.post("/admin/incidents/check").status_code == 403


@pytest.fixture
def runner_cli(app):
    return app.test_cli_runner()


# 2. One bad instance never stops the others ---------------------------------------------------------------

def _scripted(script: str, before: str = "") -> bytes:
    return diagram("scripted", f"""
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f0" sourceRef="start" targetRef="{'wait' if before else 'compute'}"/>
    {before}
    <bpmn:scriptTask id="compute" name="Compute"><bpmn:script>{script}</bpmn:script></bpmn:scriptTask>
    <bpmn:sequenceFlow id="f2" sourceRef="compute" targetRef="check"/>
    {user_task('check', 'Check')}
    <bpmn:sequenceFlow id="f3" sourceRef="check" targetRef="end"/>
    <bpmn:endEvent id="end"/>
""", lane_nodes=["start", "compute", "check", "end"])


WAIT_AN_HOUR = """<bpmn:intermediateCatchEvent id="wait">
      <bpmn:timerEventDefinition id="wait_timer">
        <bpmn:timeDuration>"PT1H"</bpmn:timeDuration>
      </bpmn:timerEventDefinition>
    </bpmn:intermediateCatchEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="wait" targetRef="compute"/>"""

UNSTORABLE = {
    "tuple keys": "v = {(1, 2): 3}",
    "generator": "v = (n for n in [1, 2])",
    "exception": "v = ValueError('boom')",
    "huge int": "v = 10 ** 5000",
    "NaN": "v = float('nan')",
    "Infinity": "v = [1, float('inf')]",
}


@pytest.mark.parametrize("script", UNSTORABLE.values(), ids=UNSTORABLE.keys())
def test_a_value_task_data_cannot_hold_is_an_incident_at_its_element(seeded, user, script):
    deploy(_scripted(script), "scripted.bpmn")

    instance = instances.start_instance("scripted", user("qa"), now=T0)  # no exception: an incident

    assert instance.status == "incident"
    incident = open_incident(instance.id)
    assert incident.element_id == "compute"
    assert '"v"' in incident.message or "v " in incident.message
    db.session.expire_all()
    stored = db.session.get(ProcessInstance, instance.id)
    assert "v" not in (stored.data or {})
    assert count(Task, Task.instance_id == instance.id, Task.element_id == "check") == 0


def test_handler_result_json_cannot_hold_is_an_incident_not_a_server_error(seeded, user, monkeypatch):
    class NoParams(Schema):
        pass

    monkeypatch.setitem(handlers.REGISTRY, "test.not_a_number",
                        Handler(lambda ctx, params: {"ratio": float("nan")}, NoParams, "returns NaN"))
    deploy(diagram("nan_handler", """
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="measure"/>
    <bpmn:serviceTask id="measure" name="Measure">
      <bpmn:extensionElements>
        <spiffworkflow:serviceTaskOperator id="test.not_a_number" resultVariable="measured">
          <spiffworkflow:parameters/>
        </spiffworkflow:serviceTaskOperator>
      </bpmn:extensionElements>
    </bpmn:serviceTask>
    <bpmn:sequenceFlow id="f2" sourceRef="measure" targetRef="end"/>
    <bpmn:endEvent id="end"/>
""", lane_nodes=["start", "measure", "end"]), "nan_handler.bpmn")

    instance = instances.start_instance("nan_handler", user("qa"), now=T0)

    assert instance.status == "incident"
    incident = open_incident(instance.id)
    assert incident.element_id == "measure"
    assert "measured" in incident.message and "nan" in incident.message.lower()


def _bearer(username: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {users.issue_token(username)}"}


def test_the_api_refuses_nan_in_submitted_data_with_422(seeded, user, client):
    deploy(_scripted("v = 1"), "scripted.bpmn")
    instance = instances.start_instance("scripted", user("qa"), now=T0)
    task = ready_task(instance.id, "check")

    response = client.post(f"/api/v1/tasks/{task.id}/complete", data='{"data": {"escalation_action": NaN}}',
                           content_type="application/json", headers=_bearer("qa"))

    assert response.status_code in (400, 422), response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Task, task.id).state == "ready"


def test_a_failing_timer_step_never_stops_the_other_instances(seeded, user, monkeypatch):
    deploy(_scripted("v = 1", before=WAIT_AN_HOUR), "scripted.bpmn")
    first = instances.start_instance("scripted", user("qa"), now=T0)
    second = instances.start_instance("scripted", user("qa"), now=T0)
    real = runner.fire_timers

    def broken_for_first(instance, ctx, **kwargs):
        if instance.id == first.id:
            raise RuntimeError("the database refused the row")
        return real(instance, ctx, **kwargs)

    monkeypatch.setattr("app.engine.fire_timers", broken_for_first)

    report = timers.tick(T0 + timedelta(hours=2))

    assert report.fired == 1 and report.failed == [first.id]
    db.session.expire_all()
    assert db.session.get(ProcessInstance, first.id).status == "incident"
    assert "the database refused the row" in open_incident(first.id).message
    assert ready_task(second.id, "check") is not None
    assert timers.tick(T0 + timedelta(hours=3)).fired == 0  # the failed one is not retried by every tick


def test_a_timer_leading_to_an_unstorable_value_does_not_block_later_timers(seeded, user):
    deploy(_scripted("v = float('nan')", before=WAIT_AN_HOUR), "scripted.bpmn")
    bad = instances.start_instance("scripted", user("qa"), now=T0)
    deploy(diagram("later", f"""
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f0" sourceRef="start" targetRef="wait"/>
    {WAIT_AN_HOUR.replace('targetRef="compute"', 'targetRef="check"')}
    {user_task('check', 'Check')}
    <bpmn:sequenceFlow id="f3" sourceRef="check" targetRef="end"/>
    <bpmn:endEvent id="end"/>
""", lane_nodes=["start", "check", "end"]), "later.bpmn")
    good = instances.start_instance("later", user("qa"), now=T0 + timedelta(minutes=1))

    fired = timers.fire_due_timers(T0 + timedelta(hours=2))

    assert fired == 2
    db.session.expire_all()
    assert db.session.get(ProcessInstance, bad.id).status == "incident"
    assert ready_task(good.id, "check") is not None


SEQUENTIAL_REVIEW = diagram("sequential_review", f"""
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="prepare"/>
    <bpmn:scriptTask id="prepare" name="Prepare"><bpmn:script>items = ["a", "b"]</bpmn:script></bpmn:scriptTask>
    <bpmn:sequenceFlow id="f2" sourceRef="prepare" targetRef="review"/>
    {user_task('review', 'Review').replace('</bpmn:userTask>', '''
      <bpmn:multiInstanceLoopCharacteristics isSequential="true">
        <bpmn:loopDataInputRef>items</bpmn:loopDataInputRef>
        <bpmn:loopDataOutputRef>results</bpmn:loopDataOutputRef>
        <bpmn:inputDataItem id="item"/>
        <bpmn:outputDataItem id="result"/>
      </bpmn:multiInstanceLoopCharacteristics>
    </bpmn:userTask>''')}
    <bpmn:sequenceFlow id="f3" sourceRef="review" targetRef="end"/>
    <bpmn:endEvent id="end"/>
""", lane_nodes=["start", "prepare", "review", "end"])


def test_an_exception_while_completing_a_task_is_an_incident_and_a_retry_completes_it(seeded, user, client):
    deploy(SEQUENTIAL_REVIEW, "sequential_review.bpmn")
    instance = instances.start_instance("sequential_review", user("qa"), now=T0)
    task = ready_task(instance.id, "review")

    # The child has no output item "result": SpiffWorkflow raises while merging it into the loop.
    response = client.post(f"/api/v1/tasks/{task.id}/complete", json={"data": {"escalation_action": "ok"}},
                           headers=_bearer("qa"))

    assert response.status_code < 500, response.get_data(as_text=True)
    db.session.expire_all()
    stored = db.session.get(ProcessInstance, instance.id)
    assert stored.status == "incident"
    incident = open_incident(instance.id)
    assert incident.element_id == "review"
    assert "Expected an output item" in incident.message
    assert count(Task, Task.instance_id == instance.id, Task.state == "ready") == 0


def _event_gateway(process_id: str) -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions {NS} id="{process_id}_definitions" targetNamespace="https://qualiflow.example/tests">
  <bpmn:message id="reply_message" name="reply"/>
  <bpmn:process id="{process_id}" name="{process_id}" isExecutable="true">
    <bpmn:laneSet id="lanes"><bpmn:lane id="lane_qa" name="qa">
      <bpmn:flowNodeRef>start</bpmn:flowNodeRef><bpmn:flowNodeRef>chase</bpmn:flowNodeRef>
    </bpmn:lane></bpmn:laneSet>
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="await_reply"/>
    <bpmn:eventBasedGateway id="await_reply"/>
    <bpmn:sequenceFlow id="f2" sourceRef="await_reply" targetRef="reply"/>
    <bpmn:sequenceFlow id="f3" sourceRef="await_reply" targetRef="no_reply"/>
    <bpmn:intermediateCatchEvent id="reply"><bpmn:messageEventDefinition id="reply_def" messageRef="reply_message"/>
    </bpmn:intermediateCatchEvent>
    <bpmn:intermediateCatchEvent id="no_reply">
      <bpmn:timerEventDefinition id="no_reply_timer">
        <bpmn:timeDuration>"P2D"</bpmn:timeDuration>
      </bpmn:timerEventDefinition>
    </bpmn:intermediateCatchEvent>
    <bpmn:sequenceFlow id="f4" sourceRef="reply" targetRef="done"/>
    <bpmn:endEvent id="done"/>
    <bpmn:sequenceFlow id="f5" sourceRef="no_reply" targetRef="chase"/>
    {user_task('chase', 'Chase the supplier')}
    <bpmn:sequenceFlow id="f6" sourceRef="chase" targetRef="end"/>
    <bpmn:endEvent id="end"/>
  </bpmn:process>
</bpmn:definitions>""".encode()


def test_a_timer_behind_an_event_based_gateway_is_scheduled_and_fires(seeded, user):
    deploy(_event_gateway("await_supplier"), "await_supplier.bpmn")

    instance = instances.start_instance("await_supplier", user("qa"), now=T0)

    assert instance.status == "running"
    assert instance.next_timer_at == T0 + timedelta(days=2)
    _restart()
    assert timers.fire_due_timers(T0 + timedelta(days=2, minutes=1)) == 1
    assert ready_task(instance.id, "chase") is not None

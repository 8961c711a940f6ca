"""A user task looped 300 times: past SpiffWorkflow's depth limit (~250 passes) the engine still offers each pass."""
from __future__ import annotations

from app.extensions import db
from app.models import Incident, ProcessInstance, Task
from app.services.workflow import instances, tasks
from tests.conftest import T0
from tests.integration.services.scenarios import count, deploy, diagram, user_task

LOOPS = 300

INSPECTION_LOOP = diagram("inspection_loop", f"""
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="init"/>
    <bpmn:scriptTask id="init" name="Reset counter"><bpmn:script>done = 0</bpmn:script></bpmn:scriptTask>
    <bpmn:sequenceFlow id="f2" sourceRef="init" targetRef="again"/>
    <bpmn:exclusiveGateway id="again"/>
    <bpmn:sequenceFlow id="f3" sourceRef="again" targetRef="inspect"/>
    {user_task('inspect', 'Inspect sample')}
    <bpmn:sequenceFlow id="f4" sourceRef="inspect" targetRef="count"/>
    <bpmn:scriptTask id="count" name="Count"><bpmn:script>done += 1</bpmn:script></bpmn:scriptTask>
    <bpmn:sequenceFlow id="f5" sourceRef="count" targetRef="more"/>
    <bpmn:exclusiveGateway id="more" default="finish"/>
    <bpmn:sequenceFlow id="repeat" sourceRef="more" targetRef="again">
      <bpmn:conditionExpression>done &lt; loops</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="finish" sourceRef="more" targetRef="end"/>
    <bpmn:endEvent id="end"/>
""", lane_nodes=["start", "init", "again", "inspect", "count", "more", "end"])


def _ready_inspections(instance_id: int) -> list[Task]:
    return list(db.session.scalars(db.select(Task).where(Task.instance_id == instance_id, Task.state == "ready")))


def test_three_hundred_passes_each_offer_the_next_task_and_state_stays_small(user):
    deploy(INSPECTION_LOOP, "inspection_loop.bpmn")
    qa = user("qa")
    instance = instances.start_instance("inspection_loop", qa, {"loops": LOOPS}, title="Long loop", now=T0)
    state_sizes = {}
    for done in range(1, LOOPS + 1):
        [task] = _ready_inspections(instance.id)
        assert task.element_id == "inspect"
        tasks.complete_task(task.id, {"escalation_action": f"sample {done} passed"}, qa, now=T0)
        state_sizes[done] = len(instance.state_json)
        if done < LOOPS:
            assert instance.status == "running", f"instance reported {instance.status} after pass {done}"

    db.session.expire_all()
    instance = db.session.get(ProcessInstance, instance.id)
    assert instance.status == "completed"
    assert instance.data["done"] == LOOPS
    assert _ready_inspections(instance.id) == []
    assert count(Incident) == 0
    completed = count(Task, Task.instance_id == instance.id, Task.element_id == "inspect", Task.state == "completed")
    assert completed == LOOPS
    last = db.session.scalar(db.select(Task).where(Task.instance_id == instance.id).order_by(Task.id.desc()))
    assert last.data == {"escalation_action": f"sample {LOOPS} passed"}
    assert state_sizes[LOOPS] < 2 * state_sizes[10]
    assert state_sizes[LOOPS - 1] < 2 * state_sizes[10]

"""Script limits through the engine: a runaway script or condition is an incident at its element, with the sandbox's
reason, and the web keeps answering while it runs."""
from __future__ import annotations

import threading
import time

import pytest

from app.extensions import db
from app.services.workflow import instances
from tests.conftest import T0, login
from tests.integration.services.scenarios import deploy, diagram, open_incident, scripted

COLLIDING_SET = "s = set(range(0, 60000 * (2 ** 61 - 1), 2 ** 61 - 1))"  # one C call of well over ten seconds


def _gated(condition: str) -> bytes:
    return diagram("gated", f"""
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="gateway"/>
    <bpmn:exclusiveGateway id="gateway" default="f_low"/>
    <bpmn:sequenceFlow id="f_high" sourceRef="gateway" targetRef="end">
      <bpmn:conditionExpression>{condition}</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="f_low" sourceRef="gateway" targetRef="end"/>
    <bpmn:endEvent id="end"/>
""")


@pytest.mark.parametrize(("condition", "reason"), [
    ("len(str([[0] * 10 ** 6] * 300)) &gt; 0", "limit"),
    ("missing &gt; 1", "NameError: name 'missing' is not defined"),
    ("len(set(range(0, 20000 * (2 ** 61 - 1), 2 ** 61 - 1))) &gt; 0", "time limit"),
])
def test_a_failing_condition_is_an_incident_at_the_gateway_with_the_reason(app, user, condition, reason):
    app.config["SCRIPT_TIME_LIMIT"] = 0.3
    deploy(_gated(condition), "gated.bpmn")

    instance = instances.start_instance("gated", user("qa"), now=T0)

    assert instance.status == "incident"
    incident = open_incident(instance.id)
    assert incident.element_id == "gateway"
    assert reason in incident.message


def test_a_script_over_the_memory_limit_is_an_incident(app, user):
    app.config["SCRIPT_MEMORY_LIMIT_MB"] = 128
    deploy(scripted("rows = []\nwhile True:\n    rows.append('x' * 10 ** 6)"), "scripted.bpmn")

    instance = instances.start_instance("scripted", user("qa"), now=T0)

    incident = open_incident(instance.id)
    assert incident.element_id == "compute"
    assert "exceeding the 128 MB memory limit" in incident.message


def test_pages_answer_while_a_c_level_script_runs(app, client, user):
    # A limit long enough for ten pages on a loaded CI machine; the script outlasts it, so it still ends as an incident
    app.config["SCRIPT_TIME_LIMIT"] = 5.0
    deploy(scripted(COLLIDING_SET), "scripted.bpmn")
    login(client, "qa")
    db.session.rollback()  # SQLite: this session's open transaction would hold the write lock the engine needs
    outcome: list[str] = []
    cpu_used: list[float] = []

    def start() -> None:
        with app.app_context():
            started = time.thread_time()
            instance = instances.start_instance("scripted", user("qa"), now=T0)
            cpu_used.append(time.thread_time() - started)
            outcome.append(instance.status)

    engine = threading.Thread(target=start)
    engine.start()
    for _ in range(10):
        assert client.get("/").status_code == 200
        assert not outcome, "the page waited for the script"
    outcome.append("10 pages served")
    engine.join()
    assert outcome == ["10 pages served", "incident"]
    assert cpu_used[0] < 0.5  # the script's seconds of C-level work ran in a worker process

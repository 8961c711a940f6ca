"""Deploying diagrams from other modelers: call activities pinned to callee versions, DMN decision tables deployed
with their diagram, and a process id that already belongs to a different procedure."""
from __future__ import annotations

from pathlib import Path

import pytest

from app.engine import runner
from app.exceptions import InvalidBpmn, ProcessIdTaken
from app.extensions import db
from app.models import ProcessInstance
from app.services import users
from app.services.workflow import instances, processes, tasks
from tests.conftest import ROOT, T0
from tests.integration.capa_steps import PROBLEM, ready_task
from tests.integration.diagrams import CALLER, DIFFERENT_CAPA, callee
from tests.integration.releases import deploy_effective
from tests.integration.services.scenarios import diagram, user_task

ESCALATION = {"escalation_action": "Looked at it"}


def admin():
    return users.get_by_username("admin")


def complete(instance_id: int, element: str, user, data: dict) -> None:
    tasks.complete_task(ready_task(instance_id, element).id, data, user, now=T0)
    runner._SPEC_CACHE.clear()  # every step as a new process would run it


# --- call activities -----------------------------------------------------------------------------------------

def test_a_call_to_a_process_that_is_not_deployed_is_refused_by_its_call_activity(seeded):
    with pytest.raises(InvalidBpmn) as caught:
        processes.deploy_file(CALLER, "inspection_round.bpmn", admin(), "first issue")
    (problem,) = caught.value.problems
    assert problem.element_id == "run_checklist" and problem.line
    assert "calls process checklist, which is not deployed: deploy checklist first" in problem.message


def test_a_caller_runs_the_callee_version_it_was_deployed_against(seeded, user):
    first_callee = deploy_effective(callee("v1"), "checklist.bpmn").version
    caller = deploy_effective(CALLER, "inspection_round.bpmn").version
    assert [(c.definition.key, c.version) for c in caller.callees] == [("checklist", 1)]
    running = instances.start_instance("inspection_round", user("qa"), now=T0)
    runner._SPEC_CACHE.clear()

    deploy_effective(callee("v2"), "checklist.bpmn")
    complete(running.id, "prepare", user("qa"), ESCALATION)
    started_after = instances.start_instance("inspection_round", user("qa"), now=T0)
    complete(started_after.id, "prepare", user("qa"), ESCALATION)

    for instance_id in (running.id, started_after.id):
        instance = db.session.get(ProcessInstance, instance_id)
        assert instance.data["result"] == "v1"
        assert ready_task(instance_id, "review") is not None
    assert first_callee.version == 1

    redeployed = processes.deploy_file(CALLER, "inspection_round.bpmn", admin(), "new checklist")  # the new callee
    assert redeployed.created and [c.version for c in redeployed.version.callees] == [2]
    assert processes.deploy_file(CALLER, "inspection_round.bpmn", admin(), "again").created is False


def test_a_user_task_of_the_callee_opens_with_the_form_frozen_from_the_callee_version(seeded, user):
    checklist = diagram("checklist", f"""
    <bpmn:startEvent id="c_start"/>
    <bpmn:sequenceFlow id="c1" sourceRef="c_start" targetRef="c_check"/>
    {user_task('c_check', 'Tick the checklist', form='capa_problem.schema.json')}
    <bpmn:sequenceFlow id="c2" sourceRef="c_check" targetRef="c_end"/>
    <bpmn:endEvent id="c_end"/>
""", lane_nodes=["c_start", "c_check", "c_end"])
    deploy_effective(checklist, "checklist.bpmn")
    assert "capa_problem.schema.json" in deploy_effective(CALLER, "inspection_round.bpmn").version.forms
    instance = instances.start_instance("inspection_round", user("qa"), now=T0)

    complete(instance.id, "prepare", user("qa"), ESCALATION)

    row = ready_task(instance.id, "c_check")
    assert (row.form, row.group_name) == ("capa_problem.schema.json", "qa")
    schema, _ui = tasks.task_form(row)
    assert schema["title"] == "CAPA: problem description"
    complete(instance.id, "c_check", user("qa"), PROBLEM)
    assert ready_task(instance.id, "review") is not None


def test_a_directory_deploys_callees_before_their_callers(seeded, tmp_path: Path):
    (tmp_path / "a_round.bpmn").write_bytes(CALLER)
    (tmp_path / "z_checklist.bpmn").write_bytes(callee("v1"))

    results = processes.deploy_directory(tmp_path, None, "import")

    assert [r.version.definition.key for r in results] == ["checklist", "inspection_round"]
    assert results[1].version.callees == [results[0].version]


# --- DMN -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("severity", "probability", "rating"), [
    ("major", None, "medium"),
    ("major", "frequent", "high"),
    ("minor", "rare", "low"),
    ("critical", "rare", "medium"),
])
def test_the_capa_risk_rating_comes_from_its_decision_table_with_cold_caches(seeded, user, severity, probability,
                                                                               rating):
    version = processes.get_version("capa")
    assert set(version.decisions) == {"capa_risk.dmn"}
    instance = instances.start_instance("capa", user("qa"), title="Burr on hub", now=T0)
    runner._SPEC_CACHE.clear()

    problem = {**PROBLEM, "severity": severity, **({"probability": probability} if probability else {})}
    complete(instance.id, "describe_problem", user("qa"), problem)

    stored = db.session.get(ProcessInstance, instance.id)
    assert stored.data["risk_rating"] == rating
    assert ready_task(instance.id, "containment") is not None


def test_a_bpmn_deployed_alone_keeps_the_decision_tables_of_its_latest_version(seeded):
    data = (ROOT / "processes" / "capa.bpmn").read_bytes().replace(b'name="Rate the risk', b'name="Rate risk')

    result = processes.deploy_file(data, "capa.bpmn", admin(), "shorter name")

    assert result.created and set(result.version.decisions) == {"capa_risk.dmn"}


def test_a_business_rule_task_without_its_dmn_file_is_refused(seeded):
    data = (ROOT / "processes" / "capa.bpmn").read_bytes().replace(b'<bpmn:process id="capa"',
                                                                   b'<bpmn:process id="capa_copy"')
    with pytest.raises(InvalidBpmn) as caught:
        processes.deploy_file(data, "capa_copy.bpmn", admin(), "a copy")
    assert any(p.element_id == "rate_risk" and "deploy the .dmn file together with the .bpmn" in p.message
               for p in caught.value.problems)

    dmn = (ROOT / "processes" / "capa_risk.dmn").read_bytes()
    result = processes.deploy_file(data, "capa_copy.bpmn", admin(), "a copy", decisions={"capa_risk.dmn": dmn})
    assert set(result.version.decisions) == {"capa_risk.dmn"}


# --- process id collisions -----------------------------------------------------------------------------------

def test_a_different_procedure_under_a_taken_process_id_needs_a_confirmation(seeded):
    stranger = DIFFERENT_CAPA
    latest = processes.get_version("capa").version

    with pytest.raises(ProcessIdTaken) as caught:
        processes.deploy_file(stranger, "capa.bpmn", admin(), "a stranger")
    assert caught.value.status == 409 and "--replace" in caught.value.message
    assert processes.get_version("capa").version == latest

    replaced = processes.deploy_file(stranger, "capa.bpmn", admin(), "replaces the old CAPA", replace=True)
    assert replaced.version.version == latest + 1


def test_a_diagram_keeping_most_element_ids_is_a_new_version_without_confirmation(seeded):
    data = (ROOT / "processes" / "capa.bpmn").read_bytes().replace(b'name="Describe the problem"',
                                                                   b'name="Describe it"')
    assert processes.deploy_file(data, "capa.bpmn", admin(), "renamed a step").created

"""The studio service: drafts, validation, deploying a draft as a new version, the diff and instance migration."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from app.exceptions import Conflict, FormInvalid, InvalidBpmn, NotFound, PermissionDenied, ProcessIdTaken
from app.extensions import db
from app.models import AuditEvent, ProcessInstance, Task
from app.services.studio import studio
from app.services.workflow import instances, processes, tasks
from tests.conftest import T0
from tests.integration.capa_steps import PLAN, STEPS, ready_task
from tests.integration.diagrams import (
    CALLER,
    CAPA_XML,
    DIFFERENT_CAPA,
    LONGER_DUE_IN,
    MISSING_FORM_FILE,
    callee,
    capa_variant,
    line_of,
)
from tests.integration.releases import approve
from tests.integration.studio.capa_versions import WITHOUT_DESCRIBE, capa_v2


def deploy_variant(user, xml: str, note: str = "studio test") -> int:
    """Deploy a diagram through a studio draft as the process owner and have QA approve it (instances move only
    onto approved versions); return the new version number."""
    draft = studio.create_draft(user("owner"), xml.encode())
    return approve(studio.deploy_draft(user("owner"), draft.id, note)).version


def start_capa(user, steps: int = 0):
    instance = instances.start_instance("capa", user("qa"), title="Burr on hub", now=T0)
    for element, username, data in STEPS[:steps]:
        tasks.complete_task(ready_task(instance.id, element).id, data, user(username), now=T0)
    return instance


def audit_events(action: str) -> list[AuditEvent]:
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)))


def test_a_draft_round_trips_and_takes_key_and_name_from_its_process(seeded, user):
    base = processes.get_version("capa", 1)
    draft = studio.create_draft(user("owner"), CAPA_XML.encode(), base.id)
    assert (draft.key, draft.name, draft.base_version.version) == ("capa", "CAPA (corrective and preventive action)", 1)
    renamed = CAPA_XML.replace('name="CAPA (corrective and preventive action)"', 'name="CAPA v2 draft"')
    studio.save_draft(user("owner"), draft.id, renamed.encode())
    assert studio.get_draft(user("admin"), draft.id).bpmn_xml == renamed
    assert studio.get_draft(user("admin"), draft.id).name == "CAPA v2 draft"
    catalogue = {p["key"]: p for p in studio.process_catalogue(user("owner"))["processes"]}
    assert [(d["id"], d["name"], d["base_version"]) for d in catalogue["capa"]["drafts"]] == [
        (draft.id, "CAPA v2 draft", 1)]
    studio.delete_draft(user("owner"), draft.id)
    with pytest.raises(NotFound):
        studio.get_draft(user("owner"), draft.id)
    assert [e.object_id for e in audit_events("draft.deleted")] == [str(draft.id)]


@pytest.mark.parametrize("xml, message", [
    ('<?xml version="1.0"?>\n<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>\n<x>&e;</x>\n',
     "DOCTYPE and entities are not allowed"),
    ("<bpmn:definitions", "malformed XML"),
    (CAPA_XML.replace('isExecutable="true"', 'isExecutable="false"'), "exactly one executable process"),
], ids=["xxe", "malformed", "no-executable-process"])
def test_unsafe_or_unusable_xml_is_no_draft(seeded, user, xml, message):
    with pytest.raises(InvalidBpmn) as refused:
        studio.create_draft(user("owner"), xml.encode())
    assert message in refused.value.problems[0].message
    assert studio.process_catalogue(user("owner"))["processes"][0]["drafts"] == []


def test_validate_lists_a_missing_form_at_its_element_and_line(seeded, user):
    xml = capa_variant(MISSING_FORM_FILE)
    result = studio.validate_diagram(user("owner"), xml.encode())
    assert result["valid"] is False
    assert {"message": "form capa_nowhere.schema.json does not exist", "element_id": "containment",
            "line": line_of(xml, 'id="containment"'), "severity": "error"} in result["problems"]


def test_validate_accepts_the_shipped_diagram_with_its_warnings(seeded, user):
    result = studio.validate_diagram(user("owner"), CAPA_XML.encode())
    assert result["valid"] is True
    assert all(p["severity"] == "warning" for p in result["problems"])


def test_deploying_a_draft_makes_version_2_and_running_instances_stay_on_1(seeded, user):
    old = start_capa(user)
    draft = studio.create_draft(user("owner"), capa_variant(LONGER_DUE_IN).encode())
    version = studio.deploy_draft(user("owner"), draft.id, "Describe the problem within 9 days")
    assert (version.version, version.change_note, version.author.username) == (
        2, "Describe the problem within 9 days", "owner")
    assert studio.get_draft(user("owner"), draft.id).deployed_version.version == 2
    assert db.session.get(ProcessInstance, old.id).version.version == 1
    assert instances.start_instance("capa", user("qa"), now=T0).version.version == 1  # pending: not used yet
    approve(version)
    assert instances.start_instance("capa", user("qa"), now=T0).version.version == 2
    [deployed] = [e for e in audit_events("process.deployed") if e.new["version"] == 2]
    assert deployed.new["note"] == "Describe the problem within 9 days" and deployed.new["draft"] == draft.id
    assert deployed.actor_name == user("owner").full_name
    with pytest.raises(Conflict, match="read-only"):  # a deployed draft is history
        studio.save_draft(user("owner"), draft.id, CAPA_XML.encode())


@pytest.mark.parametrize("note", ["", "   ", None])
def test_deploying_needs_a_change_note(seeded, user, note):
    draft = studio.create_draft(user("owner"), capa_variant(LONGER_DUE_IN).encode())
    with pytest.raises(FormInvalid) as refused:
        studio.deploy_draft(user("owner"), draft.id, note)
    assert "change_note" in refused.value.errors
    assert [v.version for v in processes.get_definition("capa").versions] == [1]


def test_an_identical_draft_is_not_deployed_again(seeded, user):
    draft = studio.create_draft(user("owner"), CAPA_XML.encode())
    with pytest.raises(Conflict, match="identical to version 1"):
        studio.deploy_draft(user("owner"), draft.id, "no change")
    assert studio.get_draft(user("owner"), draft.id).deployed_version is None


def test_a_draft_is_derived_from_the_version_it_is_based_on_whatever_it_keeps(seeded, user):
    base = processes.get_version("capa")
    draft = studio.create_draft(user("owner"), DIFFERENT_CAPA, base_version_id=base.id)
    assert studio.deploy_draft(user("owner"), draft.id, "rebuilt from scratch").version == 2


def test_an_imported_diagram_under_a_taken_process_id_needs_the_replace_confirmation(seeded, user):
    draft = studio.create_draft(user("owner"), DIFFERENT_CAPA)
    with pytest.raises(ProcessIdTaken, match="confirm that it replaces capa"):
        studio.deploy_draft(user("owner"), draft.id, "imported from Camunda Modeler")
    version = studio.deploy_draft(user("owner"), draft.id, "imported from Camunda Modeler", replace=True)
    assert version.version == 2
    [deployed] = [e for e in audit_events("process.deployed") if e.new["version"] == 2]
    assert deployed.new["replaced"] is True


def test_a_draft_of_the_capa_keeps_its_decision_table_and_the_catalogue_shows_pinned_callees(seeded, user):
    assert studio.validate_diagram(user("owner"), capa_variant(LONGER_DUE_IN).encode())["valid"] is True
    assert set(processes.get_version("capa", deploy_variant(user, capa_variant(LONGER_DUE_IN))).decisions) == {
        "capa_risk.dmn"}
    checklist = studio.create_draft(user("owner"), callee("v1"))
    studio.deploy_draft(user("owner"), checklist.id, "the checklist")
    caller = studio.create_draft(user("owner"), CALLER)
    studio.deploy_draft(user("owner"), caller.id, "calls the checklist")
    catalogue = {p["key"]: p for p in studio.process_catalogue(user("owner"))["processes"]}
    assert catalogue["inspection_round"]["versions"][0]["calls"] == [{"key": "checklist", "version": 1}]


@pytest.mark.parametrize("username", ["qa", "head", "auditor", "prod"])
def test_only_process_owners_and_admins_use_the_studio(seeded, user, username):
    draft = studio.create_draft(user("admin"), capa_variant(LONGER_DUE_IN).encode())
    instance = start_capa(user)
    for attempt in (lambda actor: studio.deploy_draft(actor, draft.id, "note"),
                    lambda actor: studio.create_draft(actor, CAPA_XML.encode()),
                    lambda actor: studio.validate_diagram(actor, CAPA_XML.encode()),
                    lambda actor: studio.process_catalogue(actor),
                    lambda actor: studio.migrate_instance(actor, instance.id, 1, "reason")):
        with pytest.raises(PermissionDenied):
            attempt(user(username))
    assert [v.version for v in processes.get_definition("capa").versions] == [1]


def test_diff_lists_exactly_the_changed_due_time_and_the_added_step(seeded, user):
    assert deploy_variant(user, capa_v2()) == 2
    result = studio.diff(user("owner"), "capa", 1, 2)
    assert result["removed"] == []
    assert result["added"] == [
        {"id": "triage", "type": "userTask", "name": "Triage the problem"},
        {"id": "f_triaged", "type": "sequenceFlow", "name": None}]
    assert result["changed"] == [
        {"id": "describe_problem", "type": "userTask", "name": "Describe the problem",
         "changes": [{"property": "dueIn", "old": "P2D", "new": "P9D"}]},
        {"id": "f_problem", "type": "sequenceFlow", "name": None,
         "changes": [{"property": "target", "old": "link_source", "new": "triage"}]}]
    backwards = studio.diff(user("owner"), "capa", 2, 1)
    assert [e["id"] for e in backwards["removed"]] == ["triage", "f_triaged"] and backwards["added"] == []


def test_diff_against_a_draft(seeded, user):
    draft = studio.create_draft(user("owner"), capa_variant(WITHOUT_DESCRIBE).encode())
    result = studio.diff(user("owner"), "capa", 1, draft_id=draft.id)
    assert result["to"] == {"draft": draft.id}
    assert [e["id"] for e in result["removed"]] == ["describe_problem", "f_problem"]
    assert result["changed"] == [{"id": "f_start", "type": "sequenceFlow", "name": None,
                                  "changes": [{"property": "target", "old": "describe_problem",
                                               "new": "link_source"}]}]


def test_diff_names_the_decision_a_business_rule_task_calls(seeded, user):
    changed = capa_variant([(">capa_risk_rating<", ">capa_risk_v2<")])
    draft = studio.create_draft(user("owner"), changed.encode())
    result = studio.diff(user("owner"), "capa", 1, draft_id=draft.id)
    assert result["changed"] == [{"id": "rate_risk", "type": "businessRuleTask", "name": "Rate the risk (severity x "
                                  "probability)", "changes": [{"property": "decision", "old": "capa_risk_rating",
                                                               "new": "capa_risk_v2"}]}]


def test_migrating_an_instance_waiting_at_describe_problem_to_version_2(seeded, user):
    instance = start_capa(user)
    waiting = ready_task(instance.id, "describe_problem")
    deploy_variant(user, capa_v2())
    result = studio.migrate_instance(user("owner"), instance.id, 2, "Triage applies to open CAPAs", now=T0)
    assert result == {"instance": instance.id, "from": 1, "to": 2}
    assert db.session.get(ProcessInstance, instance.id).version.version == 2
    # The same inbox row stays open (its due time as promised); completing it now leads to the new step.
    assert ready_task(instance.id, "describe_problem").id == waiting.id
    assert ready_task(instance.id, "describe_problem").due_at == waiting.due_at
    [event] = audit_events("instance.migrated")
    assert (event.old["version"], event.new["version"], event.reason, event.instance_id) == (
        1, 2, "Triage applies to open CAPAs", instance.id)
    assert event.new["changed_elements"] == ["describe_problem"]
    tasks.complete_task(waiting.id, STEPS[0][2], user("qa"), now=T0)
    open_steps = db.session.scalars(select(Task.element_id).where(Task.instance_id == instance.id,
                                                                  Task.state == "ready")).all()
    assert open_steps == ["triage"]


def test_migrating_keeps_per_action_tasks_and_waiting_timers(seeded, user):
    instance = start_capa(user, steps=3)  # the action plan is open, its overdue timer waiting
    timer_due = db.session.get(ProcessInstance, instance.id).next_timer_at
    assert timer_due is not None
    deploy_variant(user, capa_variant(LONGER_DUE_IN))
    studio.migrate_instance(user("admin"), instance.id, 2, "Longer description deadline", now=T0 + timedelta(days=1))
    assert db.session.get(ProcessInstance, instance.id).next_timer_at == timer_due  # not restarted
    tasks.complete_task(ready_task(instance.id, "action_plan").id, PLAN, user("qa"), now=T0 + timedelta(days=1))
    action = ready_task(instance.id, "do_action")
    assert action.assignee.username == "prod" and action.name.endswith("1. Replace tool")
    deploy_variant(user, capa_v2())
    studio.migrate_instance(user("owner"), instance.id, 3, "Triage step", now=T0 + timedelta(days=2))
    migrated = ready_task(instance.id, "do_action")
    assert (migrated.id, migrated.name, migrated.assignee.username) == (action.id, action.name, "prod")
    tasks.complete_task(migrated.id, STEPS[4][2], user("prod"), now=T0 + timedelta(days=2))
    assert db.session.get(ProcessInstance, instance.id).status == "running"
    assert ready_task(instance.id, "do_action") is None


def test_migration_is_refused_when_the_waiting_step_is_gone(seeded, user):
    instance = start_capa(user)
    deploy_variant(user, capa_variant(WITHOUT_DESCRIBE))
    with pytest.raises(Conflict, match="no element describe_problem"):
        studio.migrate_instance(user("owner"), instance.id, 2, "Drop the description step", now=T0)
    assert db.session.get(ProcessInstance, instance.id).version.version == 1
    assert audit_events("instance.migrated") == []
    assert ready_task(instance.id, "describe_problem") is not None


def test_a_renamed_waiting_step_counts_as_missing(seeded, user):
    # SpiffWorkflow would align the renamed task by its place in the flow; task rows name elements by id.
    instance = start_capa(user)
    deploy_variant(user, CAPA_XML.replace('"describe_problem"', '"describe_issue"')
                   .replace(">describe_problem<", ">describe_issue<"))
    with pytest.raises(Conflict, match="no element describe_problem"):
        studio.migrate_instance(user("owner"), instance.id, 2, "Renamed step", now=T0)


@pytest.mark.parametrize("version, reason, error", [
    (1, "reason", Conflict),  # already there
    (7, "reason", NotFound),
    (2, " ", FormInvalid),
])
def test_migration_input_is_checked(seeded, user, version, reason, error):
    instance = start_capa(user)
    deploy_variant(user, capa_variant(LONGER_DUE_IN))
    with pytest.raises(error):
        studio.migrate_instance(user("owner"), instance.id, version, reason, now=T0)
    assert db.session.get(ProcessInstance, instance.id).version.version == 1


def test_a_finished_instance_does_not_migrate(seeded, user):
    instance = start_capa(user)
    instances.cancel_instance(instance.id, user("admin"), "duplicate")
    deploy_variant(user, capa_variant(LONGER_DUE_IN))
    with pytest.raises(Conflict, match="cancelled"):
        studio.migrate_instance(user("owner"), instance.id, 2, "reason", now=T0)


def test_handler_catalogue_gives_each_operator_a_json_schema(seeded, user):
    found = {h["id"]: h for h in studio.handler_catalogue(user("owner"))["handlers"]}
    email = found["notify.email"]
    assert email["description"]
    assert email["parameters"]["type"] == "object"
    assert {"to", "subject", "body"} <= set(email["parameters"]["properties"])
    assert {"subject", "body"} <= set(email["parameters"]["required"])


def test_form_catalogue_lists_files_with_their_titles(seeded, user):
    forms = {f["name"]: f for f in studio.form_catalogue(user("owner"))["forms"]}
    assert forms["capa_problem.schema.json"] == {
        "name": "capa_problem.schema.json", "source": "file", "title": "CAPA: problem description",
        "title_zh": "CAPA：问题描述"}

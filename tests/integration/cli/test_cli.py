"""The `flask ...` commands: deploy and versioning, API tokens, audit verification, timers, demo data."""
from __future__ import annotations

import hashlib
import json
import shutil
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DatabaseError

from app.extensions import db
from app.models import ApiToken, AuditEvent, ProcessDefinition, ProcessInstance, ProcessVersion, User
from app.models.audit import DROP_APPEND_ONLY_SQL
from app.services import demo
from app.services.workflow import instances, processes, tasks
from tests.conftest import ROOT, T0
from tests.integration.capa_steps import STEPS, ready_task
from tests.integration.diagrams import (
    CALLER,
    CAPA_RISK_DMN,
    DIFFERENT_CAPA,
    LONGER_DUE_IN,
    RENAMED_PROCESS,
    UNKNOWN_HANDLER,
    callee,
    capa_variant,
)
from tests.integration.releases import approve


def _write(directory, files: dict[str, str]):
    directory.mkdir()
    for name, content in files.items():
        (directory / name).write_text(content, encoding="utf-8")
    return directory


def _versions(key: str = "capa") -> list[int]:
    return sorted(db.session.scalars(select(ProcessVersion.version).join(ProcessDefinition)
                                     .where(ProcessDefinition.key == key)))


# --- processes deploy --------------------------------------------------------------------------

def test_deploying_the_shipped_processes_again_changes_nothing(runner, seeded):
    result = runner.invoke(args=["processes", "deploy", str(ROOT / "processes")])
    assert result.exit_code == 0, result.output
    assert "capa: unchanged, version 1" in result.output
    assert _versions() == [1]


def test_a_changed_diagram_is_version_2_and_running_instances_stay_on_version_1(runner, seeded, user, tmp_path):
    before = instances.start_instance("capa", user("qa"), title="Started on v1", now=T0)
    directory = _write(tmp_path / "processes", {"capa.bpmn": capa_variant(LONGER_DUE_IN)})

    result = runner.invoke(args=["processes", "deploy", str(directory), "--note", "describe within 9 days"])

    assert result.exit_code == 0, result.output
    assert "capa: deployed as version 2 (pending QA approval)" in result.output
    assert _versions() == [1, 2]
    assert ready_task(before.id, "describe_problem").due_at == T0 + timedelta(days=2)
    for element, username, data in STEPS[:2]:
        tasks.complete_task(ready_task(before.id, element).id, data, user(username), now=T0)
    db.session.refresh(before)
    assert before.version.version == 1
    assert ready_task(before.id, "investigation") is not None
    assert instances.start_instance("capa", user("qa"), title="Still v1", now=T0).version.version == 1
    approve(processes.get_version("capa", 2))
    after = instances.start_instance("capa", user("qa"), title="Started on v2", now=T0)
    assert after.version.version == 2
    assert ready_task(after.id, "describe_problem").due_at == T0 + timedelta(days=9)


def test_a_directory_with_one_bad_file_deploys_nothing(runner, seeded, tmp_path):
    directory = _write(tmp_path / "processes", {
        "capa.bpmn": capa_variant(LONGER_DUE_IN),  # valid on its own: would be version 2
        "capa_copy.bpmn": capa_variant(RENAMED_PROCESS, UNKNOWN_HANDLER),
    })

    result = runner.invoke(args=["processes", "deploy", str(directory)])

    assert result.exit_code != 0
    assert "element notify_closed" in result.output and "unknown handler notify.fax" in result.output
    assert "Traceback" not in result.output
    assert _versions() == [1]
    assert _versions("capa_copy") == []


def test_a_form_naming_an_unknown_server_check_is_refused_at_deploy(runner, app, seeded, tmp_path):
    forms_dir = tmp_path / "forms"
    shutil.copytree(ROOT / "forms", forms_dir)
    schema_file = forms_dir / "change_request.schema.json"
    schema = json.loads(schema_file.read_text(encoding="utf-8"))
    schema["x-checks"] = ["change_lots", "lots_exist_somewhere"]
    schema_file.write_text(json.dumps(schema), encoding="utf-8")
    app.config["FORMS_DIR"] = forms_dir
    directory = _write(tmp_path / "processes", {
        "change_control.bpmn": (ROOT / "processes" / "change_control.bpmn").read_text(encoding="utf-8")
        .replace('value="P2D"', 'value="P4D"', 1)})  # a change, so it would be version 2

    result = runner.invoke(args=["processes", "deploy", str(directory)])

    assert result.exit_code != 0
    assert "form change_request.schema.json names an unknown check 'lots_exist_somewhere'" in result.output
    assert _versions("change_control") == [1]


def _terminal(language: str) -> dict[str, str | None]:
    return {"LANGUAGE": None, "LC_ALL": None, "LC_MESSAGES": None, "LANG": language}


def test_a_bpmn_file_deploys_with_the_dmn_files_given_after_it(runner, seeded, tmp_path):
    directory = _write(tmp_path / "import", {"capa_copy.bpmn": capa_variant(RENAMED_PROCESS)})
    (directory / "capa_risk.dmn").write_bytes(CAPA_RISK_DMN)

    alone = runner.invoke(args=["processes", "deploy", str(directory / "capa_copy.bpmn")])
    assert alone.exit_code == 1 and "deploy the .dmn file together with the .bpmn" in alone.output

    result = runner.invoke(args=["processes", "deploy", str(directory / "capa_copy.bpmn"),
                                 str(directory / "capa_risk.dmn")])
    assert result.exit_code == 0, result.output
    assert "capa_copy: deployed as version 1" in result.output


@pytest.mark.parametrize("language, message", [
    ("en_GB.UTF-8", "calls process checklist, which is not deployed: deploy checklist first"),
    ("zh_CN.UTF-8", "调用活动 run_checklist 调用流程 checklist，但该流程尚未部署"),
])
def test_a_call_to_a_process_that_is_not_deployed_fails_in_the_terminals_language(runner, seeded, tmp_path,
                                                                                   language, message):
    (tmp_path / "round.bpmn").write_bytes(CALLER)
    result = runner.invoke(args=["processes", "deploy", str(tmp_path / "round.bpmn")], env=_terminal(language))
    assert result.exit_code == 1 and message in result.output
    (tmp_path / "checklist.bpmn").write_bytes(callee("v1"))
    assert runner.invoke(args=["processes", "deploy", str(tmp_path)]).exit_code == 0
    assert _versions("inspection_round") == [1]


def test_a_different_procedure_under_a_taken_process_id_needs_replace(runner, seeded, tmp_path):
    (tmp_path / "capa.bpmn").write_bytes(DIFFERENT_CAPA)

    refused = runner.invoke(args=["processes", "deploy", str(tmp_path / "capa.bpmn")], env=_terminal("zh_CN.UTF-8"))
    assert refused.exit_code == 1 and "确认它替换 capa" in refused.output and "--replace" in refused.output
    assert _versions() == [1]

    replaced = runner.invoke(args=["processes", "deploy", str(tmp_path / "capa.bpmn"), "--replace"])
    assert replaced.exit_code == 0, replaced.output
    assert _versions() == [1, 2]


def test_two_bpmn_files_are_refused(runner, seeded):
    result = runner.invoke(args=["processes", "deploy", str(ROOT / "processes" / "capa.bpmn"),
                                 str(ROOT / "processes" / "recall.bpmn")])
    assert result.exit_code == 1 and "give one .bpmn file and the .dmn files it uses" in result.output


def test_deploying_an_empty_directory_fails(runner, seeded, tmp_path):
    result = runner.invoke(args=["processes", "deploy", str(_write(tmp_path / "empty", {}))])
    assert result.exit_code == 1
    assert "No .bpmn files" in result.output


# --- users token -------------------------------------------------------------------------------

def test_users_token_prints_a_working_token_and_stores_only_its_hash(runner, client, seeded):
    result = runner.invoke(args=["users", "token", "qa"])
    assert result.exit_code == 0, result.output
    token = result.output.strip()
    response = client.get("/api/v1/tasks", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    (row,) = db.session.execute(text("SELECT * FROM api_tokens")).mappings().all()
    assert row["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
    assert row["user_id"] == db.session.scalar(select(User.id).where(User.username == "qa"))
    assert all(token not in str(value) for value in row.values())


def test_users_token_for_an_unknown_user_fails(runner, seeded):
    result = runner.invoke(args=["users", "token", "nobody"])
    assert result.exit_code == 1
    assert "No user named 'nobody'" in result.output
    assert db.session.scalar(select(func.count(ApiToken.id))) == 0


# --- audit verify and the append-only trail ----------------------------------------------------

def _without_append_only_triggers(statement: str) -> None:
    """Do what an attacker with database access would: drop the triggers, then change the trail."""
    for sql in DROP_APPEND_ONLY_SQL[db.engine.dialect.name]:
        db.session.execute(text(sql))
    db.session.execute(text(statement))
    db.session.commit()


@pytest.mark.parametrize("statement, broken_row, problem", [
    ("UPDATE audit_events SET reason = 'tidied up' WHERE id = 3", 3, "row content does not match its hash"),
    ("UPDATE audit_events SET action = 'user.deleted' WHERE id = 5", 5, "row content does not match its hash"),
    ("DELETE FROM audit_events WHERE id = 4", 4, "row 4 is missing"),
])
def test_audit_verify_names_the_first_tampered_row(runner, seeded, statement, broken_row, problem):
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("OK:")

    _without_append_only_triggers(statement)

    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 1
    assert f"broken at row {broken_row}:" in result.output and problem in result.output


@pytest.mark.parametrize("statement", [
    "UPDATE audit_events SET reason = 'tidied up' WHERE id = 1",
    "DELETE FROM audit_events WHERE id = 1",
])
def test_the_database_refuses_to_change_audit_rows(runner, seeded, statement):
    with pytest.raises(DatabaseError, match="append-only"):
        db.session.execute(text(statement))
        db.session.commit()
    db.session.rollback()
    assert db.session.get(AuditEvent, 1, populate_existing=True).reason == ""
    assert runner.invoke(args=["audit", "verify"]).exit_code == 0


# --- timers tick -------------------------------------------------------------------------------

@pytest.mark.parametrize("now, message", [
    ("bad", "--now must be an ISO 8601 time"),
    ("2026-11-23T09:00:00", "--now needs a time zone"),
])
def test_timers_tick_rejects_a_bad_now(runner, seeded, now, message):
    result = runner.invoke(args=["timers", "tick", "--now", now])
    assert result.exit_code != 0
    assert message in result.output


def test_timers_tick_fires_the_overdue_action_plan_escalation(runner, seeded, user):
    instance = instances.start_instance("capa", user("qa"), title="Timer", now=T0)
    for element, username, data in STEPS[:3]:
        tasks.complete_task(ready_task(instance.id, element).id, data, user(username), now=T0)
    early = runner.invoke(args=["timers", "tick", "--now", (T0 + timedelta(days=4)).isoformat()])
    assert early.exit_code == 0 and "0 instance(s) advanced" in early.output
    assert ready_task(instance.id, "escalation_review") is None

    due = runner.invoke(args=["timers", "tick", "--now", (T0 + timedelta(days=5, minutes=1)).isoformat()])

    assert due.exit_code == 0 and "1 instance(s) advanced" in due.output
    assert ready_task(instance.id, "escalation_review").group_name == "qa_management"
    assert ready_task(instance.id, "action_plan") is not None  # the boundary timer does not interrupt


# --- demo load ---------------------------------------------------------------------------------

def _demo_counts() -> dict[str, int]:
    def count(query):
        return db.session.scalar(select(func.count()).select_from(query.subquery()))

    return {"users": count(select(User.id)), "versions": count(select(ProcessVersion.id)),
            "instances": count(select(ProcessInstance.id)),
            "users created": count(select(AuditEvent.id).where(AuditEvent.action == "user.created"))}


def test_demo_load_twice_creates_nothing_the_second_time(runner, app):
    first = runner.invoke(args=["demo", "load"])
    assert first.exit_code == 0, first.output
    counts = _demo_counts()
    shipped = len(list((ROOT / "processes").glob("*.bpmn")))
    assert counts == {"users": len(demo.USERS), "versions": shipped, "instances": 2, "users created": len(demo.USERS)}

    second = runner.invoke(args=["demo", "load"])

    assert second.exit_code == 0, second.output
    assert "0 user(s) created, 0 process version(s) deployed, 0 instance(s) started" in second.output
    assert _demo_counts() == counts

"""The studio's form editor: checking, previewing and saving forms; deploys take the saved form, running
instances keep the one frozen in their version."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import AuditEvent, StudioForm
from app.services.studio import studio_forms
from app.services.workflow import instances, processes
from tests.conftest import ROOT, T0, login
from tests.integration.capa_steps import ready_task
from tests.integration.releases import approved

JSON = {"Accept": "application/json"}
FORMS = ROOT / "forms"


def form_texts(name: str = "capa_problem") -> dict[str, str]:
    return {"schema": (FORMS / f"{name}.schema.json").read_text(encoding="utf-8"),
            "uischema": (FORMS / f"{name}.uischema.json").read_text(encoding="utf-8")}


def retitled(texts: dict[str, str], english: str, chinese: str) -> dict[str, str]:
    schema = json.loads(texts["schema"])
    schema["properties"]["title"]["title"] = english
    schema["properties"]["title"]["x-i18n"]["zh-CN"]["title"] = chinese
    return {**texts, "schema": json.dumps(schema, indent=2, ensure_ascii=False)}


def save(client, body: dict, name: str = "capa_problem"):
    return client.put(f"/studio/forms/{name}", json=body, headers=JSON)


def test_saved_form_is_what_the_next_deploy_freezes(client, seeded, user):
    login(client, "owner")
    response = save(client, retitled(form_texts(), "Short problem title", "简短问题标题"))
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["saved"] == ["capa_problem.schema.json"]  # the UI schema did not change

    assert processes.available_forms()["capa_problem.schema.json"]["properties"]["title"]["title"] == \
        "Short problem title"
    event = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "studio_form.saved")).one()
    assert event.object_id == "capa_problem.schema.json" and event.actor_name == "Oliver Owner"
    assert event.old["hash"] != event.new["hash"]

    result = processes.deploy_file((ROOT / "processes" / "capa.bpmn").read_bytes(), "capa.bpmn", user("owner"),
                                   "shorter title")
    assert result.created and result.version.version == 2
    assert result.version.forms["capa_problem.schema.json"]["properties"]["title"]["title"] == "Short problem title"


def test_saving_the_same_content_again_changes_nothing(client, seeded):
    login(client, "owner")
    assert save(client, form_texts()).get_json()["saved"] == []
    assert not db.session.scalars(select(StudioForm)).all()


@pytest.mark.parametrize("change, expected", [
    # broken JSON: located by line and column
    (lambda t: {**t, "schema": t["schema"].replace('"title": "Problem title",', '"title": "Problem title"', 1)},
     {"file": "schema", "line": 22, "path": "$"}),
    # a JSON Schema error: located by its JSON path and the line of that key
    (lambda t: {**t, "schema": t["schema"].replace('"type": "string",\n      "title": "Problem title"',
                                                   '"type": "strin",\n      "title": "Problem title"')},
     {"file": "schema", "line": 20, "path": "$.properties.title.type"}),
    # a server check nobody registered
    (lambda t: {**t, "schema": t["schema"].replace('"capa_source"', '"capa_sauce"')},
     {"file": "schema", "path": "$.x-checks[0]"}),
    # Python reads NaN, JSON and the database do not
    (lambda t: {**t, "schema": t["schema"].replace('"maxLength": 200', '"maxLength": NaN')},
     {"file": "schema", "path": "$"}),
    # broken UI schema
    (lambda t: {**t, "uischema": t["uischema"].replace('"ui:rows": 6', '"ui:rows": 6,')},
     {"file": "uischema", "path": "$"}),
])
def test_invalid_form_is_refused_with_located_problems(client, seeded, change, expected):
    login(client, "owner")
    response = save(client, change(form_texts()))
    assert response.status_code == 422
    body = response.get_json()
    errors = [p for p in body["problems"] if p["severity"] == "error"]
    assert len(errors) == 1
    assert {key: errors[0][key] for key in expected} == expected
    assert not db.session.scalars(select(StudioForm)).all()  # nothing saved


def test_unknown_check_names_the_known_ones(client, seeded):
    login(client, "owner")
    texts = form_texts()
    body = save(client, {**texts, "schema": texts["schema"].replace('"capa_source"', '"capa_sauce"')}).get_json()
    assert "'capa_sauce'" in body["problems"][0]["message"] and "capa_source" in body["problems"][0]["message"]


def test_ui_schema_for_a_missing_field_is_a_warning_only(client, seeded):
    login(client, "owner")
    texts = form_texts()
    ui = json.loads(texts["uischema"])
    ui["ui:order"].append("root_cause")
    response = save(client, {**texts, "uischema": json.dumps(ui, indent=2)})
    assert response.status_code == 200
    check = studio_forms.check_form(texts["schema"], json.dumps(ui, indent=2))
    last = len(ui["ui:order"]) - 1
    assert [(p.severity, p.file, p.path) for p in check.problems] == [("warning", "uischema", f"$['ui:order'][{last}]")]


@pytest.mark.parametrize("username", ["qa", "auditor", "head"])
def test_only_process_owners_and_admins_edit_forms(client, seeded, username):
    login(client, username)
    assert client.get("/studio/forms/").status_code == 403
    assert client.get("/studio/forms/capa_problem").status_code == 403
    assert save(client, retitled(form_texts(), "X", "X")).status_code == 403
    assert client.post("/studio/forms/capa_problem/preview", json=form_texts(), headers=JSON).status_code == 403
    assert not db.session.scalars(select(StudioForm)).all()


def test_forms_list_shows_titles_source_and_versions(client, seeded):
    login(client, "admin")
    save(client, retitled(form_texts(), "Short problem title", "简短问题标题"))
    page = client.get("/studio/forms/").get_data(as_text=True)
    row = page[page.index("<code>capa_problem</code>"):].split("</tr>")[0]
    assert "CAPA: problem description" in row and "CAPA：问题描述" in row
    assert "studio" in row and "<code>capa</code> v1" in row


@pytest.mark.parametrize("lang, labels", [
    ("en", ["CAPA: problem description", "Problem title", "Severity", "Minor", "Reported on"]),
    ("zh-CN", ["CAPA：问题描述", "问题标题", "严重程度", "轻微", "报告日期"]),
])
def test_preview_draws_the_inbox_fields_in_the_chosen_language(client, seeded, lang, labels):
    login(client, "owner")
    response = client.post("/studio/forms/capa_problem/preview", json={**form_texts(), "lang": lang}, headers=JSON)
    body = response.get_json()
    assert response.status_code == 200 and body["valid"] and body["problems"] == []
    for label in labels:
        assert label in body["html"]
    assert 'name="source_reference"' in body["html"]  # the inbox's own markup, ready to be filled in


def test_preview_of_a_broken_schema_has_problems_and_no_html(client, seeded):
    login(client, "owner")
    texts = form_texts()
    body = client.post("/studio/forms/capa_problem/preview", headers=JSON,
                       json={**texts, "schema": texts["schema"].replace('"minLength": 10', '"minLength": "ten"')})
    body = body.get_json()
    assert not body["valid"] and body["html"] == ""
    assert body["problems"][0]["path"] == "$.properties.description.minLength"


def test_try_it_shows_the_inbox_messages_for_the_values(client, seeded):
    login(client, "owner")
    values = [["title", "Burr"], ["source", "complaint"], ["source_reference", "CMP-1"], ["severity", "major"],
              ["reported_on", "yesterday"], ["description", "short"]]
    body = client.post("/studio/forms/capa_problem/preview", headers=JSON,
                       json={**form_texts(), "lang": "zh-CN", "values": values, "check": True}).get_json()
    assert body["form_errors"] == {"reported_on": ["请输入日期，格式为 YYYY-MM-DD。"],
                                   "description": ["请至少输入 10 个字符。"]}
    assert "请至少输入 10 个字符。" in body["html"] and 'value="Burr"' in body["html"]


def test_new_form_starts_bilingual_and_is_editable(client, seeded):
    login(client, "owner")
    response = client.post("/studio/forms/", data={"name": "capa_followup", "title": "Follow-up",
                                                   "title_zh": "跟进"})
    assert response.status_code == 302 and response.headers["Location"].endswith("/studio/forms/capa_followup")
    forms = processes.available_forms()
    assert forms["capa_followup.schema.json"]["x-i18n"]["zh-CN"]["title"] == "跟进"
    assert "capa_followup.uischema.json" in forms
    page = client.get("/studio/forms/capa_followup").get_data(as_text=True)
    assert "Follow-up" in page and "备注" in page

    again = client.post("/studio/forms/", data={"name": "capa_followup"})
    assert again.status_code == 409
    assert client.post("/studio/forms/", data={"name": "Bad Name!"}).status_code == 400


def test_open_task_keeps_the_form_of_its_version(client, seeded, user):
    instance = instances.start_instance("capa", user("qa"), title="Burr on hub", now=T0)
    login(client, "owner")
    assert save(client, retitled(form_texts(), "Short problem title", "简短问题标题")).status_code == 200
    approved(processes.deploy_file((ROOT / "processes" / "capa.bpmn").read_bytes(), "capa.bpmn", user("owner"),
                                   "new title"))

    login(client, "qa")
    client.get("/language/en")
    page = client.get(f"/tasks/{ready_task(instance.id, 'describe_problem').id}").get_data(as_text=True)
    assert "Problem title" in page and "Short problem title" not in page
    newer = instances.start_instance("capa", user("qa"), title="Second", now=T0)
    assert newer.version.version == 2
    page = client.get(f"/tasks/{ready_task(newer.id, 'describe_problem').id}").get_data(as_text=True)
    assert "Short problem title" in page


def test_discarding_the_studio_version_brings_the_file_back(client, seeded):
    login(client, "owner")
    save(client, retitled(form_texts(), "Short problem title", "简短问题标题"))
    assert 'data-testid="discard-form"' in client.get("/studio/forms/capa_problem").get_data(as_text=True)

    response = client.post("/studio/forms/capa_problem/discard", follow_redirects=True)

    assert "the file in forms/ applies again at the next deploy" in response.get_data(as_text=True)
    assert processes.available_forms()["capa_problem.schema.json"]["properties"]["title"]["title"] == "Problem title"
    assert not db.session.scalars(select(StudioForm)).all()
    event = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "studio_form.discarded")).one()
    assert event.object_id == "capa_problem.schema.json" and event.actor_name == "Oliver Owner"
    # Nothing left to discard: the file has no studio version.
    again = client.post("/studio/forms/capa_problem/discard", follow_redirects=True).get_data(as_text=True)
    assert "has no studio version to discard" in again


def test_a_form_made_in_the_studio_can_be_removed(client, seeded):
    login(client, "owner")
    client.post("/studio/forms/", data={"name": "capa_followup", "title": "Follow-up", "title_zh": "跟进"})

    response = client.post("/studio/forms/capa_followup/discard", follow_redirects=True)

    assert "was removed from the studio" in response.get_data(as_text=True)
    assert "capa_followup.schema.json" not in processes.available_forms()
    assert client.get("/studio/forms/capa_followup").status_code == 404

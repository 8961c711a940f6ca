"""The REST API /api/v1 through Flask's test client: tokens, processes, instances, tasks, signatures,
documents and deploying diagrams."""
from __future__ import annotations

import hashlib
import io
import json

import docx
import pytest

from app.services import demo
from app.services.workflow import instances, tasks
from tests.integration.capa_steps import PLAN, STEPS, ready_task, run_capa_to_approval
from tests.integration.diagrams import (
    CALLER,
    CAPA_RISK_DMN,
    DIFFERENT_CAPA,
    LONGER_DUE_IN,
    MISSING_FORM_FILE,
    NO_FORM_PROPERTY,
    NO_LANE,
    UNKNOWN_HANDLER,
    capa_variant,
    line_of,
)

API = "/api/v1"
PROBLEM = STEPS[0][2]  # valid data of the first CAPA task, describe_problem
CRITERION = {key: PLAN[key] for key in ("effectiveness_metric", "effectiveness_operator", "effectiveness_target")}


def _start_capa(user, title: str = "Burr on hub") -> int:
    return instances.start_instance("capa", user("qa"), title=title).id


def _task(client, auth, task_id: int) -> dict:
    response = client.get(f"{API}/tasks/{task_id}", headers=auth("admin"))
    assert response.status_code == 200
    return response.get_json()


def _versions(client, auth) -> list[int]:
    return [v["version"] for v in client.get(f"{API}/processes/capa", headers=auth("admin")).get_json()["versions"]]


# --- authentication and discovery ---------------------------------------------------------------

@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": "Bearer not-a-token"},
    {"Authorization": "Bearer "},
    {"Authorization": "Basic cWE6cXVhbGlmbG93LWRlbW8="},
], ids=["none", "unknown", "empty", "basic"])
@pytest.mark.parametrize("method, path", [("get", "/processes"), ("get", "/tasks"), ("post", "/instances"),
                                          ("get", "/instances/1")])
def test_requests_without_a_valid_token_get_401(client, seeded, headers, method, path):
    response = getattr(client, method)(API + path, headers=headers, json={"process": "capa"})
    assert response.status_code == 401
    assert "Bearer" in response.get_json()["message"]


def test_a_revoked_token_no_longer_works(client, seeded, auth):
    from app.extensions import db
    from app.models import ApiToken
    from app.models.types import utcnow

    headers = auth("qa")
    assert client.get(f"{API}/tasks", headers=headers).status_code == 200
    for row in db.session.scalars(db.select(ApiToken)):
        row.revoked_at = utcnow()
    db.session.commit()
    assert client.get(f"{API}/tasks", headers=headers).status_code == 401


def test_processes_list_capa_with_its_versions(client, auth):
    response = client.get(f"{API}/processes", headers=auth("qa"))
    assert response.status_code == 200
    (capa,) = [p for p in response.get_json() if p["key"] == "capa"]
    assert capa["name"].startswith("CAPA")
    (version,) = capa["versions"]
    assert version["version"] == 1 and version["filename"] == "capa.bpmn"
    assert len(version["content_hash"]) == 64
    assert client.get(f"{API}/processes/capa", headers=auth("qa")).get_json()["versions"] == capa["versions"]


def test_openapi_document_describes_the_endpoints_and_swagger_ui_answers(client, seeded):
    response = client.get(f"{API}/openapi.json")
    assert response.status_code == 200
    spec = json.loads(response.data)
    assert spec["openapi"].startswith("3.")
    assert {"/api/v1/processes", "/api/v1/processes/deploy", "/api/v1/instances", "/api/v1/instances/{instance_id}",
            "/api/v1/tasks", "/api/v1/tasks/{task_id}", "/api/v1/tasks/{task_id}/claim",
            "/api/v1/tasks/{task_id}/complete", "/api/v1/documents/{document_id}"} <= set(spec["paths"])
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    page = client.get(f"{API}/docs")
    assert page.status_code == 200
    assert "swagger-ui" in page.get_data(as_text=True)


# --- instances and the inbox -------------------------------------------------------------------

def test_start_capa_answers_201_with_its_first_task(client, auth):
    response = client.post(f"{API}/instances", headers=auth("qa"), json={"process": "capa", "title": "Burr on hub"})
    assert response.status_code == 201
    body = response.get_json()
    assert (body["process"], body["version"], body["title"], body["status"]) == ("capa", 1, "Burr on hub", "running")
    assert [(t["element_id"], t["state"], t["group"]) for t in body["tasks"]] == [("describe_problem", "ready", "qa")]
    assert client.get(f"{API}/instances/{body['id']}", headers=auth("qa")).get_json()["id"] == body["id"]


@pytest.mark.parametrize("username, payload, status", [
    ("qa", {"title": "no process"}, 422),
    ("qa", {"process": "nope"}, 404),
    ("qa", {"process": "capa", "language": "fr"}, 422),
    ("auditor", {"process": "capa"}, 403),
])
def test_start_is_refused(client, auth, username, payload, status):
    response = client.post(f"{API}/instances", headers=auth(username), json=payload)
    assert response.status_code == status
    assert response.get_json()["message"]
    assert instances.list_instances().total == 0


def test_task_list_is_paginated(client, auth, user):
    started = {_start_capa(user, f"CAPA {n}") for n in range(3)}
    first = client.get(f"{API}/tasks?per_page=2", headers=auth("qa")).get_json()
    second = client.get(f"{API}/tasks?per_page=2&page=2", headers=auth("qa")).get_json()
    assert (first["page"], first["pages"], first["total"], len(first["items"])) == (1, 2, 3, 2)
    assert (second["page"], second["pages"], second["total"], len(second["items"])) == (2, 2, 3, 1)
    assert {t["instance_id"] for t in first["items"] + second["items"]} == started


@pytest.mark.parametrize("username, query, expected", [
    ("qa", "", ["claimed", "open"]),
    ("qa", "?scope=mine", ["claimed"]),
    ("qa", "?scope=unassigned", ["open"]),
    ("qa", "?process=capa", ["claimed", "open"]),
    ("qa", "?process=recall", []),
    ("head", "", ["open"]),  # head is in the qa group too, but qa claimed the other task
    ("head", "?scope=mine", []),
    ("prod", "", []),
    ("auditor", "", []),
])
def test_task_list_respects_scope_and_process_filters(client, auth, user, username, query, expected):
    ids = {"claimed": _start_capa(user, "claimed"), "open": _start_capa(user, "open")}
    tasks.claim_task(ready_task(ids["claimed"], "describe_problem").id, user("qa"))
    response = client.get(f"{API}/tasks{query}", headers=auth(username))
    assert response.status_code == 200
    body = response.get_json()
    assert sorted(t["instance_id"] for t in body["items"]) == sorted(ids[name] for name in expected)
    assert body["total"] == len(expected)


def test_task_list_rejects_an_unknown_scope(client, auth):
    response = client.get(f"{API}/tasks?scope=everything", headers=auth("qa"))
    assert response.status_code == 422
    assert "scope" in response.get_json()["errors"]["query"]


def test_get_task_includes_its_form_schema(client, auth, user):
    task = ready_task(_start_capa(user), "describe_problem")
    body = client.get(f"{API}/tasks/{task.id}", headers=auth("qa")).get_json()
    assert body["form"] == "capa_problem.schema.json"
    assert {"title", "description", "severity"} <= set(body["form_schema"]["properties"])


# --- claiming and completing -------------------------------------------------------------------

@pytest.mark.parametrize("username, action, status", [
    ("qa", "claim", 200),
    ("head", "claim", 200),
    ("qa", "complete", 200),
    ("prod", "claim", 403),  # describe_problem is offered to the qa group only
    ("prod", "complete", 403),
    ("auditor", "claim", 403),  # read-only everywhere
    ("auditor", "complete", 403),
])
def test_who_may_claim_and_complete_a_qa_task(client, auth, user, username, action, status):
    task = ready_task(_start_capa(user), "describe_problem")
    response = client.post(f"{API}/tasks/{task.id}/{action}", headers=auth(username), json={"data": PROBLEM})
    assert response.status_code == status
    after = _task(client, auth, task.id)
    if status == 200:
        assert after["assignee"] == username
        assert after["state"] == ("completed" if action == "complete" else "ready")
    else:
        assert response.get_json()["message"]
        assert (after["state"], after["assignee"]) == ("ready", None)


@pytest.mark.parametrize("action", ["claim", "complete"])
def test_a_task_claimed_by_one_group_member_conflicts_for_another(client, auth, user, action):
    task = ready_task(_start_capa(user), "describe_problem")
    assert client.post(f"{API}/tasks/{task.id}/claim", headers=auth("qa")).get_json()["assignee"] == "qa"
    response = client.post(f"{API}/tasks/{task.id}/{action}", headers=auth("head"), json={"data": PROBLEM})
    assert response.status_code == 409
    assert "Li Na" in response.get_json()["message"]
    after = _task(client, auth, task.id)
    assert (after["state"], after["assignee"]) == ("ready", "qa")


@pytest.mark.parametrize("steps_done, data, fields", [
    (0, {"title": "Burr", "description": "short", "severity": "huge"},
     {"source", "source_reference", "description", "severity", "reported_on"}),
    (3, {**CRITERION, "actions": [{"description": "Replace tool", "type": "corrective", "due_date": "soon"}]},
     {"actions.0.owner", "actions.0.due_date"}),
    (3, {**CRITERION, "actions": []}, {"actions"}),
    (3, {**CRITERION, "actions": [{"description": "Replace tool", "type": "corrective", "owner": "nobody",
                                   "due_date": "2020-01-31"}]},
     {"actions.0.owner", "actions.0.due_date"}),
], ids=["problem", "action-plan-row", "action-plan-empty", "action-plan-owner-and-past-date"])
def test_complete_with_invalid_data_answers_422_per_field(client, auth, user, steps_done, data, fields):
    instance_id = _start_capa(user)
    for element, username, step_data in STEPS[:steps_done]:
        tasks.complete_task(ready_task(instance_id, element).id, step_data, user(username))
    element, username, _ = STEPS[steps_done]
    task = ready_task(instance_id, element)
    response = client.post(f"{API}/tasks/{task.id}/complete", headers=auth(username), json={"data": data})
    assert response.status_code == 422
    errors = response.get_json()["errors"]
    assert set(errors) == fields
    assert all(messages and all(isinstance(m, str) and m for m in messages) for messages in errors.values())
    after = _task(client, auth, task.id)
    assert (after["state"], after["data"], after["completed_by"]) == ("ready", None, None)


def test_completing_a_task_twice_answers_409_the_second_time(client, auth, user):
    instance_id = _start_capa(user)
    task = ready_task(instance_id, "describe_problem")
    first = client.post(f"{API}/tasks/{task.id}/complete", headers=auth("qa"), json={"data": PROBLEM})
    assert first.status_code == 200
    assert (first.get_json()["state"], first.get_json()["completed_by"]) == ("completed", "qa")
    second = client.post(f"{API}/tasks/{task.id}/complete", headers=auth("qa"), json={"data": PROBLEM})
    assert second.status_code == 409
    record = client.get(f"{API}/instances/{instance_id}", headers=auth("qa")).get_json()
    assert [t["element_id"] for t in record["tasks"]] == ["describe_problem", "containment", "link_source"]
    assert sum(a["action"] == "task.completed" for a in record["audit"]) == 1


# --- the e-signed stage gate and its evidence --------------------------------------------------

APPROVAL = {"decision": "approve", "approval_comment": "Effective, close it."}


@pytest.mark.parametrize("password", [None, "", "wrong-password"], ids=["missing", "empty", "wrong"])
def test_the_signature_gate_refuses_a_missing_or_wrong_password(client, auth, user, password):
    instance = run_capa_to_approval(user)
    task = ready_task(instance.id, "qa_approval")
    body = {"data": APPROVAL} if password is None else {"data": APPROVAL, "password": password}
    response = client.post(f"{API}/tasks/{task.id}/complete", headers=auth("head"), json=body)
    assert response.status_code == 401
    assert "not signed" in response.get_json()["message"]
    record = client.get(f"{API}/instances/{instance.id}", headers=auth("head")).get_json()
    assert record["signatures"] == []
    assert record["status"] == "running"
    assert _task(client, auth, task.id)["state"] == "ready"
    assert [a["action"] for a in record["audit"]].count("signature.applied") == 0


def test_the_signed_gate_shows_signature_document_and_audit(client, auth, user):
    instance = run_capa_to_approval(user)
    task = ready_task(instance.id, "qa_approval")
    response = client.post(f"{API}/tasks/{task.id}/complete", headers=auth("head"),
                           json={"data": APPROVAL, "password": demo.DEMO_PASSWORD})
    assert response.status_code == 200
    assert response.get_json()["state"] == "completed"
    record = client.get(f"{API}/instances/{instance.id}", headers=auth("auditor")).get_json()
    assert record["status"] == "completed"
    (signature,) = record["signatures"]
    assert (signature["user"], signature["printed_name"], signature["meaning"]) == ("head", "Helen Head", "approved")
    assert signature["task_id"] == task.id and len(signature["signed_hash"]) == 64
    rendered, issued = record["documents"]  # the report, and the report issued with the signature in it
    assert rendered["kind"] == issued["kind"] == "capa_report" and len(issued["sha256"]) == 64
    assert [d["sha256"] for d in signature["documents"]] == [issued["sha256"]]
    actions = [a["action"] for a in record["audit"]]
    assert {"instance.started", "task.completed", "task.automated", "signature.applied",
            "instance.completed"} <= set(actions)
    assert all(len(a["hash"]) == 64 for a in record["audit"])


def test_a_rendered_document_downloads_with_its_listed_hash(client, auth, user):
    instance = run_capa_to_approval(user)
    (document,) = client.get(f"{API}/instances/{instance.id}", headers=auth("qa")).get_json()["documents"]
    response = client.get(f"{API}/documents/{document['id']}", headers=auth("auditor"))
    assert response.status_code == 200
    assert response.mimetype.endswith("wordprocessingml.document")
    assert hashlib.sha256(response.data).hexdigest() == document["sha256"]
    report = docx.Document(io.BytesIO(response.data))
    text = "\n".join([p.text for p in report.paragraphs]
                     + [cell.text for table in report.tables for row in table.rows for cell in row.cells])
    assert "Burr on hub" in text
    assert "Worn deburring tool at station 3" in text


@pytest.mark.parametrize("method, path", [
    ("get", "/instances/999"),
    ("get", "/tasks/999"),
    ("post", "/tasks/999/claim"),
    ("post", "/tasks/999/complete"),
    ("get", "/documents/999"),
    ("get", "/processes/nope"),
])
def test_unknown_records_answer_404_json(client, auth, method, path):
    response = getattr(client, method)(API + path, headers=auth("admin"), json={"data": {}})
    assert response.status_code == 404
    assert response.is_json
    assert response.get_json()["message"]


# --- deploying diagrams ------------------------------------------------------------------------

def _deploy(client, headers, content: str | bytes | None, filename: str = "capa.bpmn", note: str = "test change",
            dmn: dict[str, bytes] | None = None, **fields):
    data = {"change_note": note, **fields}
    if content is not None:
        raw = content.encode() if isinstance(content, str) else content
        data["file"] = (io.BytesIO(raw), filename)
    if dmn:
        data["dmn"] = [(io.BytesIO(raw), name) for name, raw in dmn.items()]
    return client.post(f"{API}/processes/deploy", headers=headers, data=data, content_type="multipart/form-data")


def test_deploying_a_changed_capa_makes_version_2_once(client, auth):
    changed = capa_variant(LONGER_DUE_IN)
    first = _deploy(client, auth("owner"), changed, note="describe within 9 days")
    assert first.status_code == 201
    assert first.get_json() == {"process": "capa", "version": 2, "created": True}
    again = _deploy(client, auth("owner"), changed, note="same file")
    assert again.get_json() == {"process": "capa", "version": 2, "created": False}
    versions = client.get(f"{API}/processes/capa", headers=auth("qa")).get_json()["versions"]
    assert [(v["version"], v["change_note"], v["author"]) for v in versions] == [
        (2, "describe within 9 days", "owner"), (1, "test setup", None)]  # newest first
    assert [v["status"] for v in versions] == ["pending", "effective"]
    started = client.post(f"{API}/instances", headers=auth("qa"), json={"process": "capa"}).get_json()
    assert started["version"] == 1  # a pending version is not used

    approved = client.post(f"{API}/processes/capa/versions/2/approve", headers=auth("head"),
                           json={"password": demo.DEMO_PASSWORD})
    assert approved.status_code == 200, approved.get_json()
    started = client.post(f"{API}/instances", headers=auth("qa"), json={"process": "capa"}).get_json()
    assert started["version"] == 2


@pytest.mark.parametrize("username, status", [
    ("owner", 201), ("admin", 201), ("qa", 403), ("head", 403), ("auditor", 403)])
def test_only_process_owners_and_admins_deploy(client, auth, username, status):
    response = _deploy(client, auth(username), capa_variant(LONGER_DUE_IN))
    assert response.status_code == status
    assert _versions(client, auth) == ([2, 1] if status == 201 else [1])


XXE = '<?xml version="1.0"?>\n<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>\n<x>&e;</x>\n'
LAUGHS = "".join(f' <!ENTITY lol{n} "{("&lol%s;" % (n - 1 if n > 1 else "")) * 10}">\n' for n in range(1, 10))
BILLION_LAUGHS = f'<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n{LAUGHS}]>\n<lolz>&lol9;</lolz>\n'
MALFORMED = ('<?xml version="1.0" encoding="UTF-8"?>\n'
             '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL">\n'
             '  <bpmn:process id="capa" isExecutable="true">\n'
             '</bpmn:definitions>\n')


def _located(changes: list[tuple[str, str]], element_id: str, needle: str, message: str) -> tuple:
    """Return a CAPA variant as a bad-upload case whose problem is expected at the line of needle."""
    text = capa_variant(changes)
    return text, "capa.bpmn", None, {"element_id": element_id, "line": line_of(text, needle), "message": message}


BAD_UPLOADS = [
    # id, upload (None = no file field), filename, BPMN_MAX_BYTES, expected problem (None = no problems list)
    ("malformed-xml", MALFORMED, "capa.bpmn", None, {"element_id": None, "line": 4, "message": "malformed XML"}),
    ("xxe", XXE, "capa.bpmn", None, {"element_id": None, "line": 2, "message": "DOCTYPE and entities"}),
    ("billion-laughs", BILLION_LAUGHS, "capa.bpmn", None,
     {"element_id": None, "line": 2, "message": "DOCTYPE and entities"}),
    ("oversized", capa_variant(), "capa.bpmn", 1000,
     {"element_id": None, "line": None, "message": "larger than 1000 bytes"}),
    ("unknown-handler", *_located(UNKNOWN_HANDLER, "notify_closed", 'id="notify.fax"', "unknown handler notify.fax")),
    ("form-file-missing", *_located(MISSING_FORM_FILE, "containment", 'id="containment"',
                                    "form capa_nowhere.schema.json does not exist")),
    ("no-form-property", *_located(NO_FORM_PROPERTY, "containment", 'id="containment"',
                                   "user task containment has no form")),
    ("no-lane", *_located(NO_LANE, "containment", 'id="containment"', "user task containment has no lane")),
    ("no-file-field", None, "capa.bpmn", None, None),
    ("txt-file", capa_variant(), "capa.txt", None, None),
]


@pytest.mark.parametrize("upload, filename, max_bytes, expected", [case[1:] for case in BAD_UPLOADS],
                         ids=[case[0] for case in BAD_UPLOADS])
def test_bad_uploads_answer_400_with_located_problems(app, client, auth, upload, filename, max_bytes, expected):
    if max_bytes:
        app.config["BPMN_MAX_BYTES"] = max_bytes
    response = _deploy(client, auth("owner"), upload, filename)
    assert response.status_code == 400
    body = response.get_json()
    assert body["message"]
    assert "root:" not in response.get_data(as_text=True)
    if expected is None:
        assert body["error"] == "BadUpload" and "problems" not in body
    else:
        problems = body["problems"]
        assert all({"element_id", "line", "message"} <= set(p) for p in problems)
        assert any(p["element_id"] == expected["element_id"] and p["line"] == expected["line"]
                   and expected["message"] in p["message"] for p in problems), problems
        assert "Traceback" not in response.get_data(as_text=True)
    assert _versions(client, auth) == [1]


# --- diagrams from other modelers --------------------------------------------------------------

def test_a_bpmn_deploys_with_its_dmn_files(client, auth):
    copy = capa_variant([('<bpmn:process id="capa"', '<bpmn:process id="capa_copy"')])

    response = _deploy(client, auth("owner"), copy, "capa_copy.bpmn", dmn={"capa_risk.dmn": CAPA_RISK_DMN})

    assert response.status_code == 201, response.get_json()
    assert response.get_json() == {"process": "capa_copy", "version": 1, "created": True}


def test_a_file_declaring_ascii_deploys(client, auth):
    ascii_capa = capa_variant(LONGER_DUE_IN, [('encoding="UTF-8"', 'encoding="ASCII"')])
    assert _deploy(client, auth("owner"), ascii_capa).status_code == 201


@pytest.mark.parametrize("language, fragments", [
    ("en", ["which is not deployed: deploy checklist first"]),
    ("zh-CN", ["调用流程 checklist，但该流程尚未部署"]),
])
def test_a_call_to_a_process_that_is_not_deployed_is_400_in_the_callers_language(client, auth, language, fragments):
    response = _deploy(client, {**auth("owner"), "Accept-Language": language}, CALLER, "inspection_round.bpmn")
    assert response.status_code == 400
    (problem,) = response.get_json()["problems"]
    assert problem["element_id"] == "run_checklist" and all(f in problem["message"] for f in fragments)


@pytest.mark.parametrize("language, fragment", [("en", "confirm that it replaces capa"), ("zh-CN", "确认它替换 capa")])
def test_a_different_procedure_under_a_taken_process_id_is_409_until_confirmed(client, auth, language, fragment):
    headers = {**auth("owner"), "Accept-Language": language}
    refused = _deploy(client, headers, DIFFERENT_CAPA)
    assert refused.status_code == 409
    assert refused.get_json()["confirm"] == "replace" and fragment in refused.get_json()["message"]
    assert _versions(client, auth) == [1]

    confirmed = _deploy(client, headers, DIFFERENT_CAPA, note="replaces the old CAPA", replace="true")
    assert confirmed.status_code == 201 and _versions(client, auth) == [2, 1]


def test_a_decision_table_that_is_not_a_dmn_file_is_a_bad_upload(client, auth):
    response = _deploy(client, auth("owner"), capa_variant(LONGER_DUE_IN), dmn={"capa_risk.xml": CAPA_RISK_DMN})
    assert response.status_code == 400 and response.get_json()["error"] == "BadUpload"

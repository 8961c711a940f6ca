"""The studio's JSON endpoints, in the browser session (/studio/api) and with a bearer token (/api/v1/studio):
drafts, validation, deploy, diff and migration, with bad input answered 400 with element-level problems."""
from __future__ import annotations

from dataclasses import dataclass

import pytest
from lxml import etree

from app.services import users
from tests.conftest import login
from tests.integration.api.test_api import BILLION_LAUGHS, MALFORMED, XXE
from tests.integration.capa_steps import ready_task
from tests.integration.diagrams import (
    CAPA_XML,
    LONGER_DUE_IN,
    MISSING_FORM_FILE,
    UNKNOWN_HANDLER,
    capa_variant,
    line_of,
)
from tests.integration.releases import approve
from tests.integration.studio.capa_versions import WITHOUT_DESCRIBE, capa_v2

XML = "application/xml"


@dataclass
class Surface:
    """One way into the studio: the browser session or the bearer-token REST API."""

    client: object
    prefix: str
    token: bool

    def as_user(self, username: str | None) -> dict[str, str]:
        """Act as username from now on; return the headers each request needs."""
        if self.token:
            return {"Authorization": f"Bearer {users.issue_token(username)}"} if username else {}
        if username:
            login(self.client, username)
        return {}

    def call(self, method: str, path: str, username: str | None = "owner", **kwargs):
        headers = self.as_user(username)
        return getattr(self.client, method)(self.prefix + path, headers=headers, **kwargs)

    def new_draft(self, xml: str, username: str = "owner") -> int:
        response = self.call("post", "/drafts", username, data=xml.encode(), content_type=XML)
        assert response.status_code == 201, response.get_json()
        return response.get_json()["id"]


@pytest.fixture(params=["session", "rest"])
def surface(request, client, seeded) -> Surface:
    if request.param == "session":
        return Surface(client, "/studio/api", token=False)
    return Surface(client, "/api/v1/studio", token=True)


def problem_at(response, element_id: str | None, line: int | None, message: str) -> bool:
    return any(p["element_id"] == element_id and p["line"] == line and message in p["message"]
               for p in response.get_json()["problems"])


def versions(surface: Surface) -> list[int]:
    catalogue = surface.call("get", "/processes").get_json()["processes"]
    return [v["version"] for p in catalogue if p["key"] == "capa" for v in p["versions"]]


def test_a_process_owner_edits_validates_and_deploys_version_2(surface, user):
    opened = surface.call("get", "/versions/capa/1.bpmn")
    assert opened.status_code == 200 and opened.mimetype == XML
    etree.fromstring(opened.data)  # laid out XML the modeler opens
    base_id = next(p for p in surface.call("get", "/processes").get_json()["processes"] if p["key"] == "capa")
    assert base_id["versions"][0]["instances_open"] == 0
    created = surface.call("post", "/drafts?base=1", data=CAPA_XML.encode(), content_type=XML)
    assert created.status_code == 201
    draft = created.get_json()
    assert (draft["key"], draft["base_version"]) == ("capa", 1)
    changed = capa_variant(LONGER_DUE_IN)
    assert surface.call("put", f"/drafts/{draft['id']}", data=changed.encode(), content_type=XML).status_code == 200
    saved = surface.call("get", f"/drafts/{draft['id']}.bpmn").data
    assert b'value="P9D"' in saved and b"BPMNShape" in saved  # laid out: the shipped file has no diagram layout
    checked = surface.call("post", "/validate", data=changed.encode(), content_type=XML).get_json()
    assert checked["valid"] is True
    deployed = surface.call("post", f"/drafts/{draft['id']}/deploy", json={"change_note": "9 days to describe"})
    assert deployed.status_code == 201
    assert deployed.get_json() == {"key": "capa", "version": 2, "url": "/processes/capa/2"}
    assert versions(surface) == [2, 1]
    diff = surface.call("get", "/diff?key=capa&from=1&to=2").get_json()
    assert diff["changed"] == [{"id": "describe_problem", "type": "userTask", "name": "Describe the problem",
                                "changes": [{"property": "dueIn", "old": "P2D", "new": "P9D"}]}]


BAD_DRAFTS = [
    ("malformed-xml", MALFORMED, None, 4, "malformed XML"),
    ("xxe", XXE, None, 2, "DOCTYPE and entities are not allowed"),
    ("billion-laughs", BILLION_LAUGHS, None, 2, "DOCTYPE and entities are not allowed"),
    ("not-bpmn", '<?xml version="1.0"?>\n<html/>', None, 2, "the root element must be bpmn:definitions"),
]


@pytest.mark.parametrize("xml, element_id, line, message", [c[1:] for c in BAD_DRAFTS], ids=[c[0] for c in BAD_DRAFTS])
@pytest.mark.parametrize("path", ["/drafts", "/validate"])
def test_unsafe_or_malformed_xml_is_located(surface, path, xml, element_id, line, message):
    response = surface.call("post", path, data=xml.encode(), content_type=XML)
    if path == "/validate":
        assert response.status_code == 200 and response.get_json()["valid"] is False
    else:
        assert response.status_code == 400
        assert response.get_json()["message"]
    assert problem_at(response, element_id, line, message), response.get_json()
    assert "Traceback" not in response.get_data(as_text=True) and "root:" not in response.get_data(as_text=True)


def test_a_body_that_is_not_xml_is_refused(surface):
    response = surface.call("post", "/drafts", json={"xml": CAPA_XML})
    assert response.status_code == 400 and "application/xml" in response.get_json()["message"]


DEPLOY_PROBLEMS = [
    ("unknown-operator", UNKNOWN_HANDLER, "notify_closed", 'id="notify.fax"', "unknown handler notify.fax"),
    ("missing-form", MISSING_FORM_FILE, "containment", 'id="containment"',
     "form capa_nowhere.schema.json does not exist"),
]


@pytest.mark.parametrize("changes, element_id, needle, message", [c[1:] for c in DEPLOY_PROBLEMS],
                         ids=[c[0] for c in DEPLOY_PROBLEMS])
def test_deploying_an_invalid_draft_answers_400_with_element_problems(surface, changes, element_id, needle, message):
    xml = capa_variant(changes)
    draft_id = surface.new_draft(xml)
    response = surface.call("post", f"/drafts/{draft_id}/deploy", json={"change_note": "try"})
    assert response.status_code == 400
    assert problem_at(response, element_id, line_of(xml, needle), message), response.get_json()
    validated = surface.call("post", "/validate", data=xml.encode(), content_type=XML).get_json()
    assert validated["valid"] is False and problem_at_json(validated, element_id, line_of(xml, needle), message)
    assert versions(surface) == [1]


def problem_at_json(body: dict, element_id: str, line: int, message: str) -> bool:
    return any(p["element_id"] == element_id and p["line"] == line and message in p["message"]
               for p in body["problems"])


@pytest.mark.parametrize("body", [{}, {"change_note": "  "}])
def test_deploying_without_a_change_note_is_422(surface, body):
    draft_id = surface.new_draft(capa_variant(LONGER_DUE_IN))
    response = surface.call("post", f"/drafts/{draft_id}/deploy", json=body)
    assert response.status_code == 422
    assert "change_note" in response.get_json()["errors"]
    assert versions(surface) == [1]


BODIES = {None: {}, "xml": {"data": CAPA_XML.encode(), "content_type": XML},
          "note": {"json": {"change_note": "n"}}, "migrate": {"json": {"version": 1, "reason": "r"}}}


@pytest.mark.parametrize("method, path, body", [
    ("get", "/versions/capa/9.bpmn", None), ("get", "/versions/nowhere/1.bpmn", None),
    ("get", "/drafts/999.bpmn", None), ("put", "/drafts/999", "xml"), ("delete", "/drafts/999", None),
    ("post", "/drafts/999/deploy", "note"), ("post", "/drafts?base=999", "xml"),
    ("get", "/diff?key=nowhere&from=1&to=2", None), ("get", "/diff?key=capa&from=1&to=9", None),
    ("get", "/diff?key=capa&from=9&to=1", None), ("get", "/diff?key=capa&from=1&draft=999", None),
    ("post", "/instances/999/migrate", "migrate"),
])
def test_unknown_keys_versions_drafts_and_instances_are_404(surface, method, path, body):
    response = surface.call(method, path, **BODIES[body])
    assert response.status_code == 404, response.get_data(as_text=True)
    assert response.get_json()["message"]


@pytest.mark.parametrize("query", ["?key=capa", "?from=1&to=1", "?key=capa&from=x&to=1", "?key=capa&from=1"])
def test_diff_needs_a_key_and_two_sides(surface, query):
    response = surface.call("get", "/diff" + query)
    assert response.status_code in (400, 422)
    assert response.get_json()["message"]


def test_migrate_moves_an_instance_and_refuses_a_missing_step_with_409(surface, user):
    from app.services.workflow import instances, processes
    instance = instances.start_instance("capa", user("qa"), title="Burr on hub")
    surface.call("post", f"/drafts/{surface.new_draft(capa_v2())}/deploy", json={"change_note": "triage"})
    surface.call("post", f"/drafts/{surface.new_draft(capa_variant(WITHOUT_DESCRIBE))}/deploy",
                 json={"change_note": "no description"})
    approve(processes.get_version("capa", 2))  # instances move only onto approved versions
    approve(processes.get_version("capa", 3))
    refused = surface.call("post", f"/instances/{instance.id}/migrate", json={"version": 3, "reason": "try"})
    assert refused.status_code == 409
    assert "describe_problem" in refused.get_json()["message"]
    for body in ({"version": 2}, {"version": 2, "reason": ""}):
        assert surface.call("post", f"/instances/{instance.id}/migrate", json=body).status_code == 422
    for body in ({"version": "two", "reason": "r"}, {"reason": "r"}):
        assert surface.call("post", f"/instances/{instance.id}/migrate", json=body).status_code in (400, 422)
    moved = surface.call("post", f"/instances/{instance.id}/migrate", json={"version": 2, "reason": "triage"})
    assert moved.status_code == 200
    assert moved.get_json() == {"instance": instance.id, "from": 1, "to": 2}
    assert ready_task(instance.id, "describe_problem") is not None
    open_counts = {v["version"]: v["instances_open"] for p in surface.call("get", "/processes").get_json()["processes"]
                   if p["key"] == "capa" for v in p["versions"]}
    assert open_counts == {3: 0, 2: 1, 1: 0}


def test_catalogues_of_handlers_and_forms(surface):
    handlers = surface.call("get", "/handlers").get_json()["handlers"]
    assert {"notify.email", "documents.render", "lots.find_affected"} <= {h["id"] for h in handlers}
    assert all(h["parameters"]["type"] == "object" for h in handlers)
    forms = surface.call("get", "/forms").get_json()["forms"]
    assert {"name": "capa_problem.schema.json", "source": "file", "title": "CAPA: problem description",
            "title_zh": "CAPA：问题描述"} in forms


@pytest.mark.parametrize("method, path", [
    ("get", "/processes"), ("get", "/handlers"), ("post", "/drafts"), ("post", "/validate"),
    ("post", "/instances/1/migrate"), ("get", "/diff?key=capa&from=1&to=1"),
])
def test_without_sign_in_or_token_it_is_401(surface, method, path):
    response = surface.call(method, path, None)
    assert response.status_code == 401
    assert response.is_json and response.get_json()["message"]


@pytest.mark.parametrize("username", ["qa", "auditor"])
def test_other_roles_get_403(surface, username):
    response = surface.call("get", "/processes", username)
    assert response.status_code == 403 and response.is_json
    response = surface.call("post", "/validate", username, data=CAPA_XML.encode(), content_type=XML)
    assert response.status_code == 403


def test_the_rest_twins_are_in_the_openapi_document(client, seeded):
    paths = set(client.get("/api/v1/openapi.json").get_json()["paths"])
    assert {"/api/v1/studio/drafts", "/api/v1/studio/drafts/{draft_id}/deploy", "/api/v1/studio/diff",
            "/api/v1/studio/instances/{instance_id}/migrate", "/api/v1/studio/handlers"} <= paths


def test_session_writes_need_the_csrf_token_of_the_page(app, client, seeded):
    login(client, "owner")
    app.config["WTF_CSRF_ENABLED"] = True
    page = client.get("/processes/").get_data(as_text=True)
    token = etree.HTML(page).xpath("//meta[@name='csrf-token']/@content")[0]
    refused = client.post("/studio/api/validate", data=CAPA_XML.encode(), content_type=XML)
    assert refused.status_code == 400 and refused.is_json and "CSRF" in refused.get_json()["message"]
    accepted = client.post("/studio/api/validate", data=CAPA_XML.encode(), content_type=XML,
                           headers={"X-CSRFToken": token})
    assert accepted.status_code == 200 and accepted.get_json()["valid"] is True

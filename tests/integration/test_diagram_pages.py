"""The diagram routes: a version's laid-out BPMN, an instance's element states and a version's heat map."""
from __future__ import annotations

import pytest
from lxml import etree

from app.extensions import db
from app.models import Incident
from app.services.studio import diagram_layout, diagrams
from app.services.studio.diagram_layout import add_layout
from app.services.workflow import instances, tasks
from tests.conftest import T0, login
from tests.integration.capa_steps import STEPS, ready_task
from tests.unit.services import large_diagrams

BPMNDI = "{http://www.omg.org/spec/BPMN/20100524/DI}"
JSON = {"Accept": "application/json"}


def capa_after(user, steps: int):
    """Start a CAPA and complete its first `steps` steps as the shared CAPA scenario does."""
    instance = instances.start_instance("capa", user("qa"), title="Burr on hub", now=T0)
    for element, username, data in STEPS[:steps]:
        tasks.complete_task(ready_task(instance.id, element).id, data, user(username), now=T0)
    return instance


@pytest.mark.parametrize("path", ["/processes/capa/1/diagram.bpmn", "/processes/capa/1/heat-map.json",
                                  "/instances/1/diagram.json"])
def test_diagram_routes_need_sign_in(client, seeded, path):
    response = client.get(path)
    assert response.status_code == 302 and "/login" in response.headers["Location"]


@pytest.mark.parametrize("path", ["/processes/capa/99/diagram.bpmn", "/processes/nowhere/1/diagram.bpmn",
                                  "/instances/999/diagram.json", "/processes/nowhere/1/heat-map.json"])
def test_unknown_versions_and_instances_are_404(client, seeded, path):
    login(client, "admin")
    response = client.get(path, headers=JSON)
    assert response.status_code == 404
    assert response.get_json()["error"] == "NotFound"


def test_version_diagram_has_a_shape_for_every_step(client, seeded):
    login(client, "auditor")  # read-only accounts see diagrams too
    response = client.get("/processes/capa/1/diagram.bpmn")
    assert response.status_code == 200 and response.mimetype == "application/xml"
    root = etree.fromstring(response.data)
    shown = {shape.get("bpmnElement") for shape in root.iter(f"{BPMNDI}BPMNShape")}
    assert {"start", "describe_problem", "containment", "investigation", "action_plan", "qa_approval"} <= shown


def test_instance_states_mid_way(client, seeded, user):
    instance = capa_after(user, 2)  # problem described, containment done: the investigation is open
    login(client, "prod")
    response = client.get(f"/instances/{instance.id}/diagram.json")
    assert response.status_code == 200
    body = response.get_json()
    assert body["diagram_url"] == "/processes/capa/1/diagram.bpmn"
    states = body["states"]
    assert states["start"] == "completed"  # pruned by the engine, inferred from the step it leads to
    assert states["describe_problem"] == "completed"
    assert states["containment"] == "completed"
    assert states["investigation"] == "active"
    assert "action_plan" not in states and "qa_approval" not in states
    assert set(states.values()) <= {"completed", "active", "waiting", "error"}


def test_boundary_timer_of_an_open_step_is_waiting(client, seeded, user):
    instance = capa_after(user, 3)  # at the action plan, whose overdue timer is armed
    login(client, "qa")
    states = client.get(f"/instances/{instance.id}/diagram.json").get_json()["states"]
    assert states["action_plan"] == "active"
    assert states["action_plan_overdue"] == "waiting"
    assert states["investigation"] == "completed"


def test_open_incident_marks_its_element_as_error(client, seeded, user):
    instance = capa_after(user, 1)
    db.session.add(Incident(instance_id=instance.id, element_id="containment", message="mail server down",
                            created_at=T0))
    db.session.commit()
    login(client, "qa")
    states = client.get(f"/instances/{instance.id}/diagram.json").get_json()["states"]
    assert states["containment"] == "error"
    assert states["describe_problem"] == "completed"


def test_heat_map_counts_open_instances_per_step(client, seeded, user):
    capa_after(user, 0)
    capa_after(user, 0)
    capa_after(user, 2)
    cancelled = capa_after(user, 0)
    instances.cancel_instance(cancelled.id, user("admin"), "duplicate")
    login(client, "owner")
    body = client.get("/processes/capa/1/heat-map.json", headers=JSON).get_json()
    assert body["open_instances"] == 3
    assert body["counts"] == {"describe_problem": 2, "investigation": 1}
    page = client.get("/processes/capa/1").get_data(as_text=True)
    assert 'data-testid="heat-map"' in page and 'data-heat-url="/processes/capa/1/heat-map.json"' in page


@pytest.mark.parametrize("username", ["qa", "auditor", "releaser"])
def test_heat_map_is_for_process_owners_and_admins(client, seeded, username):
    login(client, username)
    assert client.get("/processes/capa/1/heat-map.json", headers=JSON).status_code == 403
    page = client.get("/processes/capa/1")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert 'data-diagram-url="/processes/capa/1/diagram.bpmn"' in body and "data-heat-url" not in body


def test_instance_page_embeds_the_diagram_with_its_legend(client, seeded, user):
    instance = capa_after(user, 0)
    login(client, "head")  # an English-speaking user: Li Na (qa) reads the page in Chinese
    page = client.get(f"/instances/{instance.id}").get_data(as_text=True)
    assert f'data-states-url="/instances/{instance.id}/diagram.json"' in page
    assert "vendor/bpmn-js/bpmn-navigated-viewer.production.min.js" in page
    assert "waiting: timer, message or parallel branch" in page


# --- diagrams of any size (issue 17) ----------------------------------------------------------------------------

def new_draft(client, xml: bytes) -> int:
    response = client.post("/studio/api/drafts", data=xml, content_type="application/xml")
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def test_a_draft_of_600_steps_is_laid_out_once_and_then_served_from_the_cache(client, seeded, monkeypatch):
    layouts = []
    monkeypatch.setattr(diagram_layout, "add_layout", lambda *args: layouts.append(1) or add_layout(*args))
    diagrams._laid_out.cache_clear()
    login(client, "owner")
    draft = new_draft(client, large_diagrams.chain(600))
    first, again = (client.get(f"/studio/api/drafts/{draft}.bpmn") for _ in range(2))
    assert first.status_code == again.status_code == 200 and first.data == again.data
    shown = {shape.get("bpmnElement") for shape in etree.fromstring(first.data).iter(f"{BPMNDI}BPMNShape")}
    assert {f"t{i}" for i in range(600)} <= shown
    assert len(layouts) == 1


@pytest.mark.parametrize("lang, refusal", [
    ("en", "This diagram has 33 elements and no layout of its own (BPMN DI); Qualiflow lays out diagrams of up to 30"),
    ("zh_CN", "该流程图有 33 个元素"),
])
def test_a_version_above_the_layout_limit_is_refused_with_a_message(app, client, seeded, lang, refusal):
    app.config["DIAGRAM_LAYOUT_MAX_ELEMENTS"] = 30  # lot_release has 33 (pool, lanes, flow nodes and flows)
    login(client, "owner")
    response = client.get(f"/processes/lot_release/1/diagram.bpmn?lang={lang}", headers=JSON)
    assert response.status_code == 422
    assert response.get_json()["error"] == "DiagramTooLarge" and refusal in response.get_json()["message"]
    page = client.get("/processes/lot_release/1/diagram.bpmn")  # a browser gets the error page, never a 500
    assert page.status_code == 422 and refusal in page.get_data(as_text=True)
    # The version page, its heat map and the studio around the drawing still answer.
    assert client.get("/processes/lot_release/1").status_code == 200
    assert client.get("/processes/lot_release/1/heat-map.json", headers=JSON).status_code == 200
    studio = client.get("/studio/api/versions/lot_release/1.bpmn")
    assert studio.status_code == 422 and refusal in studio.get_json()["message"]


def test_a_draft_above_the_layout_limit_is_refused_in_the_studio(app, client, seeded):
    app.config["DIAGRAM_LAYOUT_MAX_ELEMENTS"] = 100
    login(client, "owner")
    draft = new_draft(client, large_diagrams.chain(100))
    response = client.get(f"/studio/api/drafts/{draft}.bpmn")
    assert response.status_code == 422
    assert response.get_json()["message"].startswith("This diagram has 203 elements")

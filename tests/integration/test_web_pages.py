"""The browser pages through Flask's test client: sign-in, inbox, task forms, signatures, instance page."""
from __future__ import annotations

import time
from datetime import timedelta

import pytest
from flask import g
from flask_babel import refresh

from app.extensions import db
from app.models import AuditEvent, Task
from app.services import demo
from app.services.workflow import instances
from tests.conftest import login


def _ready(instance_id: int, element: str) -> Task:
    return db.session.scalar(db.select(Task).where(Task.instance_id == instance_id, Task.element_id == element,
                                                   Task.state == "ready"))


@pytest.mark.parametrize("path", ["/", "/instances/", "/processes/", "/instances/start"])
def test_pages_need_sign_in(client, seeded, path):
    response = client.get(path)
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_wrong_password_is_refused_and_audited(client, seeded):
    response = login(client, "qa", "nope")
    assert response.status_code == 401
    assert "Wrong user name or password" in response.get_data(as_text=True)
    assert db.session.scalar(db.select(AuditEvent).where(AuditEvent.action == "login.failed")) is not None


def test_lockout_after_repeated_failures(client, seeded):
    for _ in range(5):
        login(client, "qa", "nope")
    response = login(client, "qa", demo.DEMO_PASSWORD)
    assert response.status_code == 401
    assert "locked" in response.get_data(as_text=True)


def test_start_capa_fill_invalid_form_then_valid(client, seeded):
    login(client, "qa")
    response = client.post("/instances/start", data={"process": "capa", "title": "Burr on hub"})
    assert response.status_code == 302
    task_url = response.headers["Location"]
    page = client.get(task_url).get_data(as_text=True)
    assert "Problem title" in page or "问题标题" in page
    response = client.post(task_url + "/complete", data={"title": "", "description": "short"})
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert "is-invalid" in body
    task_id = int(task_url.rsplit("/", 1)[1])
    assert db.session.get(Task, task_id).state == "ready"
    response = client.post(task_url + "/complete", data={
        "title": "Burr on hub", "source": "complaint", "source_reference": "CMP-2026-118",
        "description": "Burr found on the catheter hub", "severity": "major", "reported_on": "2026-11-20"})
    assert response.status_code == 302
    assert db.session.get(Task, task_id).state == "completed"
    page = client.get(f"/instances/{db.session.get(Task, task_id).instance_id}?lang=en").get_data(as_text=True)
    source = page[page.index('data-testid="capa-source"'):]
    assert "Complaint:" in source and "CMP-2026-118" in source[:source.index("</dl>")]


def test_inbox_lists_group_tasks_and_claim_release(client, seeded, user):
    instance = instances.start_instance("capa", user("qa"), title="Inbox check")
    task = _ready(instance.id, "describe_problem")
    login(client, "qa")
    assert "Inbox check" in client.get("/").get_data(as_text=True)
    client.post(f"/tasks/{task.id}/claim")
    db.session.refresh(task)
    assert task.assignee.username == "qa"
    client.post(f"/tasks/{task.id}/release")
    db.session.refresh(task)
    assert task.assignee is None


def test_instance_page_shows_signature_and_document(client, seeded, user):
    from tests.integration.capa_steps import run_capa_to_approval
    instance = run_capa_to_approval(user)
    task = _ready(instance.id, "qa_approval")
    login(client, "head")
    response = client.post(f"/tasks/{task.id}/complete", data={"decision": "approve", "approval_comment": "ok",
                                                               "password": "wrong"})
    assert response.status_code == 401
    response = client.post(f"/tasks/{task.id}/complete", data={"decision": "approve", "approval_comment": "ok",
                                                               "password": demo.DEMO_PASSWORD})
    assert response.status_code == 302
    page = client.get(f"/instances/{instance.id}").get_data(as_text=True)
    assert "Helen Head" in page and "approved" in page
    assert "capa_report-" in page and ".docx" in page


@pytest.mark.parametrize("username,reason,cancelled", [
    ("admin", "Raised twice by mistake", True),
    ("admin", "   ", False),
    ("qa", "not mine to cancel", False),
])
def test_cancel_instance_needs_role_and_reason(client, seeded, user, username, reason, cancelled):
    instance = instances.start_instance("capa", user("qa"), title="Cancel me")
    login(client, username)
    response = client.post(f"/instances/{instance.id}/cancel", data={"reason": reason})
    assert response.status_code in (302, 403)
    db.session.refresh(instance)
    assert (instance.status == "cancelled") is cancelled
    if cancelled:
        assert _ready(instance.id, "describe_problem") is None
        event = db.session.scalar(db.select(AuditEvent).where(AuditEvent.action == "instance.cancelled"))
        assert event.reason == reason


def test_forms_without_csrf_token_are_refused(app, client, seeded):
    app.config["WTF_CSRF_ENABLED"] = True
    response = client.post("/login", data={"username": "qa", "password": demo.DEMO_PASSWORD})
    assert response.status_code == 400
    assert "CSRF" in response.get_data(as_text=True)


def test_idle_session_expires(app, client, seeded):
    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(seconds=1)
    login(client, "qa")
    assert client.get("/").status_code == 200
    time.sleep(2.1)
    g.pop("_login_user", None)  # the fixture's app context (and so g) outlives requests; a server's does not
    response = client.get("/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


@pytest.mark.parametrize("path", ["/admin/incidents", "/admin/outbox"])
@pytest.mark.parametrize("username,status", [("admin", 200), ("qa", 403), ("auditor", 403)])
def test_admin_pages_are_for_admins(client, seeded, path, username, status):
    login(client, username)
    assert client.get(path).status_code == status


def test_inbox_pages_through_many_tasks(app, client, seeded, user):
    app.config["PAGE_SIZE"] = 2
    for number in range(3):
        instances.start_instance("capa", user("qa"), title=f"Paged CAPA {number}")
    login(client, "qa")
    first = client.get("/?lang=en").get_data(as_text=True)
    assert "Page 1 of 2" in first and first.count("Paged CAPA") == 2
    second = client.get("/?page=2").get_data(as_text=True)
    assert second.count("Paged CAPA") == 1
    assert "Paged CAPA" not in client.get("/?q=nothing-matches").get_data(as_text=True)


def test_auditor_reads_instances_but_cannot_claim(client, seeded, user):
    instance = instances.start_instance("capa", user("qa"), title="Audited")
    task = _ready(instance.id, "describe_problem")
    login(client, "auditor")
    assert "Audited" in client.get(f"/instances/{instance.id}").get_data(as_text=True)
    assert client.post(f"/tasks/{task.id}/claim").status_code == 403
    db.session.refresh(task)
    assert task.assignee_id is None


def test_step_names_follow_the_page_language(client, seeded, user):
    instances.start_instance("capa", user("qa"), title="Named steps")
    login(client, "qa")
    assert "问题描述" in client.get("/?lang=zh_CN").get_data(as_text=True)
    refresh()  # the fixture's app context outlives requests; Flask-Babel caches the locale in it
    assert "Describe the problem" in client.get("/?lang=en").get_data(as_text=True)

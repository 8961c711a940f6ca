"""Awaiting my approval: a QA approver sees the pending procedure versions others wrote and the e-signature steps
waiting on them, with a count on the inbox and links to where they approve; others see only their own steps to sign;
the page reads in Chinese and says so when nothing waits; the API answers the same."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import event

from app.extensions import db
from app.services import demo, users
from app.services.workflow import approvals, procedure_control, processes
from tests.conftest import login
from tests.integration.capa_steps import ready_task, run_capa_to_approval
from tests.integration.diagrams import LONGER_DUE_IN, capa_variant

API = "/api/v1"


def _text(response) -> str:
    assert response.status_code == 200, response.status_code
    return response.get_data(as_text=True)


def _deploy_v2(author: str) -> None:
    processes.deploy_file(capa_variant(LONGER_DUE_IN).encode(), "capa.bpmn", users.get_by_username(author),
                          "Describe the problem within 9 days")


def _badge(page: str) -> int:
    return int(re.search(r'data-testid="awaiting-approval-count">(\d+)<', page)[1])


def test_a_qa_approver_sees_versions_by_others_and_steps_to_sign(client, seeded, user):
    _deploy_v2("admin")  # the admin is a QA approver too, but not of their own version
    capa = run_capa_to_approval(user)
    approval = ready_task(capa.id, "qa_approval")

    head = approvals.awaiting(user("head"))
    assert [(v.definition.key, v.version) for v in head.versions] == [("capa", 2)]
    assert [t.id for t in head.steps] == [approval.id] and head.count == 2
    admin = approvals.awaiting(user("admin"))
    assert admin.versions == [] and [t.id for t in admin.steps] == [approval.id]
    assert approvals.awaiting(user("qa")).count == 0  # not an approver, and the step is QA management's
    assert approvals.awaiting(user("auditor")).count == 0

    login(client, "head")
    assert _badge(_text(client.get("/?lang=en"))) == 2
    page = _text(client.get("/approvals/?lang=en"))
    assert 'data-testid="approvals-count">2<' in page
    versions = page.split('data-testid="pending-versions"', 1)[1].split("</table>", 1)[0]
    assert 'href="/processes/capa/2/review"' in versions and "Ada Admin" in versions
    assert "Describe the problem within 9 days" in versions
    steps = page.split('data-testid="signature-steps"', 1)[1].split("</table>", 1)[0]
    assert f'href="/tasks/{approval.id}"' in steps and "Approved" in steps and f"#{capa.id} Burr on hub" in steps
    assert client.get("/processes/capa/2/review").status_code == 200

    procedure_control.approve(user("head"), "capa", 2, demo.DEMO_PASSWORD)
    assert [v.version for v in approvals.awaiting(user("head")).versions] == []
    assert _badge(_text(client.get("/?lang=en"))) == 1


def test_the_page_reads_in_chinese_and_says_when_nothing_waits(client, seeded):
    login(client, "head")
    page = _text(client.get("/approvals/?lang=zh_CN"))
    assert "待我批准" in page and 'data-testid="approvals-empty"' in page and "没有等待您批准的事项" in page
    assert 'data-testid="versions-empty"' in page and 'data-testid="steps-empty"' in page
    assert "Awaiting my approval" not in page
    assert _badge(_text(client.get("/?lang=zh_CN"))) == 0
    client.post("/logout")
    login(client, "prod")  # no QA approver: no procedure versions section, only steps
    page = _text(client.get("/approvals/?lang=en"))
    assert 'data-testid="approvals-empty"' in page and 'data-testid="versions-empty"' not in page
    assert "Nothing awaits your approval." in page


def test_a_step_the_signer_may_not_sign_is_not_awaiting_them(seeded, user):
    """A release needs the QA releaser role: a QA member without it is not asked to sign it."""
    capa = run_capa_to_approval(user)
    approval = ready_task(capa.id, "qa_approval")
    approval.signature_meaning = "released"
    assert approvals.awaiting(user("head")).steps == []


def test_the_api_lists_what_awaits_the_caller(client, seeded, user):
    _deploy_v2("owner")
    capa = run_capa_to_approval(user)
    approval = ready_task(capa.id, "qa_approval")
    headers = {"Authorization": f"Bearer {users.issue_token('head')}"}
    body = client.get(f"{API}/approvals", headers=headers).get_json()
    assert body["count"] == 2
    [version] = body["versions"]
    assert (version["process"], version["version"], version["author"]) == ("capa", 2, "owner")
    assert version["review_url"].endswith("/processes/capa/2/review")
    assert version["approve_url"].endswith("/api/v1/processes/capa/versions/2/approve")
    [step] = body["steps"]
    assert (step["task"], step["meaning"], step["instance"]) == (approval.id, "approved", capa.id)
    assert step["url"].endswith(f"/tasks/{approval.id}")
    owner = client.get(f"{API}/approvals", headers={"Authorization": f"Bearer {users.issue_token('owner')}"})
    assert owner.get_json() == {"count": 0, "versions": [], "steps": [], "more_versions": 0, "more_steps": 0}
    assert client.get(f"{API}/approvals").status_code == 401


def test_the_badge_reads_only_the_open_signature_steps(seeded, user):
    """The badge is counted on every inbox view: it reads the partial index of open e-signature steps, never the
    open tasks of the user's groups (100,000 of them in the inbox benchmark)."""
    if db.engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL plans by its own statistics")
    capa = run_capa_to_approval(user)
    head = user("head")
    statements = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        statements.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", capture)
    try:
        assert approvals.count(head) == 1 and ready_task(capa.id, "qa_approval") is not None
    finally:
        event.remove(db.engine, "before_cursor_execute", capture)
        db.session.rollback()
    [(statement, parameters)] = [s for s in statements if "signature_meaning IS NOT NULL" in s[0]]
    with db.engine.connect() as connection:
        plan = [row[3] for row in connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)]
    assert any("ix_tasks_awaiting_signature" in step for step in plan), plan

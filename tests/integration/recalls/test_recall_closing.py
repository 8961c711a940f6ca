"""Closing a recall: its class's effectiveness thresholds (config RECALL_EFFECTIVENESS), a signed justification
to close below them, and the final approval page showing the figures it approves."""
from __future__ import annotations

from datetime import timedelta

import pytest

from app.exceptions import FormInvalid
from app.extensions import db
from app.models import Document, ProcessInstance
from app.services import demo
from app.services.procedures import recalls
from tests.conftest import T0, login
from tests.integration import recall_steps as steps

HOUR = timedelta(hours=1)
JUSTIFIED = {**steps.APPROVE, "closing_justification": "H1, H2 and US1 confirmed by phone that no stock is left."}


@pytest.fixture
def at_final_approval(plant, user) -> int:
    """The class I recall of the issue: planned at level C, one consignee of four acknowledged, 55 of 180 back."""
    instance = steps.decide(user, T0)
    steps.step(instance.id, "prepare_notices", steps.NOTICES, user, T0 + HOUR)
    d1 = next(c for c in recalls.recall_view(instance.id).consignees if c.customer.code == "D1")
    for element in ("submit_event_report", "fda_806_report"):
        steps.step(instance.id, element, steps.SUBMISSION, user, T0 + 2 * HOUR)
    steps.step(instance.id, "recall_plan", {**steps.PLAN, "level": "C"}, user, T0 + 2 * HOUR)
    steps.step(instance.id, "approve_plan", steps.APPROVE, user, T0 + 2 * HOUR)
    steps.step(instance.id, "monitor", steps.MONITOR, user, T0 + 3 * HOUR)
    recalls.acknowledge(_token(d1), {"received": True, "contact": "Chen Jie"}, T0 + 3 * HOUR)
    recalls.record_return(instance.id, "D1", "L1", 55, 0, user("qa"), T0 + 3 * HOUR)
    for consignee in recalls.recall_view(instance.id).consignees:
        if consignee.in_sample:
            recalls.record_check(instance.id, consignee.id, method="phone", effective=True, note="",
                                 actor=user("qa"), now=T0 + 4 * HOUR)
    steps.step(instance.id, "effectiveness", steps.EFFECTIVE, user, T0 + 4 * HOUR)
    steps.step(instance.id, "disposition", {"disposition": [
        {"lot_number": "L1", "quantity": 55, "disposition": "destroy", "record": "DR-1"}]}, user, T0 + 5 * HOUR)
    return instance.id


def _token(consignee) -> str:
    from app.models import OutboxMessage
    return db.session.get(OutboxMessage, consignee.outbox_message_id).body.split("/ack/")[1].split()[0]


def test_class_one_defaults_to_level_a_and_every_consignee(at_final_approval):
    thresholds = {t.name: t for t in recalls.recall_view(at_final_approval).thresholds}
    assert {name: (t.required, t.actual, t.met) for name, t in thresholds.items()} == {
        "level": ("A", "C", False), "contacted": ("100%", "25.0%", False),
        "acknowledged": ("100%", "25.0%", False), "recovered": ("90%", "30.6%", False)}


def test_closing_below_the_thresholds_needs_a_signed_justification(at_final_approval, user):
    with pytest.raises(FormInvalid) as err:
        steps.step(at_final_approval, "final_approval", steps.APPROVE, user, T0 + 6 * HOUR)
    assert list(err.value.errors) == ["closing_justification"]
    assert "below the effectiveness thresholds of class I" in err.value.errors["closing_justification"][0]
    steps.step(at_final_approval, "final_approval", JUSTIFIED, user, T0 + 6 * HOUR)
    instance = db.session.get(ProcessInstance, at_final_approval)
    assert instance.status == "completed"


def test_sending_back_needs_no_justification(at_final_approval, user):
    steps.step(at_final_approval, "final_approval", steps.REJECT, user, T0 + 6 * HOUR)
    assert steps.ready(at_final_approval, "disposition") is not None


def test_thresholds_are_configurable_per_class(app, at_final_approval, user):
    app.config["RECALL_EFFECTIVENESS"] = {"I": {"level": "C", "contacted_pct": 25, "acknowledged_pct": 25,
                                                "recovered_pct": 30}}
    assert all(t.met for t in recalls.recall_view(at_final_approval).thresholds)
    steps.step(at_final_approval, "final_approval", steps.APPROVE, user, T0 + 6 * HOUR)
    assert db.session.get(ProcessInstance, at_final_approval).status == "completed"


def test_the_final_approval_page_shows_the_figures_and_refuses_without_justification(client, at_final_approval):
    task = steps.ready(at_final_approval, "final_approval")
    login(client, "head")
    page = client.get(f"/tasks/{task.id}?lang=en").get_data(as_text=True)
    for shown in ("Units shipped", "180", "Units returned", "55", "Units recovered", "30.6%",
                  "Consignees acknowledged", "1 / 4", "Consignees contacted by the effectiveness check",
                  "Threshold: consignees acknowledged", "25.0% of at least 100%: NOT met",
                  "Justification for closing below the effectiveness thresholds"):
        assert shown in page, shown
    response = client.post(f"/tasks/{task.id}/complete?lang=en",
                           data={"decision": "approve", "password": demo.DEMO_PASSWORD})
    assert response.status_code == 422
    assert "below the effectiveness thresholds of class I" in response.get_data(as_text=True)
    assert db.session.get(ProcessInstance, at_final_approval).status == "running"


def test_the_summary_reports_the_thresholds_and_the_justification(at_final_approval, user):
    steps.step(at_final_approval, "final_approval", JUSTIFIED, user, T0 + 6 * HOUR)
    summary = db.session.scalar(db.select(Document).where(Document.instance_id == at_final_approval,
                                                          Document.kind == "recall_summary"))
    context = recalls.document_context(db.session.get(ProcessInstance, at_final_approval), T0, "en")["recall"]
    assert context["thresholds_met"] is False
    assert [t["met_text"] for t in context["thresholds"]] == ["not met"] * 4
    assert context["closing_justification"] == JUSTIFIED["closing_justification"]
    assert summary is not None

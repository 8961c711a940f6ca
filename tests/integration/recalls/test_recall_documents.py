"""Every recall template (templates/*.docx), rendered from a real run of the recall procedure in English and
Chinese, read back as an inspector would: no empty field, the figures and entries given, no raw status code."""
from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from app.extensions import db
from app.models import Customer, Document, OutboxMessage, ProcessInstance, ProductLot, Shipment
from app.models.types import utcnow
from app.services.procedures import recalls
from app.services.workflow import instances, timers
from tests.conftest import ROOT, T0
from tests.integration import recall_steps as steps
from tests.integration.document_checks import docx_text, empty_fields, raw_codes

HOUR, DAY = timedelta(hours=1), timedelta(days=1)
RECALL_TEMPLATES = sorted(path.name for path in (ROOT / "templates").glob("*.docx")
                          if path.name.startswith(("recall_", "health_hazard_evaluation")))
# Free text without a word that is also a code (a "hospital" in a description is not an untranslated code).
TRIGGER = {**steps.TRIGGER, "description": "Leaking infusion sets reported by a clinic"}
NOTICES = {**steps.NOTICES, "instructions_en": "Stop use and send all units back."}
ASSESSMENT = {**steps.ASSESSMENT, "countries": "CN, DE"}  # DE only as entered: no consignee there
DISPOSITION = {"disposition": [{"lot_number": "L1", "quantity": 60, "disposition": "destroy", "record": "DR-1"},
                               {"lot_number": "L2", "quantity": 15, "disposition": "rework", "record": "RW-1"}]}


@pytest.fixture
def end_users(plant):
    """Add a US hospital and end users in the US and CN, so every notice template has a consignee."""
    lot = plant["L2"]
    for code, kind, country in (("UH", "hospital", "US"), ("E1", "end_user", "US"), ("E2", "end_user", "CN")):
        customer = Customer(code=code, name=f"Consignee {code}", kind=kind, region="Region " + code, country=country,
                            contact=f"Contact {code}", email=f"{code.lower()}@example.com")
        db.session.add(customer)
        db.session.flush()
        db.session.add(Shipment(product_lot_id=lot.id, customer_id=customer.id, quantity=5, shipped_on=date(2026, 7, 2),
                                document_no=f"DN-L2-{code}"))
    db.session.commit()
    return plant


def _run(user, language: str) -> ProcessInstance:
    """Play a class I recall from trigger to close in language: every consignee but H2 (paper notice)
    acknowledges, all return everything they hold, a progress report falls due while it is monitored."""
    instance = instances.start_instance("recall", user("qa"), {"title": "Leaking infusion sets"},
                                        title="Leaking infusion sets", language=language, now=T0)
    steps.step(instance.id, "trigger", TRIGGER, user, T0)
    steps.step(instance.id, "assessment", ASSESSMENT, user, T0)
    steps.step(instance.id, "sign_assessment", steps.APPROVE, user, T0)
    steps.step(instance.id, "decision", steps.APPROVE, user, T0)
    steps.step(instance.id, "prepare_notices", NOTICES, user, T0 + HOUR)
    for element in ("submit_event_report", "fda_806_report", "eu_fsca_report"):
        if steps.ready(instance.id, element):
            steps.step(instance.id, element, steps.SUBMISSION, user, T0 + 2 * HOUR)
    steps.step(instance.id, "recall_plan", steps.PLAN, user, T0 + 2 * HOUR)
    steps.step(instance.id, "approve_plan", steps.APPROVE, user, T0 + 2 * HOUR)
    for consignee in recalls.recall_view(instance.id).consignees:
        answers = {"received": True, "on_hand": 0, "contact": "QA desk", "forwarded": True,
                   **{f"returned_{line.id}": line.quantity_held for line in consignee.lines}}
        if consignee.outbox_message_id:
            token = db.session.get(OutboxMessage, consignee.outbox_message_id).body.split("/ack/")[1].split()[0]
            recalls.acknowledge(token, answers, T0 + 3 * HOUR)
        else:  # H2 got its notice on paper: QA records what it sent back
            for line in consignee.lines:
                recalls.record_return(instance.id, consignee.customer.code, line.product_lot.lot_number,
                                      line.quantity_held, 0, user("qa"), T0 + 3 * HOUR)
    later = max(T0, utcnow()) + 15 * DAY  # the monitoring timer counts from when the task became ready
    timers.fire_due_timers(now=later)  # the first progress report; H2's paper notice is escalated as undelivered
    steps.step(instance.id, "escalation_undelivered", {"action": "H2 confirmed the paper notice by phone."}, user,
               later)
    steps.step(instance.id, "monitor", steps.MONITOR, user, later)
    for consignee in recalls.recall_view(instance.id).consignees:
        recalls.record_check(instance.id, consignee.id, method="phone", effective=True, note="", actor=user("qa"),
                             now=later)
    steps.step(instance.id, "effectiveness", steps.EFFECTIVE, user, later)
    steps.step(instance.id, "disposition", DISPOSITION, user, later)
    steps.step(instance.id, "final_approval", {**steps.APPROVE, "closing_justification": "H2 answered on paper."},
               user, later)
    db.session.expire_all()
    instance = db.session.get(ProcessInstance, instance.id)
    assert instance.status == "completed"
    return instance


@pytest.fixture
def documents(end_users, user) -> dict[str, list[Document]]:
    """The documents of the recall played in English and in Chinese, by template file."""
    for language in ("en", "zh-CN"):
        _run(user, language)
    found: dict[str, list[Document]] = {}
    for document in db.session.scalars(db.select(Document).order_by(Document.id)):
        found.setdefault(document.template_name, []).append(document)
    return found


def test_every_recall_template_is_rendered_with_no_empty_field(documents):
    assert sorted(documents) == RECALL_TEMPLATES
    problems = {name: empty_fields(document) for name, rendered in documents.items() for document in rendered}
    assert {name: rows for name, rows in problems.items() if rows} == {}


def test_chinese_documents_show_no_raw_codes(documents):
    raw = {name: raw_codes(document) for name, rendered in documents.items() for document in rendered}
    assert {name: codes for name, codes in raw.items() if codes} == {}


def test_the_documents_carry_what_was_entered_and_counted(documents):
    evaluation = docx_text(documents["health_hazard_evaluation.en.docx"][0].content)
    assert "CN, DE, US" in evaluation  # the assessment's countries and the consignees'
    for name in ("recall_notice_distributor.en.docx", "recall_notice_hospital.zh-CN.docx",
                 "recall_notice_end_user.en.docx"):
        assert (T0 + HOUR).date().isoformat() in docx_text(documents[name][0].content), name  # the notice's date
    plan = docx_text(documents["recall_plan.zh-CN.docx"][0].content)
    assert "已召回" in plan
    summary = documents["recall_summary.en.docx"][0]
    figures = summary.context["recall"]
    assert figures["totals"]["quantity_shipped"] == 195 == figures["totals"]["quantity_returned"]
    assert figures["disposed"] == {"destroy": 60, "rework": 15}
    text = docx_text(summary.content)
    assert "Returned units destroyed by us (disposition)\n60" in text
    assert "Effectiveness thresholds met\nNo" in text  # H2 did not acknowledge
    assert "Consignees acknowledged 85.7% / 100% (not met)" in text
    assert db.session.scalar(db.select(db.func.count(ProductLot.id)).where(ProductLot.status == "recalled")) == 2


def test_the_templates_dir_holds_the_recall_templates_in_both_languages():
    assert len(RECALL_TEMPLATES) == 16 and all(Path(ROOT / "templates" / name).exists() for name in RECALL_TEMPLATES)

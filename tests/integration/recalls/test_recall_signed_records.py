"""A recall's signed records carry their signatures: each gate issues its documents as a new revision with the
signers' names, times and meanings in the document's language, and the signature binds to those bytes."""
from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from io import BytesIO
from zoneinfo import ZoneInfo

import docx
import pytest

from app.extensions import db
from app.models import Document, ProcessInstance, Signature, Task
from app.services.evidence.signed_records import SIGN_OFF_HEADERS
from app.services.procedures import recalls
from app.services.workflow import instances
from tests.conftest import T0
from tests.integration import recall_steps as steps

HOUR = timedelta(hours=1)
# 80 of 180 units came back: below class I's threshold, so the approval justifies the close
CLOSING = {**steps.APPROVE, "closing_justification": "The other consignees confirmed by phone that no stock is left."}


def _close(user, language: str) -> ProcessInstance:
    """Run a recall in language from the trigger through the signed final approval."""
    instance = instances.start_instance("recall", user("qa"), {"title": "Leaking infusion sets"},
                                        title="Leaking infusion sets", language=language, now=T0)
    steps.step(instance.id, "trigger", steps.TRIGGER, user, T0)
    steps.step(instance.id, "assessment", steps.ASSESSMENT, user, T0)
    steps.step(instance.id, "sign_assessment", steps.APPROVE, user, T0 + HOUR)
    steps.step(instance.id, "decision", steps.APPROVE, user, T0 + 2 * HOUR)
    steps.step(instance.id, "prepare_notices", steps.NOTICES, user, T0 + 3 * HOUR)
    for element in ("submit_event_report", "fda_806_report"):
        steps.step(instance.id, element, steps.SUBMISSION, user, T0 + 3 * HOUR)
    steps.step(instance.id, "recall_plan", steps.PLAN, user, T0 + 3 * HOUR)
    steps.step(instance.id, "approve_plan", steps.APPROVE, user, T0 + 3 * HOUR)
    recalls.record_return(instance.id, "D1", "L1", 80, 0, user("qa"), now=T0 + 4 * HOUR)
    steps.step(instance.id, "monitor", steps.MONITOR, user, T0 + 4 * HOUR)
    for consignee in recalls.recall_view(instance.id).consignees:
        recalls.record_check(instance.id, consignee.id, method="phone", effective=True, note="", actor=user("qa"),
                             now=T0 + 5 * HOUR)
    steps.step(instance.id, "effectiveness", steps.EFFECTIVE, user, T0 + 5 * HOUR)
    steps.step(instance.id, "disposition", steps.DISPOSITION, user, T0 + 6 * HOUR)
    steps.step(instance.id, "final_approval", CLOSING, user, T0 + 7 * HOUR + timedelta(minutes=5))
    db.session.expire_all()
    return db.session.get(ProcessInstance, instance.id)


def _latest(instance_id: int, kind: str) -> Document:
    return db.session.scalar(db.select(Document).where(Document.instance_id == instance_id, Document.kind == kind)
                             .order_by(Document.revision.desc()).limit(1))


def _rows(document: Document) -> list[list[str]]:
    parsed = docx.Document(BytesIO(document.content))
    return [[cell.text for cell in row.cells] for table in parsed.tables for row in table.rows]


def _signature(instance_id: int, element: str) -> Signature:
    return db.session.scalar(db.select(Signature).join(Task, Task.id == Signature.task_id)
                             .where(Signature.instance_id == instance_id, Task.element_id == element))


# (kind, the sign-off rows each language shows: role, printed name, signature, plant time); the English plant
# runs on UTC, the Chinese one in Shanghai
ZONES = {"en": "UTC", "zh-CN": "Asia/Shanghai"}
SIGN_OFFS = {
    "en": [("health_hazard_evaluation", [
        ["Authored by (Quality assurance)", "Li Na", "Signed electronically", "2026-11-23 10:00 UTC"],
        ["Approved by (Responsible person (management representative))", "Zhang Min", "Signed electronically",
         "2026-11-23 11:00 UTC"]]),
        ("recall_plan", [["Approved by (Head of QA)", "Helen Head", "Signed electronically", "2026-11-23 12:00 UTC"]]),
        ("recall_summary", [["Approved by (Head of QA)", "Helen Head", "Signed electronically",
                             "2026-11-23 16:05 UTC"]])],
    "zh-CN": [("health_hazard_evaluation", [["编制（质量保证）", "Li Na", "已电子签名", "2026-11-23 18:00 CST"],
                                            ["批准（管理者代表）", "Zhang Min", "已电子签名", "2026-11-23 19:00 CST"]]),
              ("recall_plan", [["批准（质量负责人）", "Helen Head", "已电子签名", "2026-11-23 20:00 CST"]]),
              ("recall_summary", [["批准（质量负责人）", "Helen Head", "已电子签名", "2026-11-24 00:05 CST"]])],
}


@pytest.mark.parametrize("language", ["en", "zh-CN"])
def test_signed_documents_show_every_signature_in_their_language(app, plant, user, language):
    app.config["PLANT_TIME_ZONE"] = ZONES[language]
    instance = _close(user, language)
    for kind, expected in SIGN_OFFS[language]:
        document = _latest(instance.id, kind)
        rows = _rows(document)
        header = rows.index(list(SIGN_OFF_HEADERS[0] if language == "en" else SIGN_OFF_HEADERS[1]))
        signed = [row for row in rows[header + 1:] if row[2]]
        assert signed == expected, kind
        assert not any("管理者代表" in row[0] or "Management representative" in row[0] for row in signed
                       if row[1] == "Helen Head")
        text = "\n".join(p.text for p in docx.Document(BytesIO(document.content)).paragraphs)
        assert "see the signature manifest" not in text and "请参阅签名清单" not in text
        properties = docx.Document(BytesIO(document.content)).core_properties
        assert properties.author and properties.last_modified_by == expected[-1][1]
        assert properties.created == datetime.strptime(expected[-1][3][:16], "%Y-%m-%d %H:%M").replace(
            tzinfo=ZoneInfo(ZONES[language])).astimezone(UTC)


def test_each_signature_binds_to_the_issued_bytes_and_verifies(plant, user, runner):
    instance = _close(user, "en")
    for element, kind in (("sign_assessment", "health_hazard_evaluation"), ("decision", "health_hazard_evaluation"),
                          ("approve_plan", "recall_plan"), ("final_approval", "recall_summary")):
        signature = _signature(instance.id, element)
        item = next(item for item in signature.documents if item["kind"] == kind)
        document = db.session.get(Document, item["id"])
        assert document.element_id == element and document.context["signed_revision"]["signatures"][-1][
            "printed_name"] == signature.printed_name
        assert item["sha256"] == document.sha256 == hashlib.sha256(document.content).hexdigest()
        assert signature.printed_name in [row[1] for row in _rows(document)]
    assert _latest(instance.id, "health_hazard_evaluation").revision == 3  # rendered, authored, approved
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 0, result.output


def test_each_consignee_has_its_own_notice_and_the_gate_signs_them_all(plant, user):
    instance = _close(user, "en")
    notices = {c.customer.code: c.notice for c in recalls.recall_view(instance.id).consignees}
    assert sorted(notices) == ["D1", "H1", "H2", "US1"]
    assert len({(n.kind, n.revision) for n in notices.values()}) == 4
    assert all(n.revision == 1 and n.context["consignee"]["code"] == code for code, n in notices.items())
    signed = {item["id"] for item in _signature(instance.id, "final_approval").documents}
    assert {n.id for n in notices.values()} <= signed

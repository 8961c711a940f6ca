"""Recall rules through the service layer: what the trigger accepts, editing the affected list, returns,
the effectiveness gate, send-backs, the documents' key fields and starting a recall from a lot or a CAPA."""
from __future__ import annotations

import io
from datetime import timedelta
from io import BytesIO

import docx
import pytest

from app.exceptions import Conflict, FormInvalid, ImportRefused, PermissionDenied
from app.extensions import db
from app.models import AuditEvent, Document, RecallLine
from app.services.procedures import recalls
from app.services.workflow import instances
from tests.conftest import T0
from tests.integration import recall_steps as steps

HOUR = timedelta(hours=1)


def _text(document: Document) -> str:
    parsed = docx.Document(BytesIO(document.content))
    cells = [cell.text for table in parsed.tables for row in table.rows for cell in row.cells]
    return "\n".join([p.text for p in parsed.paragraphs] + cells)


def _documents(instance_id: int, kind: str) -> list[Document]:
    return list(db.session.scalars(db.select(Document).where(Document.instance_id == instance_id,
                                                             Document.kind == kind).order_by(Document.id)))


def _lots(instance_id: int) -> list[str]:
    return [row.lot.lot_number for row in recalls.recall_view(instance_id).lots]


@pytest.mark.parametrize(("scope", "field", "message"), [
    ({"product_lots": "L1, NOPE"}, "product_lots", "Unknown product lot(s): NOPE."),
    ({"material_lots": "M9"}, "material_lots", "Unknown material lot(s): M9."),
    ({"sterilization_batches": "ST-X"}, "sterilization_batches", "No lot was sterilized in batch(es): ST-X."),
    ({"serials": "SN0001-SN0012"}, "serials", "Unknown serial number(s): SN0011, SN0012."),
    ({"serials": "SN0009-SN0001"}, "serials", "SN0009-SN0001 is not a serial range"),
    ({"udi": "(01)06901234567893(10)L1"}, "udi", "This UDI cannot be read"),
    ({"udi": "(01)06901234567892(10)L9"}, "udi", "No lot matches this UDI."),
    ({}, "product_lots", "Name at least one product lot"),
])
def test_trigger_refuses_what_does_not_exist(plant, user, scope, field, message):
    instance = instances.start_instance("recall", user("qa"), {"title": "t"}, title="t", language="en", now=T0)
    data = {**{k: v for k, v in steps.TRIGGER.items() if k != "material_lots"}, **scope}
    with pytest.raises(FormInvalid) as err:
        steps.step(instance.id, "trigger", data, user, T0)
    assert any(m.startswith(message) for m in err.value.errors[field])
    assert steps.ready(instance.id, "trigger") is not None and _lots(instance.id) == []


def test_trigger_refuses_an_empty_affected_list(plant, user):
    from app.models import MaterialLot, Supplier
    db.session.add(MaterialLot(supplier=db.session.scalar(db.select(Supplier)), material="ink", lot_number="M-UNUSED"))
    db.session.commit()
    instance = instances.start_instance("recall", user("qa"), {"title": "t"}, title="t", language="en", now=T0)
    with pytest.raises(FormInvalid) as err:
        steps.step(instance.id, "trigger", {**steps.TRIGGER, "material_lots": "M-UNUSED"}, user, T0)
    assert err.value.errors["product_lots"] == ["No product lot is affected: the affected list would be empty."]


@pytest.mark.parametrize(("scope", "lots"), [
    ({"serials": "SN0001-SN0003"}, ["L2"]),
    ({"udi": "(01)06901234567892(17)290531(10)L1"}, ["L1"]),
    ({"sterilization_batches": "ST-L3"}, ["L3"]),
    ({"product_lots": "L3", "material_lots": "M1"}, ["L1", "L2", "L3"]),
])
def test_trigger_scope_by_serial_udi_batch_or_lots(plant, user, scope, lots):
    data = {**{k: v for k, v in steps.TRIGGER.items() if k != "material_lots"}, **scope}
    instance = steps.start(user, T0, trigger=data)
    assert _lots(instance.id) == lots


def test_expand_serials_keeps_width_and_single_items():
    assert recalls.expand_serials("A0098-A0101, X9") == ["A0098", "A0099", "A0100", "A0101", "X9"]
    with pytest.raises(ValueError):
        recalls.expand_serials("A1-A200000")


def test_editing_the_affected_list_is_audited_and_frozen_once_notices_are_out(plant, user):
    instance = steps.start(user, T0)
    qa = user("qa")
    view = recalls.edit_affected(instance.id, add=["L3"], remove=["L2"], reason="L2 not made on line 3", actor=qa,
                                 now=T0 + HOUR)
    assert [row.lot.lot_number for row in view.lots] == ["L1", "L3"]
    assert sorted(c.customer.code for c in view.consignees) == ["D1", "H1"]
    event = db.session.scalar(db.select(AuditEvent).where(AuditEvent.action == "recall.affected_edited"))
    assert event.reason == "L2 not made on line 3" and event.new["added"] == ["L3"]
    with pytest.raises(FormInvalid) as err:
        recalls.edit_affected(instance.id, remove=["L1", "L3"], reason="x", actor=qa)
    assert "remove" in err.value.errors
    for bad in ({"add": ["L9"], "reason": "x"}, {"add": ["L2"], "reason": " "}, {"remove": ["L2"], "reason": "x"}):
        with pytest.raises(FormInvalid):
            recalls.edit_affected(instance.id, actor=qa, **bad)
    with pytest.raises(PermissionDenied):
        recalls.edit_affected(instance.id, add=["L2"], reason="x", actor=user("prod"))
    steps.step(instance.id, "assessment", steps.ASSESSMENT, user, T0)
    steps.step(instance.id, "sign_assessment", steps.APPROVE, user, T0)
    steps.step(instance.id, "decision", steps.APPROVE, user, T0)
    steps.step(instance.id, "prepare_notices", steps.NOTICES, user, T0)
    with pytest.raises(Conflict):
        recalls.edit_affected(instance.id, add=["L2"], reason="scope grew", actor=qa)
    assert _lots(instance.id) == ["L1", "L3"]


def test_returns_cannot_exceed_what_was_shipped(plant, user, tmp_path):
    instance = steps.decide(user, T0)
    qa = user("qa")
    recalls.record_return(instance.id, "D1", "L1", 60, 10, qa, now=T0)
    with pytest.raises(FormInvalid) as err:
        recalls.record_return(instance.id, "D1", "L1", 95, 10, qa, now=T0)
    assert "exceed the 100 shipped" in err.value.errors["returned"][0]
    with pytest.raises(FormInvalid):
        recalls.record_return(instance.id, "H2", "L1", 1, 0, qa, now=T0)  # L1 never went to H2
    path = tmp_path / "returns.csv"
    path.write_text("customer,lot,returned,destroyed\nH2,L2,50,0\nUS1,L2,31,0\nD1,L9,1,0\nH1,L1,x,0\n")
    with pytest.raises(ImportRefused) as refused:
        recalls.import_returns(instance.id, path, qa, now=T0)
    assert [(e["line"], e["column"]) for e in refused.value.errors] == [(3, "returned"), (4, "lot"), (5, "returned")]
    db.session.expire_all()
    lines = {(line.consignee.customer.code, line.product_lot.lot_number): (line.quantity_returned,
                                                                          line.quantity_destroyed)
             for line in db.session.scalars(db.select(RecallLine))}
    assert lines[("D1", "L1")] == (60, 10) and lines[("H2", "L2")] == (0, 0)
    path.write_text("customer,lot,returned,destroyed\nH2,L2,50,0\nUS1,L2,20,5\n")
    assert recalls.import_returns(instance.id, path, qa, now=T0) == 2
    assert recalls.recall_view(instance.id).totals["recovered_pct"] == "80.6%"  # 145 of the 180 units shipped


@pytest.mark.parametrize(("level", "population", "b_percent", "size"), [
    ("A", 7, 50, 7), ("B", 7, 30, 3), ("C", 7, 50, 1), ("C", 45, 50, 5), ("D", 200, 50, 4), ("D", 3, 50, 1),
    ("E", 50, 50, 0), ("A", 0, 50, 0),
])
def test_sample_size_per_level(level, population, b_percent, size):
    assert recalls.sample_size(level, population, b_percent) == size


def _to_effectiveness(user, level="A"):
    instance = steps.decide(user, T0)
    steps.step(instance.id, "prepare_notices", steps.NOTICES, user, T0)
    for element in ("submit_event_report", "fda_806_report"):
        steps.step(instance.id, element, steps.SUBMISSION, user, T0)
    steps.step(instance.id, "recall_plan", {**steps.PLAN, "level": level}, user, T0)
    steps.step(instance.id, "approve_plan", steps.APPROVE, user, T0)
    steps.step(instance.id, "monitor", steps.MONITOR, user, T0)
    return instance


def test_a_justified_exception_closes_an_unmet_level(plant, user):
    instance = _to_effectiveness(user, level="C")
    sample = [c for c in recalls.recall_view(instance.id).consignees if c.in_sample]
    assert len(sample) == 1
    with pytest.raises(FormInvalid) as err:
        steps.step(instance.id, "effectiveness", steps.EFFECTIVE, user, T0)
    assert "Level C needs 1 checked consignee(s); 1 of the sample are not verified" in err.value.errors["outcome"][0]
    with pytest.raises(FormInvalid) as err:
        steps.step(instance.id, "effectiveness", {"outcome": "exception"}, user, T0)
    assert "justification" in err.value.errors
    steps.step(instance.id, "effectiveness", {"outcome": "exception", "justification": "Consignee closed down."},
               user, T0)
    assert steps.ready(instance.id, "disposition") is not None


def test_an_ineffective_check_needs_a_note_and_does_not_meet_the_level(plant, user):
    instance = _to_effectiveness(user, level="C")
    consignee = next(c for c in recalls.recall_view(instance.id).consignees if c.in_sample)
    with pytest.raises(FormInvalid):
        recalls.record_check(instance.id, consignee.id, method="phone", effective=False, note="", actor=user("qa"))
    recalls.record_check(instance.id, consignee.id, method="phone", effective=False, note="Still selling",
                         actor=user("qa"), now=T0)
    with pytest.raises(FormInvalid):
        steps.step(instance.id, "effectiveness", steps.EFFECTIVE, user, T0)


@pytest.mark.parametrize(("gate", "back_to"), [("sign_assessment", "assessment"), ("decision", "assessment")])
def test_send_back_returns_to_the_assessment(plant, user, gate, back_to):
    instance = steps.start(user, T0)
    steps.step(instance.id, "assessment", steps.ASSESSMENT, user, T0)
    if gate == "decision":
        steps.step(instance.id, "sign_assessment", steps.APPROVE, user, T0)
    with pytest.raises(FormInvalid):
        steps.step(instance.id, gate, {"decision": "reject"}, user, T0)  # a send-back needs a comment
    steps.step(instance.id, gate, steps.REJECT, user, T0)
    assert steps.ready(instance.id, back_to) is not None
    assert {lot.status for lot in (row.lot for row in recalls.recall_view(instance.id).lots)} == {"released"}


def test_documents_carry_the_key_fields(plant, user):
    instance = steps.decide(user, T0)
    hhe = _text(_documents(instance.id, "health_hazard_evaluation")[0])
    assert "Air embolism" in hhe and "L1" in hhe and "L2" in hhe
    report = _documents(instance.id, "recall_event_report")[0]
    text = _text(report)
    assert "Infusion set" in text and "180" in text and "Jiangsu" in text and "Massachusetts" in text
    for expected in ("Recall class\nI\n", "Decision date\n2026-11-23", "Decided by\nZhang Min",
                     "Markets affected\nCN, US", "L1\nInfusion set\n2026-06-01\n2029-05-31\n500\n100",
                     "L2\nInfusion set\n2026-06-01\n2029-05-31\n500\n80"):
        assert expected in text
    assert report.context["recall"]["recall_class"] == "I"
    assert report.context["recall"]["totals"]["consignees"] == 4
    assert report.context["recall"]["decided_by"] == "Zhang Min"
    steps.step(instance.id, "prepare_notices", steps.NOTICES, user, T0)
    notices = {d.context["consignee"]["code"]: d for d in db.session.scalars(db.select(Document).where(
        Document.instance_id == instance.id, Document.kind.startswith("recall_notice_")))}  # one per consignee
    assert notices["US1"].language == "en" and notices["D1"].language == "zh-CN"
    assert notices["D1"].template_name == "recall_notice_distributor.zh-CN.docx"
    assert notices["H1"].template_name == "recall_notice_hospital.zh-CN.docx"
    us = _text(notices["US1"])
    assert "L2" in us and "30" in us and "L1" not in us
    assert notices["D1"].context["notice"]["forward_request"] is True
    assert notices["H1"].context["notice"]["forward_request"] is False


def test_a_recall_starts_from_a_lot_or_a_capa_with_the_trigger_filled(plant, user):
    lot = plant["L2"]
    instance = recalls.start_recall(user("qa"), lot_id=lot.id, now=T0)
    assert instance.title == "Recall: lot L2" and instance.data["product_lots"] == "L2"
    capa = instances.start_instance("capa", user("qa"), {"title": "Leak"}, title="Leak", now=T0)
    from app.services.lots import lots as lot_service
    lot_service.link_lots(capa.id, [plant["L1"].id], "subject")
    db.session.commit()
    from_capa = recalls.start_recall(user("qa"), capa_instance_id=capa.id, now=T0)
    assert from_capa.data["product_lots"] == "L1" and from_capa.data["capa_instance_id"] == capa.id
    assert db.session.scalar(db.select(AuditEvent).where(AuditEvent.action == "recall.started_from_capa",
                                                         AuditEvent.instance_id == capa.id)) is not None


def test_rejected_final_approval_goes_back_to_the_disposition(plant, user):
    instance = _to_effectiveness(user)
    for consignee in recalls.recall_view(instance.id).consignees:
        recalls.record_check(instance.id, consignee.id, method="email", effective=True, note="", actor=user("qa"))
    recalls.record_return(instance.id, "D1", "L1", 80, 0, user("qa"))
    steps.step(instance.id, "effectiveness", steps.EFFECTIVE, user, T0)
    with pytest.raises(FormInvalid) as err:
        steps.step(instance.id, "disposition", {"disposition": [
            {"lot_number": "L3", "quantity": 1, "disposition": "destroy"},
            {"lot_number": "L1", "quantity": 81, "disposition": "rework"}]}, user, T0)
    assert set(err.value.errors) == {"disposition.0.lot_number", "disposition.1.quantity"}
    steps.step(instance.id, "disposition", steps.DISPOSITION, user, T0)
    steps.step(instance.id, "final_approval", {"decision": "reject", "comment": "Record no. missing"}, user, T0)
    assert steps.ready(instance.id, "disposition") is not None
    assert len(_documents(instance.id, "recall_summary")) == 2  # rendered, issued with the rejection
    steps.step(instance.id, "disposition", steps.DISPOSITION, user, T0 + HOUR)
    assert len(_documents(instance.id, "recall_summary")) == 3
    _ = io  # keep the import list honest for readers


def test_an_eu_country_in_the_assessment_adds_the_fsca_report(plant, user):
    instance = steps.decide(user, T0, assessment={**steps.ASSESSMENT, "recall_class": "II", "countries": "CN, de"})
    due = {d.key: d.due_at for d in recalls.recall_view(instance.id).deadlines}
    assert due["eu_fsca"] == due["consignee_notice"] == T0 + timedelta(days=3)
    assert steps.ready(instance.id, "eu_fsca_report") is not None
    assert instance.data["markets"] == ["CN", "DE", "US"]

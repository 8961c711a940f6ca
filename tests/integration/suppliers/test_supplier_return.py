"""The shipped supplier return through the service layer with an explicit clock: lots quarantined, the SCAR
e-mailed with a single-use response link, the supplier's answer, rejected and accepted verifications, the GSP
return record and note, the supplier suspended (its new lots refused) and the e-signed close."""
from __future__ import annotations

from datetime import timedelta
from io import BytesIO

import docx
import pytest

from app.exceptions import Conflict, FormInvalid, Gone, ImportRefused, NotFound
from app.extensions import db
from app.models import (
    AuditEvent,
    Deadline,
    Document,
    MaterialLot,
    OutboxMessage,
    ProcessInstance,
    ScarRequest,
    Signature,
    Supplier,
    SupplierReturn,
    Task,
)
from app.services.lots import import_rules, imports, lots
from app.services.procedures import supplier_returns
from app.services.workflow import response_links, tasks, timers
from tests.conftest import T0
from tests.integration.suppliers.conftest import (
    ACCEPT,
    ANSWER,
    AUTHORISE,
    CLOSE,
    IDENTIFY,
    REJECT,
    REQUEST,
    SCAR,
    STATUS,
    ready,
    scar_link,
    ship,
    start,
    step,
)

# Every path also runs cold: each engine step as in a freshly started process.
pytestmark = pytest.mark.usefixtures("engine_caches")

DAY, HOUR = timedelta(days=1), timedelta(hours=1)


def _docx_text(document: Document) -> str:
    parsed = docx.Document(BytesIO(document.content))
    cells = [cell.text for table in parsed.tables for row in table.rows for cell in row.cells]
    return "\n".join([p.text for p in parsed.paragraphs] + cells)


def _statuses() -> dict[str, str]:
    db.session.expire_all()
    return {lot.lot_number: lot.status for lot in db.session.scalars(db.select(MaterialLot))}


def _scars(instance_id: int) -> list[ScarRequest]:
    db.session.expire_all()
    return supplier_returns.scar_rounds(instance_id)


def _import_lot(user, supplier: str, number: str):
    return imports.create_record("material_lots", {"supplier_code": supplier, "material": "PVC resin",
                                                   "lot_number": number}, user("qa"))


def test_supplier_return_from_a_failed_inspection_to_the_signed_close(supplier_plant, user):
    instance = supplier_returns.start_return(user("qa"), supplier_plant["M1"].id, now=T0)
    identify = ready(instance.id, "identify")
    assert tasks.form_values(identify, {"properties": {"material_lots": {}, "source": {}}}) == {
        "material_lots": "M1", "source": "incoming_inspection"}  # filled from the lot and its failed inspection
    step(instance.id, "identify", IDENTIFY, user)
    assert _statuses() == {"M1": "quarantine", "M2": "quarantine", "M3": "released"}
    assert db.session.scalar(db.select(AuditEvent).where(
        AuditEvent.action == "lot.status_changed", AuditEvent.instance_id == instance.id)).reason.startswith(
        "Supplier return: ")
    step(instance.id, "prepare_scar", SCAR, user)

    [scar] = _scars(instance.id)
    assert (scar.number, scar.language, scar.response_due_at) == (f"SCAR-{instance.id:06d}-1", "zh-CN", T0 + 14 * DAY)
    assert scar.message.recipients == "quality@resin.example"
    assert scar.message.attachment_document_id == scar.document_id
    token = scar_link(scar)
    assert scar.token_hash == response_links.token_hash(token) and token not in scar.token_hash
    sent = _docx_text(db.session.get(Document, scar.document_id))
    for expected in ("M1", "M2", "Resin Co", f"/scar/{token}", "供应商纠正措施要求", "2026-12-07"):
        assert expected in sent, expected

    ship(instance.id, user, T0 + HOUR)
    rows = {r.lot_number: r for r in db.session.scalars(db.select(SupplierReturn))}
    assert {n: (r.quantity, r.unit, r.carrier, r.recipient[:8]) for n, r in rows.items()} == {
        "M1": (400, "kg", "SF Express", "Resin Co"), "M2": (250, "kg", "SF Express", "Resin Co")}
    # Shipped back, the lots leave our stock for good; a new return cannot name them again.
    assert _statuses() == {"M1": "returned", "M2": "returned", "M3": "released"}
    assert "Material lot M1 was already returned to its supplier." in supplier_returns.check_lots(
        None, {"material_lots": "M1"}, "en")["material_lots"]
    note = db.session.get(Document, rows["M1"].document_id)
    assert note.kind == "supplier_return_note"
    text = _docx_text(note)
    for expected in ("M1", "M2", "400", "250", "Contaminated (black specks)", "Resin Co", "SF1234567890", "RMA-7781",
                     "Helen Head", "PVC resin", "2028-11-20"):
        assert expected in text, expected

    supplier_returns.respond(token, ANSWER, now=T0 + 3 * DAY)
    step(instance.id, "verify_response", ACCEPT, user, T0 + 4 * DAY)
    status_task = ready(instance.id, "supplier_status")
    assert tasks.form_values(status_task, {"properties": {"supplier_status": {}}}) == {"supplier_status": "suspended"}
    step(instance.id, "supplier_status", STATUS, user, T0 + 4 * DAY)
    db.session.expire_all()
    assert db.session.scalar(db.select(Supplier.status).where(Supplier.code == "S1")) == "suspended"
    with pytest.raises(FormInvalid) as refused:
        _import_lot(user, "S1", "M9")
    assert refused.value.errors == {"supplier_code": ["supplier S1 is suspended: no new lots accepted"]}
    assert _import_lot(user, "S2", "M9")  # another supplier still delivers

    step(instance.id, "close", CLOSE, user, T0 + 5 * DAY)
    db.session.expire_all()
    assert db.session.get(ProcessInstance, instance.id).status == "completed"
    signatures = db.session.scalars(db.select(Signature).where(Signature.instance_id == instance.id)
                                    .order_by(Signature.id)).all()
    assert [(s.meaning, s.printed_name) for s in signatures] == [("approved", "Helen Head"), ("approved", "Helen Head")]
    assert {d["filename"].split("-")[0] for d in signatures[-1].documents} >= {"scar", "supplier_return_note"}
    record = db.session.scalar(db.select(Document).where(Document.instance_id == instance.id, Document.kind == "scar")
                               .order_by(Document.revision.desc()).limit(1))  # as issued with the closing signature
    closing = _docx_text(record)
    assert "Torn screen mesh on extruder 2" in closing and "接受" in closing and "Li Na" in closing
    deadline = db.session.scalar(db.select(Deadline).where(Deadline.instance_id == instance.id))
    assert (deadline.key, deadline.status(T0 + 6 * DAY)) == ("scar_response_1", "met")
    closed = db.session.scalar(db.select(OutboxMessage).where(OutboxMessage.subject.startswith(
        "Supplier return closed")))
    assert "suspended" in closed.body


def test_a_rejected_verification_sends_a_second_scar_round(supplier_plant, user):
    instance = start(supplier_plant, user)
    first_link = scar_link(_scars(instance.id)[0])
    with pytest.raises(FormInvalid) as early:  # nothing to verify before the supplier answers
        step(instance.id, "verify_response", ACCEPT, user, T0 + DAY)
    assert early.value.errors["verification"] == [
        f"The supplier has not answered SCAR-{instance.id:06d}-1 yet (due 2026-12-07). Wait for the answer, or remind "
        "the supplier."]
    supplier_returns.respond(first_link, ANSWER, now=T0 + 2 * DAY)
    step(instance.id, "verify_response", REJECT, user, T0 + 3 * DAY)

    first, second = _scars(instance.id)
    assert (first.verification_result, first.verified_by.full_name) == ("rejected", "Li Na")
    assert (second.round, second.sent_at, second.response_due_at) == (2, T0 + 3 * DAY, T0 + 17 * DAY)
    second_link = scar_link(second)
    assert second_link != first_link
    with pytest.raises(Conflict):
        supplier_returns.scar_for_token(first_link, T0 + 3 * DAY)
    round_two = _docx_text(db.session.get(Document, second.document_id))
    assert "Root cause not proven: no data on the screen mesh." in round_two  # the earlier round's verdict
    assert ready(instance.id, "verify_response") is not None
    with pytest.raises(FormInvalid):
        step(instance.id, "verify_response", ACCEPT, user, T0 + 4 * DAY)
    supplier_returns.respond(second_link, {**ANSWER, "root_cause": "Mesh tore: 300 h beyond its change interval."},
                             now=T0 + 5 * DAY)
    step(instance.id, "verify_response", ACCEPT, user, T0 + 6 * DAY)
    ship(instance.id, user, T0 + 6 * DAY)
    assert ready(instance.id, "supplier_status") is not None
    met = dict(db.session.execute(db.select(Deadline.key, Deadline.met_at)
                                  .where(Deadline.instance_id == instance.id)).all())
    assert met == {"scar_response_1": T0 + 2 * DAY, "scar_response_2": T0 + 5 * DAY}


def test_a_sent_back_return_and_a_reopened_close(supplier_plant, user):
    instance = start(supplier_plant, user)
    step(instance.id, "prepare_return", REQUEST, user)
    with pytest.raises(FormInvalid):  # sending back needs the reason
        step(instance.id, "authorise_return", {"decision": "reject"}, user)
    step(instance.id, "authorise_return", {"decision": "reject", "comment": "Ask the supplier for an RMA first."},
         user)
    assert db.session.scalar(db.select(Signature.meaning).where(Signature.instance_id == instance.id)) == "rejected"
    assert ready(instance.id, "prepare_return") is not None and ready(instance.id, "ship_return") is None
    step(instance.id, "prepare_return", REQUEST, user)
    step(instance.id, "authorise_return", AUTHORISE, user)
    step(instance.id, "ship_return", {"returned_on": "2026-11-26", "carrier": "SF Express"}, user)
    supplier_returns.respond(scar_link(_scars(instance.id)[0]), ANSWER, now=T0 + DAY)
    step(instance.id, "verify_response", ACCEPT, user, T0 + DAY)
    step(instance.id, "supplier_status", {"supplier_status": "conditional", "status_reason": "Re-audit in Q1."}, user)
    step(instance.id, "close", {"decision": "reject", "comment": "Major defect: suspend."}, user)
    step(instance.id, "supplier_status", STATUS, user)
    step(instance.id, "close", CLOSE, user)
    db.session.expire_all()
    assert db.session.get(ProcessInstance, instance.id).status == "completed"
    changes = db.session.scalars(db.select(AuditEvent).where(AuditEvent.action == "supplier.status_changed")
                                 .order_by(AuditEvent.id)).all()
    assert [(e.new["status"], e.actor_name) for e in changes] == [("conditional", "Li Na"), ("suspended", "Li Na")]


@pytest.mark.parametrize(("lots", "message"), [
    ("M1, M9", "Unknown material lot(s): M9."),
    ("M1, M3", "The lots come from several suppliers (S1, S2); start one return per supplier."),
    (" , ", "Name at least one material lot."),
])
def test_unknown_or_mixed_lots_are_refused_and_nothing_changes(supplier_plant, user, lots, message):
    instance = supplier_returns.start_return(user("qa"), supplier_plant["M1"].id, now=T0)
    with pytest.raises(FormInvalid) as refused:
        step(instance.id, "identify", {**IDENTIFY, "material_lots": lots}, user)
    assert refused.value.status == 422 and refused.value.errors == {"material_lots": [message]}
    assert _statuses() == {"M1": "released", "M2": "released", "M3": "released"}
    assert ready(instance.id, "identify") is not None and not _scars(instance.id)


def test_a_lot_in_an_open_return_and_a_foreign_return_line_are_refused(supplier_plant, user):
    instance = start(supplier_plant, user)
    other = supplier_returns.start_return(user("qa"), supplier_plant["M2"].id, now=T0)
    with pytest.raises(FormInvalid) as busy:
        step(other.id, "identify", {**IDENTIFY, "material_lots": "M2"}, user)
    assert busy.value.errors["material_lots"] == [f"Material lot M2 is already in supplier return #{instance.id}."]
    line = {**REQUEST["lines"][0], "lot_number": "M3"}
    with pytest.raises(FormInvalid) as foreign:
        step(instance.id, "prepare_return", {**REQUEST, "lines": [REQUEST["lines"][0], line]}, user)
    assert foreign.value.errors == {"lines.1.lot_number": ["Lot M3 is not one of this return's lots (M1, M2)."]}


def test_the_response_link_is_single_use_unguessable_and_expires(supplier_plant, user):
    instance = start(supplier_plant, user)
    [scar] = _scars(instance.id)
    token = scar_link(scar)
    with pytest.raises(NotFound):
        supplier_returns.respond("forged-" + token[7:], ANSWER, now=T0 + DAY)
    with pytest.raises(FormInvalid) as bad:
        supplier_returns.respond(token, {**ANSWER, "root_cause": "", "completion_date": "soon"}, now=T0 + DAY)
    assert bad.value.errors == {"root_cause": ["此项为必填项。"],  # in the supplier's language
                                "completion_date": ["请输入日期，格式为 YYYY-MM-DD。"]}
    assert _scars(instance.id)[0].responded_at is None  # a refused answer changes nothing; the link still works
    with pytest.raises(Gone):
        supplier_returns.respond(token, ANSWER, now=scar.token_expires_at + HOUR)
    supplier_returns.respond(token, ANSWER, now=T0 + DAY)
    with pytest.raises(Conflict):
        supplier_returns.respond(token, ANSWER, now=T0 + DAY + HOUR)
    answered = db.session.scalar(db.select(AuditEvent).where(AuditEvent.action == "supplier_return.scar_answered"))
    assert answered.actor_name == "supplier S1" and answered.new["root_cause"] == ANSWER["root_cause"]


def _escalation_tasks(instance_id: int) -> int:
    return db.session.scalar(db.select(db.func.count()).select_from(Task).where(
        Task.instance_id == instance_id, Task.element_id == "escalation_response"))


def _reminders(instance_id: int) -> list[OutboxMessage]:
    return db.session.scalars(db.select(OutboxMessage).where(
        OutboxMessage.instance_id == instance_id, OutboxMessage.subject.startswith("提醒"))).all()


def test_a_silent_supplier_is_reminded_and_the_overdue_response_escalates_once(supplier_plant, user):
    instance = start(supplier_plant, user)
    first_link = scar_link(_scars(instance.id)[0])
    for day in range(1, 5):
        timers.fire_due_timers(now=T0 + day * DAY + HOUR)
    assert _reminders(instance.id) == []
    timers.fire_due_timers(now=T0 + 5 * DAY + HOUR)
    [reminder] = _reminders(instance.id)
    assert reminder.recipients == "quality@resin.example" and reminder.attachment_document_id
    new_link = scar_link(_scars(instance.id)[0])
    assert new_link != first_link  # the reminder's link replaces the first one
    with pytest.raises(NotFound):
        supplier_returns.scar_for_token(first_link, T0 + 6 * DAY)
    timers.fire_due_timers(now=T0 + 6 * DAY + HOUR)
    assert len(_reminders(instance.id)) == 1  # the next one after another 5 days

    for day in range(7, 15):
        timers.fire_due_timers(now=T0 + day * DAY + 2 * HOUR)
    assert _escalation_tasks(instance.id) == 1
    escalation = db.session.scalar(db.select(OutboxMessage).where(
        OutboxMessage.subject.startswith("Supplier response overdue")))
    assert "head@qualiflow.example" in escalation.recipients.split(",") and "/instances/" in escalation.body
    for day in range(15, 18):
        timers.fire_due_timers(now=T0 + day * DAY + 2 * HOUR)
    assert _escalation_tasks(instance.id) == 1
    step(instance.id, "escalation_response", {"action": "Phoned Zhou Lei; answer promised this week."}, user,
         T0 + 15 * DAY)
    assert len(_reminders(instance.id)) == 3  # days 5, 10 and 15
    supplier_returns.respond(scar_link(_scars(instance.id)[0]), ANSWER, now=T0 + 16 * DAY)
    deadline = db.session.scalar(db.select(Deadline).where(Deadline.instance_id == instance.id))
    assert deadline.status(T0 + 17 * DAY) == "met_late" and deadline.escalated_at is not None


def test_an_answer_in_time_is_neither_reminded_nor_escalated(supplier_plant, user):
    instance = start(supplier_plant, user)
    supplier_returns.respond(scar_link(_scars(instance.id)[0]), ANSWER, now=T0 + 2 * DAY)
    for day in range(3, 17):
        timers.fire_due_timers(now=T0 + day * DAY + HOUR)
    assert _reminders(instance.id) == [] and _escalation_tasks(instance.id) == 0
    assert ready(instance.id, "verify_response") is not None


def test_a_supplier_without_e_mail_gets_its_scar_as_a_document(supplier_plant, user):
    db.session.execute(db.update(Supplier).where(Supplier.code == "S1").values(email=""))
    db.session.commit()
    instance = start(supplier_plant, user)
    [scar] = _scars(instance.id)
    assert scar.message is None and scar.document_id is not None
    assert not db.session.scalar(db.select(OutboxMessage.id).where(OutboxMessage.instance_id == instance.id))


def test_a_suspended_suppliers_lots_are_refused_by_the_file_import(supplier_plant, user, tmp_path):
    qa = user("qa")
    supplier = db.session.scalar(db.select(Supplier).where(Supplier.code == "S1"))
    lots.set_supplier_status(supplier.id, "suspended", "SCAR open", qa, T0)
    state = import_rules.ImportState(db.session, qa, T0)
    rows = [(2, {"supplier_code": "S1", "material": "PVC resin", "lot_number": "M10"})]
    with pytest.raises(ImportRefused) as refused:
        import_rules.import_rows(import_rules.KINDS["material_lots"], rows, state)
    assert refused.value.errors[0]["code"] == "supplier_suspended"


def test_the_scar_email_gives_the_due_time_on_the_plants_clock(app, supplier_plant, user):
    app.config["PLANT_TIME_ZONE"] = "Asia/Shanghai"
    instance = supplier_returns.start_return(user("qa"), supplier_plant["M1"].id, now=T0)
    step(instance.id, "identify", IDENTIFY, user)
    step(instance.id, "prepare_scar", SCAR, user)

    [scar] = _scars(instance.id)
    assert "请于 2026-12-07 17:00 CST 前" in scar.message.body

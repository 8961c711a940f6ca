"""The shipped change control through the service layer with an explicit clock: lots held while the change is
open, parallel impact assessments, the e-signed approval, the effectiveness period and the close."""
from __future__ import annotations

from datetime import date, timedelta
from io import BytesIO

import docx
import pytest

from app.exceptions import FormInvalid
from app.extensions import db
from app.models import Document, OutboxMessage, ProcessInstance, Product, ProductLot, Signature, Task
from app.services import demo
from app.services.workflow import instances, tasks, timers
from tests.conftest import T0

# Every path also runs cold: each engine step as in a freshly started process.
pytestmark = pytest.mark.usefixtures("engine_caches")

DAY = timedelta(days=1)
REQUEST = {"title": "New sealing temperature", "change_type": "process", "requested_on": "2026-11-23",
           "description": "Raise the pouch sealing temperature from 180 to 185 C.",
           "reason": "Seal strength near the lower limit", "lot_numbers": "C1, C2"}
CLASSIFY = {"classification": "major", "regulatory_filing": False, "new_udi_di": False,
            "classification_rationale": "Affects a special process (sealing)."}
IMPACT = {dept: {f"{dept}_impact_text": "Revalidate sealing", f"{dept}_risk": "medium",
                 f"{dept}_recommendation": "approve"} for dept in ("qa", "ra", "production")}
APPROVE = {"decision": "approve", "comment": "Go."}
IMPLEMENT = {"actions": [{"action": "Change the set point", "owner": "prod", "done": True}],
             "implementation_summary": "Set point changed on line 2.", "implemented_on": "2026-11-30"}
VERIFY = {"verification_method": "validation", "verification_result": "OQ/PQ passed",
          "verification_record": "VAL-2026-031", "verified_on": "2026-12-02"}
EFFECTIVE = {"effective": True, "effectiveness_comment": "No seal failure in 30 days.", "lot_decision": "release"}
WHO = {"request": "qa", "classify": "qa", "impact_qa": "qa", "impact_ra": "qa", "impact_production": "prod",
       "approval": "head", "implementation": "prod", "verification": "qa", "effectiveness": "qa", "close": "head"}


@pytest.fixture
def lots(seeded):
    product = Product(name="Pouch", gtin="06901234567892")
    made = [ProductLot(product=product, lot_number=n, quantity=10, status="released", manufactured_on=date(2026, 11, 1))
            for n in ("C1", "C2")]
    db.session.add_all([product, *made])
    db.session.commit()


def _ready(instance_id, element):
    return db.session.scalar(db.select(Task).where(Task.instance_id == instance_id, Task.element_id == element,
                                                   Task.state == "ready"))


def _do(instance_id, element, data, user, now=T0):
    task = _ready(instance_id, element)
    assert task is not None, f"no ready task {element}"
    signed = element in ("approval", "close")
    return tasks.complete_task(task.id, data, user(WHO[element]), password=demo.DEMO_PASSWORD if signed else None,
                               now=now)


def _statuses():
    db.session.expire_all()
    return {lot.lot_number: lot.status for lot in db.session.scalars(db.select(ProductLot))}


def _to_approval(user):
    instance = instances.start_instance("change_control", user("qa"), {"title": "Sealing"}, title="Sealing",
                                        language="en", now=T0)
    _do(instance.id, "request", REQUEST, user)
    _do(instance.id, "classify", CLASSIFY, user)
    for dept in ("qa", "ra", "production"):
        _do(instance.id, f"impact_{dept}", IMPACT[dept], user)
    return instance


def test_change_from_request_to_close_holds_and_releases_the_lots(lots, user):
    instance = _to_approval(user)
    assert _statuses() == {"C1": "hold", "C2": "hold"}
    _do(instance.id, "approval", APPROVE, user)
    _do(instance.id, "implementation", IMPLEMENT, user)
    _do(instance.id, "verification", VERIFY, user, now=T0 + DAY)
    assert timers.fire_due_timers(now=T0 + DAY + 29 * DAY) == 0
    assert _ready(instance.id, "effectiveness") is None
    assert timers.fire_due_timers(now=T0 + DAY + 30 * DAY + timedelta(minutes=1)) == 1
    _do(instance.id, "effectiveness", EFFECTIVE, user, now=T0 + 32 * DAY)
    assert _statuses() == {"C1": "released", "C2": "released"}
    _do(instance.id, "close", APPROVE, user, now=T0 + 33 * DAY)
    db.session.expire_all()
    assert db.session.get(ProcessInstance, instance.id).status == "completed"
    kinds = sorted(db.session.scalars(db.select(Document.kind).where(Document.instance_id == instance.id)))
    # each signed gate issued its evidence again with the signature in it: the approval both, the close the record
    assert kinds == ["change_impact_assessment"] * 2 + ["change_record"] * 3 + ["change_request"] * 2
    meanings = db.session.scalars(db.select(Signature.meaning).where(Signature.instance_id == instance.id)).all()
    assert meanings == ["approved", "approved"]
    record = db.session.scalar(db.select(Document).where(Document.instance_id == instance.id,
                                                         Document.kind == "change_record", Document.revision == 2))
    parsed = docx.Document(BytesIO(record.content))
    text = "\n".join([p.text for p in parsed.paragraphs] + [c.text for t in parsed.tables for r in t.rows
                                                              for c in r.cells])
    assert "C1" in text and "VAL-2026-031" in text and "Helen Head" in text and "New sealing temperature" in text
    data = db.session.get(ProcessInstance, instance.id).data
    assert data["production_impact"] == {"impact": "Revalidate sealing", "risk": "medium", "actions": "",
                                         "recommendation": "approve"}


def test_a_rejected_approval_returns_to_the_requester_with_the_reason(lots, user):
    instance = _to_approval(user)
    with pytest.raises(FormInvalid):
        _do(instance.id, "approval", {"decision": "reject"}, user)
    _do(instance.id, "approval", {"decision": "reject", "comment": "Validate on line 1 too."}, user)
    assert _ready(instance.id, "request") is not None
    message = db.session.scalar(db.select(OutboxMessage).where(OutboxMessage.instance_id == instance.id))
    assert message.recipients == "qa@qualiflow.example" and "Validate on line 1 too." in message.body
    assert _statuses() == {"C1": "hold", "C2": "hold"}


def test_lots_kept_on_hold_need_a_reason(lots, user):
    instance = _to_approval(user)
    for element, data in (("approval", APPROVE), ("implementation", IMPLEMENT), ("verification", VERIFY)):
        _do(instance.id, element, data, user)
    timers.fire_due_timers(now=T0 + 31 * DAY)
    keep = {**EFFECTIVE, "effective": False, "lot_decision": "keep"}
    with pytest.raises(FormInvalid) as err:
        _do(instance.id, "effectiveness", keep, user, now=T0 + 31 * DAY)
    assert "keep_reason" in err.value.errors
    _do(instance.id, "effectiveness", {**keep, "keep_reason": "Seal strength still low."}, user, now=T0 + 31 * DAY)
    assert _statuses() == {"C1": "hold", "C2": "hold"}
    assert _ready(instance.id, "close") is not None


def test_a_change_without_lots_holds_nothing_and_an_unknown_lot_is_refused(lots, user):
    instance = instances.start_instance("change_control", user("qa"), {"title": "SOP"}, title="SOP", language="en",
                                        now=T0)
    with pytest.raises(FormInvalid) as err:
        _do(instance.id, "request", {**REQUEST, "lot_numbers": "C1, C9"}, user)
    assert err.value.errors["lot_numbers"] == ["Unknown product lot(s): C9."]
    _do(instance.id, "request", {k: v for k, v in REQUEST.items() if k != "lot_numbers"}, user)
    _do(instance.id, "classify", CLASSIFY, user)
    assert _statuses() == {"C1": "released", "C2": "released"}
    assert _ready(instance.id, "impact_production") is not None


def test_a_signature_step_never_opens_with_an_earlier_decision(lots, user):
    instance = _to_approval(user)
    _do(instance.id, "approval", {"decision": "reject", "comment": "Validate on line 1 too."}, user)
    _do(instance.id, "request", REQUEST, user)
    _do(instance.id, "classify", CLASSIFY, user)
    assert tasks.form_values(_ready(instance.id, "impact_qa"), {"properties": {"qa_risk": {}}}) == {
        "qa_risk": "medium"}  # ordinary steps show the instance's values
    for dept in ("qa", "ra", "production"):
        _do(instance.id, f"impact_{dept}", IMPACT[dept], user)
    approval = _ready(instance.id, "approval")
    assert tasks.form_values(approval, {"properties": {"decision": {}, "comment": {}}}) == {}


def _to_effectiveness(instance, user):
    _do(instance.id, "approval", APPROVE, user)
    _do(instance.id, "implementation", IMPLEMENT, user)
    _do(instance.id, "verification", VERIFY, user, now=T0 + DAY)
    assert timers.fire_due_timers(now=T0 + 32 * DAY) == 1


def test_lifting_the_hold_returns_a_quarantined_lot_to_quarantine_never_to_released(lots, user):
    db.session.scalar(db.select(ProductLot).where(ProductLot.lot_number == "C2")).status = "quarantine"
    db.session.commit()
    instance = _to_approval(user)
    assert _statuses() == {"C1": "hold", "C2": "hold"}
    _to_effectiveness(instance, user)

    _do(instance.id, "effectiveness", EFFECTIVE, user, now=T0 + 32 * DAY)

    assert _statuses() == {"C1": "released", "C2": "quarantine"}


def test_a_lot_two_open_changes_hold_stays_on_hold_until_the_last_one_lifts_it(lots, user):
    first = _to_approval(user)
    second = _to_approval(user)
    _to_effectiveness(first, user)
    _to_effectiveness(second, user)

    _do(first.id, "effectiveness", EFFECTIVE, user, now=T0 + 32 * DAY)
    assert _statuses() == {"C1": "hold", "C2": "hold"}
    lifted = db.session.get(ProcessInstance, first.id).data["released_lots"]
    assert lifted["still_held"] == ["C1", "C2"] and lifted["restored"] == []

    _do(second.id, "effectiveness", EFFECTIVE, user, now=T0 + 33 * DAY)
    assert _statuses() == {"C1": "released", "C2": "released"}

"""The shipped recall through the service layer with an explicit clock: affected list, decision, deadlines,
notices and acknowledgments, effectiveness and close."""
from __future__ import annotations

from datetime import timedelta
from io import BytesIO

import docx
import pytest

from app.exceptions import Conflict, FormInvalid, NotFound
from app.extensions import db
from app.models import Deadline, Document, OutboxMessage, ProcessInstance, ProductLot, RecallConsignee
from app.services.procedures import recalls
from tests.conftest import T0
from tests.integration import recall_steps as steps

# Every path also runs cold: each engine step as in a freshly started process.
pytestmark = pytest.mark.usefixtures("engine_caches")

HOUR = timedelta(hours=1)


def _token(consignee: RecallConsignee) -> str:
    """Read the acknowledgment link out of the queued e-mail, as the consignee would."""
    message = db.session.get(OutboxMessage, consignee.outbox_message_id)
    return message.body.split("/ack/")[1].split()[0]


def _docx_text(document: Document) -> str:
    parsed = docx.Document(BytesIO(document.content))
    cells = [cell.text for table in parsed.tables for row in table.rows for cell in row.cells]
    return "\n".join([p.text for p in parsed.paragraphs] + cells)


def test_affected_list_comes_from_the_trigger(plant, user):
    instance = steps.start(user, T0)
    view = recalls.recall_view(instance.id)
    assert [row.lot.lot_number for row in view.lots] == ["L1", "L2"]
    assert sorted(c.customer.code for c in view.consignees) == ["D1", "H1", "H2", "US1"]
    assert view.totals["quantity_shipped"] == 180  # D1 passed 20 of its 100 on to H1: counted once
    assert instance.data["affected"]["countries"] == ["CN", "US"]


def test_class_one_recall_from_decision_to_close(plant, user):
    instance = steps.decide(user, T0)
    db.session.expire_all()
    assert {lot.lot_number: lot.status for lot in db.session.scalars(db.select(ProductLot))} == {
        "L1": "recalled", "L2": "recalled", "L3": "released"}
    due = {d.key: d.due_at for d in db.session.scalars(db.select(Deadline).where(Deadline.instance_id == instance.id))}
    assert due == {"consignee_notice": T0 + timedelta(days=1), "regulator_report": T0 + timedelta(hours=24),
                   # working days: by the end of the plant's last day (UTC in tests)
                   "recall_plan": T0.replace(hour=23, minute=59, second=59) + timedelta(days=7),
                   "fda_806": T0.replace(hour=23, minute=59, second=59) + timedelta(days=14)}
    steps.step(instance.id, "prepare_notices", steps.NOTICES, user, T0 + HOUR)
    view = recalls.recall_view(instance.id)
    assert all(c.notified_at == T0 + HOUR for c in view.consignees)
    assert [c.customer.code for c in view.consignees if c.outbox_message_id is None] == ["H2"]  # no e-mail
    d1 = next(c for c in view.consignees if c.customer.code == "D1")
    notice = _docx_text(d1.notice)
    assert "L1" in notice and "Jiangsu Medical Distribution" in notice and "/ack/" in notice

    token = _token(d1)
    line = d1.lines[0]
    with pytest.raises(FormInvalid) as err:
        recalls.acknowledge(token, {"received": True, "contact": "Chen", f"returned_{line.id}": 101}, T0 + 2 * HOUR)
    assert f"returned_{line.id}" in err.value.errors
    recalls.acknowledge(token, {"received": True, "on_hand": 0, "contact": "Chen Jie 138",
                                f"returned_{line.id}": 80}, T0 + 2 * HOUR)
    with pytest.raises(Conflict):
        recalls.acknowledge(token, {"received": True, "contact": "x"}, T0 + 3 * HOUR)
    with pytest.raises(NotFound):
        recalls.consignee_for_token("forged-token", T0)

    for element in ("submit_event_report", "fda_806_report"):
        steps.step(instance.id, element, steps.SUBMISSION, user, T0 + 3 * HOUR)
    steps.step(instance.id, "recall_plan", steps.PLAN, user, T0 + 3 * HOUR)
    steps.step(instance.id, "approve_plan", steps.APPROVE, user, T0 + 3 * HOUR)
    steps.step(instance.id, "monitor", steps.MONITOR, user, T0 + 4 * HOUR)
    with pytest.raises(FormInvalid):  # level A: every consignee must be checked first
        steps.step(instance.id, "effectiveness", steps.EFFECTIVE, user, T0 + 5 * HOUR)
    qa = user("qa")
    for consignee in recalls.recall_view(instance.id).consignees:
        assert consignee.in_sample
        recalls.record_check(instance.id, consignee.id, method="phone", effective=True, note="", actor=qa,
                             now=T0 + 5 * HOUR)
    steps.step(instance.id, "effectiveness", steps.EFFECTIVE, user, T0 + 5 * HOUR)
    steps.step(instance.id, "disposition", steps.DISPOSITION, user, T0 + 6 * HOUR)
    with pytest.raises(FormInvalid) as below:  # one of four acknowledged, 80 of 180 units back
        steps.step(instance.id, "final_approval", steps.APPROVE, user, T0 + 7 * HOUR)
    assert list(below.value.errors) == ["closing_justification"]
    steps.step(instance.id, "final_approval", {**steps.APPROVE, "closing_justification": "All checked by phone."},
               user, T0 + 7 * HOUR)
    db.session.expire_all()
    instance = db.session.get(ProcessInstance, instance.id)
    assert instance.status == "completed"
    summary = db.session.scalar(db.select(Document).where(Document.instance_id == instance.id,
                                                          Document.kind == "recall_summary"))
    text = _docx_text(summary)
    assert "L1" in text and "L2" in text and "180" in text
    statuses = {d.key: d.status(T0 + 8 * HOUR) for d in recalls.recall_view(instance.id).deadlines}
    assert statuses == {"consignee_notice": "met", "regulator_report": "met", "recall_plan": "met", "fda_806": "met"}

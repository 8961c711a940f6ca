"""The shipped CAPA through the service layer with an explicit clock: linked sources, containment holds, the
action items as one task per action for its owner, the verification period, the measured criterion, the
e-signed closure - and every branch that sends it back."""
from __future__ import annotations

import hashlib
from datetime import date, timedelta
from io import BytesIO

import docx
import pytest

from app.exceptions import FormInvalid, SignatureRejected
from app.extensions import db
from app.models import (
    AuditEvent,
    Document,
    Inspection,
    InstanceLot,
    OutboxMessage,
    ProcessInstance,
    Product,
    ProductLot,
    Signature,
    Supplier,
    Task,
)
from app.services import demo, users
from app.services.workflow import instances, tasks, timers
from app.services.workflow.tasks import InboxFilter
from tests.conftest import T0
from tests.integration.capa_steps import (
    CONTAINMENT,
    INVESTIGATION,
    MEASURED,
    PLAN,
    PROBLEM,
    STEPS,
    ready_task,
    run_capa_to_approval,
)
from tests.integration.services.scenarios import APPROVE, REJECT, approve, count

# Every path also runs cold: each engine step as in a freshly started process.
pytestmark = pytest.mark.usefixtures("engine_caches")

HOUR, DAY, MINUTE = timedelta(hours=1), timedelta(days=1), timedelta(minutes=1)
TWO_ACTIONS = {**PLAN, "actions": [
    {"description": "Replace the deburring tool", "type": "corrective", "owner": "prod", "due_date": "2026-12-01"},
    {"description": "Add tool life to the maintenance plan", "type": "preventive", "owner": "qa",
     "due_date": "2026-12-10"},
]}
DONE = {"prod": {"action_done_note": "Tool replaced on station 3", "action_completed_on": "2026-11-25",
                 "action_evidence": "MR-311"},
        "qa": {"action_done_note": "Maintenance plan MP-4 rev. F", "action_completed_on": "2026-11-26"}}


@pytest.fixture
def plant(seeded):
    """Two released lots, a scrapped one, a failed final inspection of L1 and a supplier."""
    product = Product(name="Infusion catheter", gtin="06901234567892")
    made = {n: ProductLot(product=product, lot_number=n, quantity=100, status=status,
                          manufactured_on=date(2026, 11, 1)) for n, status in
            (("L1", "released"), ("L2", "released"), ("L9", "scrapped"))}
    inspection = Inspection(stage="final", product_lot=made["L1"], result="fail", results="Burr on 3 of 50 hubs",
                            inspected_on=date(2026, 11, 20))
    db.session.add_all([product, *made.values(), inspection, Supplier(code="SUP-03", name="Hub Mouldings Ltd")])
    db.session.commit()
    return {"inspection": inspection.id, **{n: lot.id for n, lot in made.items()}}


def _do(instance_id, element, data, who, user, now=T0):
    task = ready_task(instance_id, element)
    assert task is not None, f"no ready task {element}"
    return tasks.complete_task(task.id, data, user(who), now=now)


def _statuses() -> dict[str, str]:
    db.session.expire_all()
    return {lot.lot_number: lot.status for lot in db.session.scalars(db.select(ProductLot))}


def _links(instance_id) -> set[tuple[str, str]]:
    return {(lot, role) for lot, role in db.session.execute(
        db.select(ProductLot.lot_number, InstanceLot.role)
        .join(InstanceLot, InstanceLot.product_lot_id == ProductLot.id).where(InstanceLot.instance_id == instance_id))}


def _action_tasks(instance_id, state="ready") -> dict[str, Task]:
    rows = db.session.scalars(db.select(Task).where(Task.instance_id == instance_id, Task.element_id == "do_action",
                                                    Task.state == state))
    return {row.assignee.username: row for row in rows}


def _reports(instance_id: int, *, issued: bool = False) -> list[Document]:
    """The CAPA reports as rendered (or, issued=True, as issued with a signature in them)."""
    return [document for document in db.session.scalars(db.select(Document).where(
        Document.instance_id == instance_id, Document.kind == "capa_report").order_by(Document.revision))
            if ("signed_revision" in document.context) == issued]


def _docx_text(document: Document) -> tuple[str, list[list[str]]]:
    parsed = docx.Document(BytesIO(document.content))
    rows = [[cell.text for cell in row.cells] for table in parsed.tables for row in table.rows]
    return "\n".join(p.text for p in parsed.paragraphs), rows


def _to_actions(plant, user, plan=TWO_ACTIONS):
    """Start a CAPA from the failed inspection, hold L1 and L2, investigate and plan; the actions wait."""
    instance = instances.start_instance("capa", user("qa"), title="Burr on hub", language="en", now=T0)
    problem = {**PROBLEM, "source": "inspection", "source_reference": str(plant["inspection"]), "lot_numbers": "L1"}
    _do(instance.id, "describe_problem", problem, "qa", user)
    _do(instance.id, "containment", {**CONTAINMENT, "containment_lots": "L1, L2"}, "prod", user)
    _do(instance.id, "investigation", INVESTIGATION, "qa", user)
    _do(instance.id, "action_plan", plan, "qa", user)
    return instance


def _finish_actions(instance_id, user, now=T0 + DAY):
    for owner, task in _action_tasks(instance_id).items():
        tasks.complete_task(task.id, DONE[owner], user(owner), now=now)


def test_happy_path_from_inspection_to_closure_releases_the_contained_lots(plant, user):
    instance = _to_actions(plant, user)
    record = db.session.get(ProcessInstance, instance.id).data["source_record"]
    assert record["label"] == f"final inspection #{plant['inspection']} of lot L1: fail, 2026-11-20"
    assert (record["inspection_id"], record["product_lot_id"]) == (plant["inspection"], plant["L1"])
    assert _statuses() == {"L1": "hold", "L2": "hold", "L9": "scrapped"}
    assert _links(instance.id) == {("L1", "subject"), ("L1", "containment"), ("L2", "containment")}
    held = db.session.scalars(db.select(AuditEvent).where(AuditEvent.action == "lot.status_changed")).all()
    assert {(e.new["lot_number"], e.reason, e.instance_id) for e in held} == {
        ("L1", "CAPA containment: Burr on hub", instance.id), ("L2", "CAPA containment: Burr on hub", instance.id)}

    # One task per action, each assigned to its owner, due on its own date and named after its action.
    actions = _action_tasks(instance.id)
    assert {owner: (t.name, t.group_name, t.due_at) for owner, t in actions.items()} == {
        "prod": ("Carry out the CAPA action: 1. Replace the deburring tool", "qa",
                 T0.replace(year=2026, month=12, day=1, hour=23, minute=59, second=59)),
        "qa": ("Carry out the CAPA action: 2. Add tool life to the maintenance plan", "qa",
               T0.replace(year=2026, month=12, day=10, hour=23, minute=59, second=59))}
    mine = tasks.inbox(user("prod"), InboxFilter(scope="mine"), now=T0).items
    assert [t.id for t in mine] == [actions["prod"].id]
    created = db.session.scalars(db.select(AuditEvent.new).where(AuditEvent.action == "task.created")).all()
    assert sorted(n["assignee"] for n in created if n["element"] == "do_action") == ["prod", "qa"]
    with pytest.raises(Exception, match="claimed by Wang Wei"):  # another owner's action is not yours
        tasks.complete_task(actions["prod"].id, DONE["qa"], user("qa"), now=T0)

    tasks.complete_task(actions["qa"].id, DONE["qa"], user("qa"), now=T0 + HOUR)  # finished in any order
    assert ready_task(instance.id, "do_action").assignee.username == "prod"
    tasks.complete_task(actions["prod"].id, DONE["prod"], user("prod"), now=T0 + DAY)

    # The verification period (P30D from the last action) runs before the effectiveness step opens.
    waited = db.session.get(ProcessInstance, instance.id)
    assert waited.next_timer_at == T0 + DAY + 30 * DAY
    assert timers.fire_due_timers(T0 + 30 * DAY) == 0 and ready_task(instance.id, "effectiveness") is None
    assert timers.fire_due_timers(T0 + 31 * DAY + MINUTE) == 1
    _do(instance.id, "effectiveness", MEASURED, "qa", user, now=T0 + 32 * DAY)

    [report] = _reports(instance.id)
    text, rows = _docx_text(report)
    assert report.filename.endswith(".en.docx") and "Burr found on the catheter hub" in text
    assert ["Source record", record["label"]] in rows and ["Lots put on hold", "L1, L2"] in rows
    assert "The hub had a burr\nThe deburring tool was worn\nTool wear is not checked" in text  # the 5 whys
    assert ["Machine", "Worn deburring tool; No tool-life counter"] in rows
    assert ["1", "Replace the deburring tool", "Corrective", "prod", "2026-12-01", "Tool replaced on station 3",
            "2026-11-25", "MR-311"] in rows
    assert ["2", "Add tool life to the maintenance plan", "Preventive", "qa", "2026-12-10",
            "Maintenance plan MP-4 rev. F", "2026-11-26", "none"] in rows  # no evidence named: "none"
    assert ["Criterion", "<= 0.5"] in rows and ["Measured value", "0.2"] in rows and ["Criterion met", "Yes"] in rows

    with pytest.raises(FormInvalid) as refused:  # held lots need a decision before the CAPA can close
        approve(instance.id, user, T0 + 33 * DAY)
    assert "L1, L2" in refused.value.errors["lot_decision"][0]
    db.session.rollback()
    approve(instance.id, user, T0 + 33 * DAY, {**APPROVE, "lot_decision": "release"})

    db.session.expire_all()
    closed = db.session.get(ProcessInstance, instance.id)
    assert (closed.status, closed.completed_at) == ("completed", T0 + 33 * DAY)
    assert _statuses() == {"L1": "released", "L2": "released", "L9": "scrapped"}
    [signature] = db.session.scalars(db.select(Signature).where(Signature.instance_id == instance.id)).all()
    assert (signature.meaning, signature.printed_name) == ("approved", "Helen Head")
    [issued] = _reports(instance.id, issued=True)
    assert issued.context["signed_revision"]["of_document"] == report.id
    assert [d["sha256"] for d in signature.documents] == [hashlib.sha256(issued.content).hexdigest()]
    notice = db.session.scalar(db.select(OutboxMessage).where(OutboxMessage.instance_id == instance.id))
    assert notice.subject == "CAPA closed: Burr on hub"


def test_lots_kept_on_hold_need_a_reason_and_stay_held(plant, user):
    instance = _to_actions(plant, user)
    _finish_actions(instance.id, user)
    timers.fire_due_timers(T0 + 32 * DAY)
    _do(instance.id, "effectiveness", MEASURED, "qa", user, now=T0 + 32 * DAY)
    with pytest.raises(FormInvalid) as refused:
        approve(instance.id, user, T0 + 33 * DAY, {**APPROVE, "lot_decision": "keep"})
    assert list(refused.value.errors) == ["keep_reason"]
    db.session.rollback()
    approve(instance.id, user, T0 + 33 * DAY, {**APPROVE, "lot_decision": "keep", "keep_reason": "Re-inspect first"})
    assert db.session.get(ProcessInstance, instance.id).status == "completed"
    assert _statuses() == {"L1": "hold", "L2": "hold", "L9": "scrapped"}


def test_effectiveness_not_met_loops_back_to_the_investigation(user):
    instance = instances.start_instance("capa", user("qa"), title="Burr on hub", now=T0)
    for element, who, data in STEPS:
        _do(instance.id, element, data, who, user)
    timers.fire_due_timers(T0 + 31 * DAY)
    missed = {**MEASURED, "measured_value": 0.9, "measured_on": "2026-12-24"}
    _do(instance.id, "effectiveness", missed, "qa", user, now=T0 + 31 * DAY)

    again = ready_task(instance.id, "investigation")
    assert again is not None and again.due_at == T0 + 31 * DAY + 7 * DAY
    assert [t.element_id for t in db.session.scalars(db.select(Task).where(
        Task.instance_id == instance.id, Task.state == "ready"))] == ["investigation"]
    data = db.session.get(ProcessInstance, instance.id).data
    assert (data["effective"], data["effectiveness_pass"]) == (False, 1)
    assert _reports(instance.id) == []

    # The second pass plans again (the old due date is past now), runs the actions anew and meets the target.
    later = T0 + 32 * DAY
    _do(instance.id, "investigation", INVESTIGATION, "qa", user, now=later)
    with pytest.raises(FormInvalid):
        _do(instance.id, "action_plan", PLAN, "qa", user, now=later)
    db.session.rollback()
    _do(instance.id, "action_plan", {**PLAN, "actions": [{**PLAN["actions"][0], "due_date": "2027-01-15"}]},
        "qa", user, now=later)
    _do(instance.id, "do_action", STEPS[-1][2], "prod", user, now=later)
    timers.fire_due_timers(later + 31 * DAY)
    _do(instance.id, "effectiveness", MEASURED, "qa", user, now=later + 31 * DAY)
    data = db.session.get(ProcessInstance, instance.id).data
    assert [(h["pass"], h["measured_value"], h["effective"]) for h in data["effectiveness_history"]] == [
        (1, 0.9, False), (2, 0.2, True)]
    assert [r["due_date"] for r in data["action_results"]] == ["2027-01-15"]  # this pass's actions only
    assert ready_task(instance.id, "qa_approval") is not None and len(_reports(instance.id)) == 1


def test_rejected_approval_loops_back_and_the_second_pass_renders_revision_2(user):
    instance = run_capa_to_approval(user)
    approve(instance.id, user, T0 + HOUR, REJECT)
    assert ready_task(instance.id, "investigation") is not None
    assert db.session.get(ProcessInstance, instance.id).status == "running"

    _do(instance.id, "investigation", {**INVESTIGATION, "root_cause": "Deburring tool not on the maintenance plan"},
        "qa", user, now=T0 + 2 * HOUR)
    _do(instance.id, "action_plan", PLAN, "qa", user, now=T0 + 2 * HOUR)
    _do(instance.id, "do_action", STEPS[-1][2], "prod", user, now=T0 + 3 * HOUR)
    assert timers.fire_due_timers(T0 + 31 * DAY) == 1
    _do(instance.id, "effectiveness", MEASURED, "qa", user, now=T0 + 31 * DAY)
    first, revised = _reports(instance.id)
    assert (first.revision, revised.revision) == (1, 3) and first.sha256 != revised.sha256  # r2: r1 as rejected
    assert ["根本原因", "Worn deburring tool at station 3"] in _docx_text(first)[1]
    assert ["根本原因", "Deburring tool not on the maintenance plan"] in _docx_text(revised)[1]
    assert len([row for row in _docx_text(revised)[1] if row[:2] == ["1", "Replace tool"]]) == 1  # not doubled

    approve(instance.id, user, T0 + 32 * DAY)
    assert db.session.get(ProcessInstance, instance.id).status == "completed"
    signatures = db.session.scalars(db.select(Signature).where(Signature.instance_id == instance.id)
                                    .order_by(Signature.id)).all()
    issued = _reports(instance.id, issued=True)
    assert [d.context["signed_revision"]["of_document"] for d in issued] == [first.id, revised.id]
    assert [[d["sha256"] for d in s.documents] for s in signatures] == [[d.sha256] for d in issued]
    assert [s.meaning for s in signatures] == ["rejected", "approved"]  # a rejection is never signed "approved"


def test_an_overdue_action_escalates_once_without_taking_it_from_its_owner(plant, user):
    instance = _to_actions(plant, user)
    overdue = T0.replace(day=1, month=12, hour=23, minute=59, second=59)  # prod's action, due 2026-12-01
    assert db.session.get(ProcessInstance, instance.id).next_timer_at == overdue
    assert timers.fire_due_timers(overdue - MINUTE) == 0

    assert timers.fire_due_timers(overdue + MINUTE) == 1
    [escalation] = db.session.scalars(db.select(Task).where(Task.element_id == "action_escalation")).all()
    assert (escalation.group_name, escalation.assignee_id, escalation.due_at) == (
        "qa_management", None, overdue + MINUTE + DAY)
    assert escalation.name == "Escalation: overdue CAPA action: 1. Replace the deburring tool (prod)"
    # One e-mail per language: the owner (prod) reads Chinese, the heads of QA English.
    notice, notice_zh = db.session.scalars(db.select(OutboxMessage).order_by(OutboxMessage.id)).all()
    assert notice.subject == "CAPA action overdue: Burr on hub - 1. Replace the deburring tool"
    assert sorted(notice.recipients.split(",")) == [f"{n}@qualiflow.example" for n in ("admin", "head", "releaser")]
    assert notice_zh.subject == "CAPA 措施逾期：Burr on hub - 1. Replace the deburring tool"
    assert notice_zh.recipients == "prod@qualiflow.example" and "尚未完成" in notice_zh.body
    assert set(_action_tasks(instance.id)) == {"prod", "qa"}  # non-interrupting: both owners keep their actions
    for later in (overdue + HOUR, overdue + 5 * DAY):
        assert timers.fire_due_timers(later) == 0
    assert count(Task, Task.element_id == "action_escalation") == 1 and count(OutboxMessage) == 2

    # The owner finishes first, the head of QA answers later: the action's result is still collected.
    _finish_actions(instance.id, user, now=overdue + 2 * DAY)
    assert ready_task(instance.id, "effectiveness") is None
    tasks.complete_task(escalation.id, {"escalation_action": "Owner reminded; done the next day."}, user("head"),
                        now=overdue + 3 * DAY)
    data = db.session.get(ProcessInstance, instance.id).data
    assert sorted((r["number"], r["done_note"]) for r in data["action_results"]) == [
        (1, "Tool replaced on station 3"), (2, "Maintenance plan MP-4 rev. F")]
    assert db.session.get(ProcessInstance, instance.id).next_timer_at == overdue + 3 * DAY + 30 * DAY


@pytest.mark.parametrize(("source", "reference", "message"), [
    ("inspection", "999", "No inspection 999: give the inspection's number (id)."),
    ("lot", "L404", "No product or material lot L404."),
    ("recall", "1", "No recall 1: give the recall's instance number."),  # instance 1 is this CAPA, not a recall
    ("supplier", "SUP-99", "No supplier with the code SUP-99."),
])
def test_an_unknown_source_is_refused_with_a_field_message_and_nothing_changes(plant, user, source, reference,
                                                                               message):
    instance = instances.start_instance("capa", user("qa"), title="Burr on hub", language="en", now=T0)
    task = ready_task(instance.id, "describe_problem")
    audit_rows, task_rows = count(AuditEvent), count(Task)
    with pytest.raises(FormInvalid) as refused:
        tasks.complete_task(task.id, {**PROBLEM, "source": source, "source_reference": reference,
                                      "lot_numbers": "L1, L404"}, user("qa"), now=T0, lang="en")
    assert refused.value.errors == {"source_reference": [message], "lot_numbers": ["Unknown product lot(s): L404."]}
    db.session.rollback()
    assert (count(AuditEvent), count(Task), count(InstanceLot)) == (audit_rows, task_rows, 0)
    assert db.session.get(Task, task.id).state == "ready"


@pytest.mark.parametrize(("source", "reference", "label", "linked"), [
    ("lot", "L2", "product lot L2 (released)", {("L2", "subject")}),
    ("supplier", "SUP-03", "supplier SUP-03 Hub Mouldings Ltd (approved)", set()),
    ("complaint", "CMP-7", "CMP-7", set()),
    ("audit_finding", "AUD-2026-04 #3", "AUD-2026-04 #3", set()),
])
def test_each_source_kind_is_linked(plant, user, source, reference, label, linked):
    instance = instances.start_instance("capa", user("qa"), title="Burr on hub", now=T0)
    _do(instance.id, "describe_problem", {**PROBLEM, "source": source, "source_reference": reference}, "qa", user)
    assert db.session.get(ProcessInstance, instance.id).data["source_record"]["label"] == label
    assert _links(instance.id) == linked


def test_a_recall_is_a_source_too(plant, user):
    recall = instances.start_instance("recall", user("qa"), title="Leaking sets", now=T0)
    instance = instances.start_instance("capa", user("qa"), title="Burr on hub", now=T0)
    _do(instance.id, "describe_problem", {**PROBLEM, "source": "recall", "source_reference": f"#{recall.id}"}, "qa",
        user)
    record = db.session.get(ProcessInstance, instance.id).data["source_record"]
    assert (record["recall_instance_id"], record["label"]) == (recall.id, f"recall #{recall.id} Leaking sets")


@pytest.mark.parametrize(("lots", "message"), [
    ("L1, L404", "Unknown product lot(s): L404."),
    ("L9", "Lot L9 is scrapped and cannot be put on hold."),
])
def test_containment_refuses_lots_it_cannot_hold(plant, user, lots, message):
    instance = instances.start_instance("capa", user("qa"), title="Burr on hub", language="en", now=T0)
    _do(instance.id, "describe_problem", PROBLEM, "qa", user)
    with pytest.raises(FormInvalid) as refused:
        _do(instance.id, "containment", {**CONTAINMENT, "containment_lots": lots}, "prod", user)
    assert refused.value.errors == {"containment_lots": [message]}
    db.session.rollback()
    assert _statuses()["L1"] == "released"


def test_the_action_plan_needs_owners_who_can_work_and_due_dates_ahead(user):
    instance = instances.start_instance("capa", user("qa"), title="Burr on hub", language="en", now=T0)
    for element, who, data in STEPS[:3]:
        _do(instance.id, element, data, who, user)
    gone, _ = users.ensure_user("gone", full_name="Gone", password="x" * 12, email="", roles=["staff"], groups=[],
                                language="en")
    gone.active = False
    db.session.commit()
    plan = {**PLAN, "actions": [
        {"description": "Fix", "type": "corrective", "owner": "nobody", "due_date": "2026-12-01"},
        {"description": "Audit", "type": "preventive", "owner": "auditor", "due_date": "2026-11-22"},
        {"description": "Train", "type": "preventive", "owner": "gone", "due_date": "2026-11-23"}]}
    with pytest.raises(FormInvalid) as refused:
        _do(instance.id, "action_plan", plan, "qa", user)
    assert refused.value.errors == {
        "actions.0.owner": ["No user nobody."],
        "actions.1.owner": ["auditor cannot work on tasks (inactive or read-only)."],
        "actions.1.due_date": ["The due date 2026-11-22 is in the past."],
        "actions.2.owner": ["gone cannot work on tasks (inactive or read-only)."]}  # due today is fine


def test_invalid_form_data_is_refused_and_changes_nothing(user):
    instance = instances.start_instance("capa", user("qa"), title="Burr on hub", now=T0)
    task = ready_task(instance.id, "describe_problem")
    lock_version, audit_rows, task_rows = instance.lock_version, count(AuditEvent), count(Task)

    with pytest.raises(FormInvalid) as refused:
        tasks.complete_task(task.id, {"title": "x" * 201, "source": "rumour", "reported_on": "20.11.2026"},
                            user("qa"), now=T0)

    assert set(refused.value.errors) == {"title", "source", "source_reference", "reported_on", "description",
                                         "severity"}
    assert all(refused.value.errors.values())
    assert not (db.session.new or db.session.dirty or db.session.deleted)  # nothing left pending either
    db.session.rollback()
    assert (task.state, task.assignee_id, task.completed_by_id, task.data) == ("ready", None, None, None)
    assert instance.lock_version == lock_version
    assert (count(AuditEvent), count(Task)) == (audit_rows, task_rows)


def test_wrong_signature_password_is_refused_and_audited(user):
    instance = run_capa_to_approval(user)
    task = ready_task(instance.id, "qa_approval")

    with pytest.raises(SignatureRejected):
        tasks.complete_task(task.id, APPROVE, user("head"), password="not-my-password", now=T0 + HOUR)

    db.session.rollback()  # what follows was committed by the service, not left pending
    failed = db.session.scalars(db.select(AuditEvent).where(AuditEvent.action == "signature.failed")).all()
    assert [(e.actor_name, e.new) for e in failed] == [("Helen Head", {"locked": False})]
    assert count(Signature) == 0
    assert db.session.get(Task, task.id).state == "ready"
    assert db.session.get(ProcessInstance, instance.id).status == "running"


def test_five_wrong_signature_passwords_lock_the_account(app, user):
    instance = run_capa_to_approval(user)
    task_id = ready_task(instance.id, "qa_approval").id
    now = T0 + HOUR
    for attempt in range(1, 6):
        with pytest.raises(SignatureRejected) as refused:
            tasks.complete_task(task_id, APPROVE, user("head"), password=f"guess {attempt}", now=now)
    assert "locked" in refused.value.message

    lockout = timedelta(minutes=app.config["LOGIN_LOCKOUT_MINUTES"])
    assert user("head").locked_until == now + lockout
    with pytest.raises(SignatureRejected, match="locked"):
        tasks.complete_task(task_id, APPROVE, user("head"), password=demo.DEMO_PASSWORD, now=now)
    with pytest.raises(users.AccountLocked):
        users.authenticate("head", demo.DEMO_PASSWORD, max_failures=5, lockout=lockout, now=now)
    failed = db.session.scalars(db.select(AuditEvent.new).where(AuditEvent.action == "signature.failed")
                                .order_by(AuditEvent.id)).all()
    assert failed == [{"locked": False}] * 4 + [{"locked": True}]
    assert count(Signature) == 0

    tasks.complete_task(task_id, APPROVE, user("head"), password=demo.DEMO_PASSWORD, now=now + lockout)
    assert db.session.get(ProcessInstance, instance.id).status == "completed"
    assert count(Signature) == 1

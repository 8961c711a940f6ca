"""The recall endpoints of /api/v1 through Flask's test client: a recall driven through the task API, then its
timers fired at explicit times (deadlines, escalations, progress reports, reminders); the recall view, dashboard,
affected list, returns, checks and the public acknowledgment; and refused input that changes nothing."""
from __future__ import annotations

import io
import json
from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import MaterialLot, OutboxMessage, RecallConsignee, Supplier
from app.models.types import utcnow
from app.services import demo
from app.services.workflow import instances, timers
from tests.integration import recall_steps as steps

API = "/api/v1"
MINUTE = timedelta(minutes=1)
NOTICE_DAYS = {"I": 1, "II": 3, "III": 7}
# The subjects the diagram's escalation e-mails start with, per deadline.
ESCALATION_SUBJECT = {"consignee_notice": "Recall deadline missed: Consignee notification",
                      "regulator_report": "Recall deadline missed: Recall event report",
                      "recall_plan": "Recall deadline missed: Recall plan",
                      "fda_806": "Recall deadline missed: FDA 806 report",
                      "eu_fsca": "Recall deadline missed: EU FSCA report"}
L1_ONLY = {**steps.TRIGGER, "material_lots": "", "product_lots": "L1"}  # D1 and H1 in CN: no US consignee


# --- driving a recall through the API --------------------------------------------------------------------------------

def _ok(response, status: int = 200) -> dict:
    assert response.status_code == status, response.get_json()
    return response.get_json()


def _start(client, auth) -> int:
    return _ok(client.post(f"{API}/instances", headers=auth("qa"), json={
        "process": "recall", "title": "Leaking infusion sets", "data": {"title": "Leaking infusion sets"},
        "language": "en"}), 201)["id"]


def _ready_task(client, auth, instance_id: int, element: str) -> dict:
    """Find the ready task of element in the inbox of the user the procedure assigns it to."""
    inbox = _ok(client.get(f"{API}/tasks?process=recall&per_page=200", headers=auth(steps.WHO[element])))["items"]
    return next(t for t in inbox if t["instance_id"] == instance_id and t["element_id"] == element)


def _complete(client, auth, instance_id: int, element: str, data: dict):
    """Complete element's ready task as its user, with the demo password at e-signed gates."""
    task = _ready_task(client, auth, instance_id, element)
    body = {"data": data, "password": demo.DEMO_PASSWORD if element in steps.SIGNED else None}
    return client.post(f"{API}/tasks/{task['id']}/complete", headers=auth(steps.WHO[element]), json=body)


def _step(client, auth, instance_id: int, element: str, data: dict) -> dict:
    return _ok(_complete(client, auth, instance_id, element, data))


def _decide(client, auth, recall_class: str = "I", trigger: dict = steps.TRIGGER) -> int:
    """Start a recall and take it through the signed decision: lots recalled, deadlines started."""
    instance_id = _start(client, auth)
    _step(client, auth, instance_id, "trigger", trigger)
    _step(client, auth, instance_id, "assessment", {**steps.ASSESSMENT, "recall_class": recall_class})
    _step(client, auth, instance_id, "sign_assessment", steps.APPROVE)
    _step(client, auth, instance_id, "decision", steps.APPROVE)
    return instance_id


def _recall(client, auth, instance_id: int) -> dict:
    return _ok(client.get(f"{API}/recalls/{instance_id}", headers=auth("auditor")))


def _deadlines(client, auth, instance_id: int) -> dict[str, dict]:
    return {d["key"]: d for d in _recall(client, auth, instance_id)["deadlines"]}


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _tasks(client, auth, instance_id: int, element: str) -> list[dict]:
    record = _ok(client.get(f"{API}/instances/{instance_id}", headers=auth("auditor")))
    return [t for t in record["tasks"] if t["element_id"] == element]


def _documents(client, auth, instance_id: int, kind: str) -> list[dict]:
    record = _ok(client.get(f"{API}/instances/{instance_id}", headers=auth("auditor")))
    return [d for d in record["documents"] if d["kind"] == kind]


def _mails(instance_id: int, *, subject: str = "", key: str = "") -> list[OutboxMessage]:
    """The instance's queued e-mails whose subject and idempotency key start so."""
    db.session.rollback()  # read what the requests and timer runs committed
    return [m for m in db.session.scalars(select(OutboxMessage).where(OutboxMessage.instance_id == instance_id))
            if m.subject.startswith(subject) and (m.idempotency_key or "").startswith(key)]


def _working_days_after(start: datetime, days: int, holidays: tuple[date, ...] = ()) -> datetime:
    """Count by hand: the days after start that fall Monday to Friday and are no holiday; due at its end (UTC here)."""
    later = (start + timedelta(days=n) for n in range(1, 3 * days + 15))
    day = [day for day in later if day.weekday() < 5 and day.date() not in holidays][days - 1]
    return day.replace(hour=23, minute=59, second=59, microsecond=0)


def _token(instance_id: int, customer_code: str) -> str:
    """Read a consignee's acknowledgment link out of its queued notice, as the consignee would."""
    db.session.rollback()
    consignee = next(c for c in db.session.scalars(select(RecallConsignee).where(
        RecallConsignee.instance_id == instance_id)) if c.customer.code == customer_code)
    return consignee.message.body.split("/ack/")[1].split()[0]


# --- deadlines, escalations, progress reports and reminders with an explicit clock -----------------------------------

@pytest.mark.parametrize("recall_class, trigger, markets, holiday", [
    ("I", steps.TRIGGER, ["CN", "US"], False),
    ("II", L1_ONLY, ["CN"], False),
    ("III", steps.TRIGGER, ["CN", "US"], True),
], ids=["class-I-with-US", "class-II-CN-only", "class-III-with-a-holiday"])
def test_deadlines_are_counted_from_the_decision_and_escalate_once_when_missed(
        app, client, auth, plant, recall_class, trigger, markets, holiday):
    holidays: tuple[date, ...] = ()
    if holiday:  # the second working day after today falls inside the five working days of the recall plan
        today = utcnow().date()
        holidays = ([day for day in (today + timedelta(days=n) for n in range(1, 10)) if day.weekday() < 5][1],)
        app.config["HOLIDAYS"] = holidays
    instance_id = _decide(client, auth, recall_class, trigger)
    view = _recall(client, auth, instance_id)
    assert (view["recall_class"], view["markets"]) == (recall_class, markets)
    deadlines = {d["key"]: d for d in view["deadlines"]}
    decision = _at(deadlines["consignee_notice"]["started_at"])
    assert {d["started_at"] for d in deadlines.values()} == {decision.isoformat()}
    due = {key: _at(d["due_at"]) for key, d in deadlines.items()}
    expected = {"consignee_notice": decision + timedelta(days=NOTICE_DAYS[recall_class]),
                "regulator_report": decision + timedelta(hours=24),
                "recall_plan": _working_days_after(decision, 5, holidays)}
    if "US" in markets:
        expected["fda_806"] = _working_days_after(decision, 10, holidays)
    assert due == expected  # no EU consignee: no EU FSCA deadline
    assert deadlines["recall_plan"]["basis"] == "5 working days (CN calendar)"
    if holiday:
        assert decision.date() < holidays[0] < due["recall_plan"].date()
        assert due["recall_plan"] == _working_days_after(decision, 6)  # one working day later than without it
    assert all(d["status"] == "pending" and d["met_at"] is None and d["escalated_at"] is None
               and 0 < d["seconds_remaining"] <= (due[d["key"]] - decision).total_seconds()
               for d in deadlines.values())

    for when in sorted(set(due.values())):
        keys = {key for key, at in due.items() if at == when}
        assert timers.fire_due_timers(now=when - MINUTE) == 0
        assert not any(_tasks(client, auth, instance_id, f"escalation_{key}") for key in keys)
        assert timers.fire_due_timers(now=when + MINUTE) == 1
        after = _deadlines(client, auth, instance_id)
        for key in keys:
            (task,) = _tasks(client, auth, instance_id, f"escalation_{key}")
            assert (task["state"], task["group"]) == ("ready", "qa_management")
            assert _at(after[key]["escalated_at"]) == when + MINUTE  # (its status is read at the real time)
            (mail,) = _mails(instance_id, subject=ESCALATION_SUBJECT[key])
            assert "head@qualiflow.example" in mail.recipients.split(",")
    timers.fire_due_timers(now=max(due.values()) + timedelta(days=3))
    timers.fire_due_timers(now=max(due.values()) + timedelta(days=3))
    for key in due:
        assert len(_tasks(client, auth, instance_id, f"escalation_{key}")) == 1
        assert len(_mails(instance_id, subject=ESCALATION_SUBJECT[key])) == 1
    head_inbox = _ok(client.get(f"{API}/tasks?process=recall&per_page=200", headers=auth("head")))["items"]
    assert sorted(t["element_id"] for t in head_inbox if t["group"] == "qa_management") == sorted(
        f"escalation_{key}" for key in due)


def test_a_deadline_met_before_it_is_due_never_escalates(client, auth, plant, user, monkeypatch):
    instance_id = _decide(client, auth, "II")
    _step(client, auth, instance_id, "prepare_notices", steps.NOTICES)
    steps.deliver_notices(instance_id, user, utcnow(), monkeypatch)
    notice = _deadlines(client, auth, instance_id)["consignee_notice"]
    assert notice["status"] == "met" and notice["seconds_remaining"] is None
    assert _at(notice["met_at"]) < _at(notice["due_at"])
    timers.fire_due_timers(now=_at(notice["due_at"]) + MINUTE)
    timers.fire_due_timers(now=_at(notice["due_at"]) + timedelta(days=2))
    assert _tasks(client, auth, instance_id, "escalation_consignee_notice") == []
    assert _mails(instance_id, subject=ESCALATION_SUBJECT["consignee_notice"]) == []
    after = _deadlines(client, auth, instance_id)["consignee_notice"]
    assert (after["status"], after["met_at"], after["escalated_at"]) == ("met", notice["met_at"], None)
    assert _tasks(client, auth, instance_id, "escalation_regulator_report")  # the one left open did escalate


def test_a_progress_report_is_rendered_every_14_days_while_the_recall_is_monitored(client, auth, plant):
    instance_id = _decide(client, auth)
    _step(client, auth, instance_id, "prepare_notices", steps.NOTICES)
    decision = _at(_deadlines(client, auth, instance_id)["consignee_notice"]["started_at"])
    counts = []
    for when in (decision + timedelta(days=14) + MINUTE, decision + timedelta(days=14) + MINUTE,
                 decision + timedelta(days=28) + MINUTE, decision + timedelta(days=28) + MINUTE):
        timers.fire_due_timers(now=when)
        counts.append((len(_documents(client, auth, instance_id, "recall_progress_report")),
                       len(_tasks(client, auth, instance_id, "submit_progress"))))
    assert counts == [(1, 1), (1, 1), (2, 2), (2, 2)]
    assert [t["group"] for t in _tasks(client, auth, instance_id, "submit_progress")] == ["regulatory"] * 2


def test_reminders_go_to_the_silent_consignees_with_an_e_mail_address(client, auth, plant):
    instance_id = _decide(client, auth)
    _step(client, auth, instance_id, "prepare_notices", steps.NOTICES)
    _ok(client.post(f"{API}/acknowledgments/{_token(instance_id, 'D1')}",
                    json={"received": True, "on_hand": 0, "contact": "Chen Jie 138"}))
    notified = {_at(c["notified_at"]) for c in _recall(client, auth, instance_id)["consignees"]}
    (notice_at,) = notified
    assert timers.fire_due_timers(now=notice_at + timedelta(days=3) - MINUTE) == 1  # the daily run: too early
    assert _mails(instance_id, key="recall-reminder:") == []
    for _ in range(2):
        timers.fire_due_timers(now=notice_at + timedelta(days=3) + MINUTE)
    reminded = sorted(m.recipients for m in _mails(instance_id, key="recall-reminder:"))
    assert reminded == ["h1@example.com", "us1@example.com"]  # D1 acknowledged, H2 has no e-mail address
    consignees = {c["code"]: c for c in _recall(client, auth, instance_id)["consignees"]}
    assert {code: c["reminders"] for code, c in consignees.items()} == {"D1": 0, "H1": 1, "H2": 0, "US1": 1}
    assert _at(consignees["H1"]["last_reminded_at"]) == notice_at + timedelta(days=3) + MINUTE


# --- the recall view and the dashboard --------------------------------------------------------------------------------

def test_the_recall_view_shows_lots_consignees_deadlines_and_figures(client, auth, plant):
    instance_id = _decide(client, auth)
    _step(client, auth, instance_id, "prepare_notices", steps.NOTICES)
    _ok(client.post(f"{API}/acknowledgments/{_token(instance_id, 'D1')}", json={
        "received": True, "on_hand": 5, "contact": "Chen Jie 138", "forwarded": True,
        "lines": [{"lot": "L1", "returned": 60, "destroyed": 10}]}))
    view = _recall(client, auth, instance_id)
    assert (view["id"], view["title"], view["status"], view["recall_class"]) == (
        instance_id, "Leaking infusion sets", "running", "I")
    assert [(lot["lot_number"], lot["status"], lot["quantity"], lot["quantity_shipped"], lot["quantity_returned"],
             lot["quantity_destroyed"]) for lot in view["lots"]] == [("L1", "recalled", 500, 100, 60, 10),
                                                                     ("L2", "recalled", 500, 80, 0, 0)]
    consignees = {c["code"]: c for c in view["consignees"]}
    assert list(consignees) == ["D1", "H1", "US1", "H2"]  # by region, then code
    d1, h2 = consignees["D1"], consignees["H2"]
    assert (d1["kind"], d1["region"], d1["country"], d1["email"], d1["language"]) == (
        "distributor", "Jiangsu", "CN", "d1@example.com", "zh-CN")
    assert (d1["email_status"], d1["email_attempts"], d1["notice_document_id"] is not None) == ("queued", 0, True)
    assert (d1["ack_received"], d1["ack_on_hand"], d1["ack_contact"], d1["ack_forwarded"]) == (
        True, 5, "Chen Jie 138", True)
    assert d1["acknowledged_at"] and d1["reminders"] == 0 and d1["in_sample"] is False
    assert [(line["lot_number"], line["quantity_shipped"], line["quantity_returned"]) for line in d1["lines"]] == [
        ("L1", 100, 60)]
    assert (h2["email"], h2["email_status"], h2["acknowledged_at"]) == ("", None, None)  # notified on paper
    assert (d1["delivered"], h2["delivered"]) == (True, False)  # D1 acknowledged; H2's paper notice is unconfirmed
    assert all(c["notified_at"] for c in view["consignees"])
    deadlines = {d["key"]: d for d in view["deadlines"]}
    assert set(deadlines) == {"consignee_notice", "regulator_report", "recall_plan", "fda_806"}
    assert deadlines["consignee_notice"]["label_zh"] == "通知收货方"
    assert deadlines["consignee_notice"]["status"] == deadlines["recall_plan"]["status"] == "pending"  # undelivered
    assert view["totals"] == {"lots": 2, "consignees": 4, "quantity_shipped": 180, "quantity_returned": 60,
                              "quantity_destroyed": 10, "quantity_recovered": 70, "recovered_pct": "38.9%",
                              "notified": 4, "delivered": 1, "acknowledged": 1, "ack_rate": "25.0%",
                              "contacted": 0, "contacted_pct": "0.0%"}
    assert [(r["region"], r["consignees"], r["acknowledged"], r["quantity_returned"]) for r in view["regions"]] == [
        ("Jiangsu", 2, 1, 70), ("Massachusetts", 1, 0, 0), ("Zhejiang", 1, 0, 0)]
    assert view["effectiveness"] == {"level": "", "population": 4, "sample_size": 0, "checked": 0, "effective": 0,
                                     "met": True}
    assert [(t["name"], t["required"], t["actual"], t["met"]) for t in view["thresholds"]] == [
        ("level", "A", "-", False), ("contacted", "100%", "0.0%", False), ("acknowledged", "100%", "25.0%", False),
        ("recovered", "90%", "38.9%", False)]  # class I, no plan yet


def test_the_dashboard_sums_the_open_recalls(client, auth, plant):
    decided = _decide(client, auth, "II")
    _step(client, auth, decided, "prepare_notices", steps.NOTICES)
    _ok(client.post(f"{API}/acknowledgments/{_token(decided, 'US1')}", json={
        "received": True, "contact": "Pat Doe", "lines": [{"lot": "L2", "returned": 30}]}))
    waiting = _start(client, auth)
    board = _ok(client.get(f"{API}/recalls", headers=auth("auditor")))
    assert (board["open_total"], board["open_by_class"]) == (2, {"I": 0, "II": 1, "III": 0, "unassessed": 1})
    assert board["notification"] == {"pending": 1, "overdue": 0, "met": 0, "met_late": 0}  # queued, not delivered
    assert (board["notified"], board["acknowledged"], board["ack_rate"]) == (4, 1, 0.25)
    assert (board["quantity_shipped"], board["quantity_recovered"], board["recovered_rate"]) == (180, 30, 30 / 180)
    assert [r["id"] for r in board["recalls"]] == [waiting, decided]
    assert (board["recalls"][1]["recall_class"], board["recalls"][1]["notification"]) == ("II", "pending")
    massachusetts = next(r for r in board["regions"] if r["region"] == "Massachusetts")
    assert (massachusetts["ack_rate"], massachusetts["recovered_rate"]) == (1.0, 1.0)


def test_an_instance_that_is_no_recall_is_not_found(client, auth, plant, user):
    capa = instances.start_instance("capa", user("qa"), title="Burr on hub")
    for path in (f"/recalls/{capa.id}", "/recalls/999"):
        response = client.get(API + path, headers=auth("qa"))
        assert response.status_code == 404 and response.get_json()["message"]


# --- starting a recall and editing its records ----------------------------------------------------------------------

def test_a_recall_starts_from_a_lot_or_a_capa(client, auth, plant, user):
    from_lot = _ok(client.post(f"{API}/recalls/start", headers=auth("qa"), json={"lot_id": plant["L2"].id}), 201)
    assert (from_lot["title"], from_lot["status"]) == ("Recall: lot L2", "running")
    task = _ok(client.get(f"{API}/tasks/{from_lot['task_id']}", headers=auth("qa")))
    assert (task["instance_id"], task["element_id"], task["state"]) == (from_lot["id"], "trigger", "ready")
    record = _ok(client.get(f"{API}/instances/{from_lot['id']}", headers=auth("qa")))
    assert record["data"]["product_lots"] == "L2"
    capa = instances.start_instance("capa", user("qa"), title="Leak found in final inspection")
    from_capa = _ok(client.post(f"{API}/recalls/start", headers=auth("qa"), json={"capa_instance_id": capa.id}), 201)
    assert from_capa["title"] == "Recall from Leak found in final inspection" and from_capa["task_id"]


@pytest.mark.parametrize("username, body, status", [
    ("qa", {}, 422),
    ("qa", {"lot_id": 1, "capa_instance_id": 1}, 422),
    ("qa", {"lot_id": "L1"}, 422),
    ("qa", {"lot_id": 999}, 404),
    ("qa", {"capa_instance_id": 999}, 404),
    ("auditor", {"lot_id": 1}, 403),
], ids=["nothing", "both", "not-an-id", "unknown-lot", "unknown-capa", "auditor"])
def test_starting_a_recall_is_refused(client, auth, plant, username, body, status):
    response = client.post(f"{API}/recalls/start", headers=auth(username), json=body)
    assert response.status_code == status and response.get_json()["message"]
    assert _ok(client.get(f"{API}/recalls", headers=auth("qa")))["open_total"] == 0


@pytest.fixture
def unused_material(plant):
    """Material lot M2: received, never used in a product lot."""
    db.session.add(MaterialLot(supplier=db.session.scalar(select(Supplier)), material="Tubing", lot_number="M2"))
    db.session.commit()


@pytest.mark.parametrize("trigger, needle", [
    ({**L1_ONLY, "product_lots": "L1, NOPE"}, "NOPE"),
    ({**steps.TRIGGER, "material_lots": "M2"}, "empty"),
], ids=["unknown-lot", "nothing-affected"])
def test_a_trigger_naming_nothing_to_recall_is_refused_and_changes_nothing(client, auth, unused_material, trigger,
                                                                          needle):
    instance_id = _start(client, auth)
    response = _complete(client, auth, instance_id, "trigger", trigger)
    assert response.status_code == 422
    assert any(needle in message for message in response.get_json()["errors"]["product_lots"])
    (task,) = _tasks(client, auth, instance_id, "trigger")
    assert (task["state"], task["completed_by"]) == ("ready", None)
    record = _ok(client.get(f"{API}/instances/{instance_id}", headers=auth("qa")))
    assert record["data"] == {"title": "Leaking infusion sets"}
    view = _recall(client, auth, instance_id)
    assert (view["lots"], view["consignees"], view["deadlines"]) == ([], [], [])


def _lots_and_consignees(view: dict) -> tuple[list[str], list[str]]:
    return [lot["lot_number"] for lot in view["lots"]], sorted(c["code"] for c in view["consignees"])


def test_qa_edits_the_affected_list_and_the_consignees_follow(client, auth, plant):
    instance_id = _start(client, auth)
    _step(client, auth, instance_id, "trigger", L1_ONLY)
    added = _ok(client.post(f"{API}/recalls/{instance_id}/affected", headers=auth("qa"),
                            json={"add": ["L2", "L3"], "reason": "Same resin batch"}))
    assert _lots_and_consignees(added) == (["L1", "L2", "L3"], ["D1", "H1", "H2", "US1"])
    h1 = next(c for c in added["consignees"] if c["code"] == "H1")
    assert [(line["lot_number"], line["quantity_shipped"]) for line in h1["lines"]] == [("L1", 20), ("L3", 10)]
    removed = _ok(client.post(f"{API}/recalls/{instance_id}/affected", headers=auth("qa"),
                              json={"remove": ["L2"], "reason": "L2 used another resin"}))
    assert _lots_and_consignees(removed) == (["L1", "L3"], ["D1", "H1"])
    history = _ok(client.get(f"{API}/instances/{instance_id}", headers=auth("qa")))["audit"]
    assert [a["reason"] for a in history if a["action"] == "recall.affected_edited"] == [
        "Same resin batch", "L2 used another resin"]


@pytest.mark.parametrize("username, body, status, field", [
    ("qa", {"remove": ["L1", "L2"], "reason": "Wrong lots"}, 422, "remove"),
    ("qa", {"add": ["NOPE"], "reason": "More lots"}, 422, "add"),
    ("qa", {"remove": ["L3"], "reason": "Not listed"}, 422, "remove"),
    ("qa", {"add": ["L3"]}, 422, "reason"),
    ("qa", {"reason": "Nothing named"}, 422, "add"),
    ("qa", {"add": "L3", "reason": "Not a list"}, 422, "json"),
    ("auditor", {"add": ["L3"], "reason": "Read-only user"}, 403, None),
], ids=["every-lot-removed", "unknown-lot", "not-listed", "no-reason", "nothing", "not-a-list", "auditor"])
def test_an_affected_list_edit_is_refused_and_changes_nothing(client, auth, plant, username, body, status, field):
    instance_id = _start(client, auth)
    _step(client, auth, instance_id, "trigger", steps.TRIGGER)
    before = _recall(client, auth, instance_id)
    response = client.post(f"{API}/recalls/{instance_id}/affected", headers=auth(username), json=body)
    assert response.status_code == status
    if field:
        assert response.get_json()["errors"][field]
    assert _recall(client, auth, instance_id) == before


def test_the_affected_list_is_frozen_once_the_notices_are_out(client, auth, plant):
    instance_id = _decide(client, auth)
    _step(client, auth, instance_id, "prepare_notices", steps.NOTICES)
    response = client.post(f"{API}/recalls/{instance_id}/affected", headers=auth("qa"),
                           json={"add": ["L3"], "reason": "Late find"})
    assert response.status_code == 409
    assert [lot["lot_number"] for lot in _recall(client, auth, instance_id)["lots"]] == ["L1", "L2"]


def _line(view: dict, customer: str, lot: str) -> tuple[int, int]:
    consignee = next(c for c in view["consignees"] if c["code"] == customer)
    line = next(line for line in consignee["lines"] if line["lot_number"] == lot)
    return line["quantity_returned"], line["quantity_destroyed"]


def test_returns_are_recorded_one_by_one_or_from_a_file(client, auth, plant):
    instance_id = _start(client, auth)
    _step(client, auth, instance_id, "trigger", steps.TRIGGER)
    line = _ok(client.post(f"{API}/recalls/{instance_id}/returns", headers=auth("qa"),
                           json={"customer": "D1", "lot": "L1", "returned": 60, "destroyed": 10}))
    assert {key: line[key] for key in ("customer", "lot_number", "product", "quantity_shipped", "quantity_returned",
                                       "quantity_destroyed")} == {
        "customer": "D1", "lot_number": "L1", "product": "Infusion set", "quantity_shipped": 100,
        "quantity_returned": 60, "quantity_destroyed": 10}
    upload = io.BytesIO(b"customer,lot,returned,destroyed\nD1,L1,70,10\nUS1,L2,25,\n")
    imported = _ok(client.post(f"{API}/recalls/{instance_id}/returns/import", headers=auth("qa"),
                               data={"file": (upload, "returns.csv")}, content_type="multipart/form-data"), 201)
    assert imported == {"imported": 2}
    view = _recall(client, auth, instance_id)
    assert (_line(view, "D1", "L1"), _line(view, "US1", "L2")) == ((70, 10), (25, 0))
    assert view["totals"]["recovered_pct"] == "58.3%"  # 105 of the 180 units shipped


@pytest.mark.parametrize("username, body, status, field", [
    ("qa", {"customer": "D1", "lot": "L1", "returned": 95, "destroyed": 10}, 422, "returned"),
    ("qa", {"customer": "H2", "lot": "L1", "returned": 1}, 422, "lot"),
    ("qa", {"customer": "D1", "lot": "L1", "returned": -1}, 422, "json"),
    ("qa", {"customer": "D1", "lot": "L1"}, 422, "json"),
    ("auditor", {"customer": "D1", "lot": "L1", "returned": 1}, 403, None),
], ids=["above-shipped", "not-shipped-there", "negative", "no-quantity", "auditor"])
def test_a_return_is_refused_and_the_quantities_stay(client, auth, plant, username, body, status, field):
    instance_id = _start(client, auth)
    _step(client, auth, instance_id, "trigger", steps.TRIGGER)
    _ok(client.post(f"{API}/recalls/{instance_id}/returns", headers=auth("qa"),
                    json={"customer": "D1", "lot": "L1", "returned": 40, "destroyed": 0}))
    response = client.post(f"{API}/recalls/{instance_id}/returns", headers=auth(username), json=body)
    assert response.status_code == status
    if field:
        assert response.get_json()["errors"][field]
    assert _line(_recall(client, auth, instance_id), "D1", "L1") == (40, 0)


@pytest.mark.parametrize("content, filename, status, errors", [
    (b"customer,lot,returned,destroyed\nD1,L1,50,0\nD1,L1,90,20\nH2,L1,1,0\nUS1,L2,x,0\n", "returns.csv", 422,
     [(3, "returned"), (4, "lot"), (5, "returned")]),
    (b"customer,lot\nD1,L1\n", "returns.csv", 400, None),
    (b"customer,lot,returned\n", "returns.csv", 400, None),
    (b"customer,lot,returned\nD1,L1,50\n", "returns.txt", 422, None),
], ids=["bad-rows", "missing-column", "no-rows", "not-csv"])
def test_a_returns_file_with_any_bad_row_imports_nothing(client, auth, plant, content, filename, status, errors):
    instance_id = _start(client, auth)
    _step(client, auth, instance_id, "trigger", steps.TRIGGER)
    response = client.post(f"{API}/recalls/{instance_id}/returns/import", headers=auth("qa"),
                           data={"file": (io.BytesIO(content), filename)}, content_type="multipart/form-data")
    assert response.status_code == status
    body = response.get_json()
    if errors:
        assert [(e["line"], e["column"]) for e in body["errors"]] == errors and body["total_errors"] == 3
        assert all(e["message"] for e in body["errors"])
    assert _line(_recall(client, auth, instance_id), "D1", "L1") == (0, 0)


def test_an_effectiveness_check_is_recorded_for_a_consignee(client, auth, plant):
    instance_id = _start(client, auth)
    _step(client, auth, instance_id, "trigger", steps.TRIGGER)
    d1 = next(c for c in _recall(client, auth, instance_id)["consignees"] if c["code"] == "D1")
    checked = _ok(client.post(f"{API}/recalls/{instance_id}/checks", headers=auth("qa"), json={
        "consignee_id": d1["id"], "method": "phone", "effective": False, "note": "Stock not yet quarantined"}))
    assert (checked["code"], checked["check_method"], checked["check_effective"], checked["check_note"],
            checked["checked_by"]) == ("D1", "phone", False, "Stock not yet quarantined", "qa")
    assert checked["checked_at"]


@pytest.mark.parametrize("username, body, status, field", [
    ("qa", {"method": "phone", "effective": False}, 422, "note"),
    ("qa", {"method": "telepathy", "effective": True}, 422, "json"),
    ("qa", {"method": "phone"}, 422, "json"),
    ("qa", {"consignee_id": 999, "method": "phone", "effective": True}, 404, None),
    ("auditor", {"method": "phone", "effective": True}, 403, None),
], ids=["no-note", "unknown-method", "no-outcome", "unknown-consignee", "auditor"])
def test_an_effectiveness_check_is_refused(client, auth, plant, username, body, status, field):
    instance_id = _start(client, auth)
    _step(client, auth, instance_id, "trigger", steps.TRIGGER)
    d1 = next(c for c in _recall(client, auth, instance_id)["consignees"] if c["code"] == "D1")
    response = client.post(f"{API}/recalls/{instance_id}/checks", headers=auth(username),
                           json={"consignee_id": d1["id"], **body})
    assert response.status_code == status
    if field:
        assert response.get_json()["errors"][field]
    d1 = next(c for c in _recall(client, auth, instance_id)["consignees"] if c["code"] == "D1")
    assert (d1["checked_at"], d1["check_method"], d1["check_effective"]) == (None, "", None)


# --- the public acknowledgment --------------------------------------------------------------------------------------

def test_a_consignee_acknowledges_once_with_its_link_and_no_account(client, auth, plant):
    instance_id = _decide(client, auth)
    _step(client, auth, instance_id, "prepare_notices", steps.NOTICES)
    token = _token(instance_id, "D1")
    form = _ok(client.get(f"{API}/acknowledgments/{token}"))
    notified = next(c for c in _recall(client, auth, instance_id)["consignees"] if c["code"] == "D1")["notified_at"]
    assert (form["name"], form["kind"], form["language"], form["ask_forwarded"]) == (
        "Jiangsu Medical Distribution", "distributor", "zh-CN", True)
    assert form["lines"] == [{"lot": "L1", "product": "Infusion set", "shipped": 100}]
    assert _at(form["expires_at"]) == _at(notified) + timedelta(days=30)
    done = _ok(client.post(f"{API}/acknowledgments/{token}", json={
        "received": True, "on_hand": 0, "contact": "Chen Jie 138", "comment": "All units back",
        "lines": [{"lot": "L1", "returned": 90, "destroyed": 10}]}))
    assert (done["name"], done["received"], done["on_hand"], done["lines"]) == (
        "Jiangsu Medical Distribution", True, 0,
        [{"lot": "L1", "product": "Infusion set", "shipped": 100, "returned": 90, "destroyed": 10}])
    assert _line(_recall(client, auth, instance_id), "D1", "L1") == (90, 10)
    for method in ("get", "post"):  # single use
        again = getattr(client, method)(f"{API}/acknowledgments/{token}", json={"received": True, "contact": "x"})
        assert again.status_code == 409 and again.get_json()["message"]


@pytest.mark.parametrize("body, field", [
    ({"received": True, "contact": "Chen", "lines": [{"lot": "L1", "returned": 95, "destroyed": 10}]},
     "lines.0.returned"),
    ({"received": True, "contact": "Chen", "lines": [{"lot": "L1", "returned": -1}]}, "lines.0.returned"),
    ({"received": True, "contact": "Chen", "lines": [{"lot": "L2", "returned": 1}]}, "lines.0.lot"),
    ({"received": True, "contact": "Chen", "lines": [{"lot": "L1"}, {"lot": "L1"}]}, "lines.1.lot"),
    ({"received": True, "lines": [{"lot": "L1", "returned": 1}]}, "contact"),
    ({"contact": "Chen"}, "received"),
    ({"received": "maybe", "contact": "Chen"}, "json"),
], ids=["above-shipped", "negative", "not-shipped-to-you", "listed-twice", "no-contact", "no-received",
        "not-a-boolean"])
def test_a_refused_acknowledgment_saves_nothing_and_the_link_still_works(client, auth, plant, body, field):
    instance_id = _decide(client, auth)
    _step(client, auth, instance_id, "prepare_notices", steps.NOTICES)
    token = _token(instance_id, "D1")
    response = client.post(f"{API}/acknowledgments/{token}", json=body)
    assert response.status_code == 422
    assert response.get_json()["errors"][field]
    assert _ok(client.get(f"{API}/acknowledgments/{token}"))["name"] == "Jiangsu Medical Distribution"
    d1 = next(c for c in _recall(client, auth, instance_id)["consignees"] if c["code"] == "D1")
    assert (d1["acknowledged_at"], d1["lines"][0]["quantity_returned"]) == (None, 0)


def test_forged_and_expired_links_are_refused(client, auth, plant):
    instance_id = _decide(client, auth)
    _step(client, auth, instance_id, "prepare_notices", steps.NOTICES)
    token = _token(instance_id, "H1")
    consignee = db.session.scalar(select(RecallConsignee).where(RecallConsignee.message.has(
        OutboxMessage.recipients == "h1@example.com")))
    consignee.token_expires_at = utcnow() - MINUTE  # thirty days have passed
    db.session.commit()
    answer = {"received": True, "contact": "Dr Wu"}
    for path, status in ((token, 410), (token[:-1] + ("A" if token[-1] != "A" else "B"), 404), ("forged", 404)):
        for method in ("get", "post"):
            response = getattr(client, method)(f"{API}/acknowledgments/{path}", json=answer)
            assert response.status_code == status and response.get_json()["message"]
    assert all(c["acknowledged_at"] is None for c in _recall(client, auth, instance_id)["consignees"])


# --- authentication and the OpenAPI document ------------------------------------------------------------------------

@pytest.mark.parametrize("method, path", [
    ("get", "/recalls"), ("get", "/recalls/1"), ("post", "/recalls/start"), ("post", "/recalls/1/affected"),
    ("post", "/recalls/1/returns"), ("post", "/recalls/1/returns/import"), ("post", "/recalls/1/checks"),
])
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer not-a-token"}], ids=["none", "unknown"])
def test_recall_endpoints_without_a_valid_token_get_401(client, seeded, method, path, headers):
    response = getattr(client, method)(API + path, headers=headers, json={})
    assert response.status_code == 401
    assert "Bearer" in response.get_json()["message"]


def test_the_openapi_document_describes_the_recall_endpoints(client, seeded):
    spec = json.loads(client.get(f"{API}/openapi.json").data)
    recall_paths = {"/api/v1/recalls": ["get"], "/api/v1/recalls/{instance_id}": ["get"],
                    "/api/v1/recalls/start": ["post"], "/api/v1/recalls/{instance_id}/affected": ["post"],
                    "/api/v1/recalls/{instance_id}/returns": ["post"],
                    "/api/v1/recalls/{instance_id}/returns/import": ["post"],
                    "/api/v1/recalls/{instance_id}/checks": ["post"]}
    public_paths = {"/api/v1/acknowledgments/{token}": ["get", "post"]}
    for paths, tag in ((recall_paths, "recalls_api"), (public_paths, "acknowledgments_api")):
        for path, methods in paths.items():
            for method in methods:
                operation = spec["paths"][path][method]
                assert operation["tags"] == [tag] and operation["summary"] and operation["description"]
                success = next(code for code in operation["responses"] if code.startswith("2"))
                assert operation["responses"][success]["content"]["application/json"]["schema"]
                assert ("security" in operation) == (tag == "acknowledgments_api")
    assert all(spec["paths"]["/api/v1/acknowledgments/{token}"][m]["security"] == [] for m in ("get", "post"))
    assert {"404", "409", "410", "422"} <= set(spec["paths"]["/api/v1/acknowledgments/{token}"]["post"]["responses"])
    deadline = spec["components"]["schemas"]["Deadline"]["properties"]
    assert deadline["due_at"]["format"] == "date-time" and deadline["seconds_remaining"]["type"] == "integer"
    assert {tag["name"] for tag in spec["tags"]} >= {"recalls_api", "acknowledgments_api"}

"""Supplier quality: the score over a rolling window with an explicit clock (window edges, not enough data, late SCAR
responses, weights), thresholds that start the supplier review once per crossing (one open review per supplier),
the e-signed status change (wrong password refused, audited), suspended suppliers' lots refused at release, the
scheduled scoring, the approved-supplier list and its CSV / XLSX export read back, the API with hostile values,
the pages in English and Chinese, and the dashboard tile."""
from __future__ import annotations

import csv
import io
from datetime import date, datetime, timedelta

import pytest
from openpyxl import load_workbook

from app.exceptions import Conflict, FormInvalid, PermissionDenied, SignatureRejected
from app.extensions import db
from app.models import (
    AuditEvent,
    Inspection,
    MaterialLot,
    ProcessDefinition,
    ProcessInstance,
    ProcessVersion,
    ScarRequest,
    Signature,
    Supplier,
    SupplierEvaluation,
    SupplierReturn,
    SupplierReview,
    Task,
)
from app.services import demo, users
from app.services.lots import lots
from app.services.procedures import supplier_quality
from app.services.procedures.supplier_quality import Figures, Settings, score
from app.services.workflow import tasks
from tests.conftest import T0, login

WEIGHTS = {"nonconforming_pct": 2.0, "scar": 5.0, "return": 3.0, "late_response": 10.0}
RULE = Settings(window_days=365, min_inspections=3, alert=80.0, limit=60.0, weights=WEIGHTS)
TODAY = T0.date()  # the tests' plant time zone is UTC


# --- the rule ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("figures", "expected", "band"), [
    (Figures(), None, "no_data"),  # nothing at all
    (Figures(inspections=2, failed=2), None, "no_data"),  # fewer inspections than the minimum, no other event
    (Figures(inspections=3), 100.0, "good"),
    (Figures(inspections=10, failed=1), 80.0, "good"),  # 10 % nonconforming x 2 = 20 points: exactly the threshold
    (Figures(inspections=20, failed=3), 70.0, "alert"),  # 15 % x 2
    (Figures(inspections=10, failed=2, scars=1), 55.0, "limit"),  # 40 + 5
    (Figures(late_responses=1), 90.0, "good"),  # no inspection, but a late response is data
    (Figures(inspections=1, failed=1, scars=2, returns=1, late_responses=3), 0.0, "limit"),  # clamped at 0
])
def test_the_score_subtracts_weighted_figures_and_needs_data(figures, expected, band):
    value, got_band, deductions = score(figures, RULE)
    assert value == expected and got_band == band
    if expected is None:
        assert deductions == {}


def test_thresholds_are_exclusive_below():
    assert supplier_quality.band_of(80.0, RULE) == "good"
    assert supplier_quality.band_of(79.9, RULE) == "alert"
    assert supplier_quality.band_of(60.0, RULE) == "alert"
    assert supplier_quality.band_of(59.9, RULE) == "limit"
    assert supplier_quality.band_of(None, RULE) == "no_data"


# --- the database ---------------------------------------------------------------------------------------------------

def _supplier(code: str = "SQ1", name: str = "Resin Co", status: str = "approved") -> Supplier:
    supplier = Supplier(code=code, name=name, status=status, email=f"qa@{code.lower()}.example", language="en")
    db.session.add(supplier)
    db.session.flush()
    return supplier


_lot_counter = iter(range(1, 10_000))


def _inspect(supplier: Supplier, day: date, result: str = "pass", stage: str = "incoming") -> MaterialLot:
    lot = MaterialLot(supplier_id=supplier.id, material="PVC resin", lot_number=f"ML-{next(_lot_counter):04d}",
                      received_on=day, status="quarantine")
    db.session.add(lot)
    db.session.flush()
    db.session.add(Inspection(stage=stage, material_lot_id=lot.id, result=result, inspected_on=day,
                              inspector="Chen Jing"))
    return lot


def _instance(key: str, started: datetime) -> ProcessInstance:
    version = db.session.scalar(db.select(ProcessVersion).join(ProcessDefinition)
                                .where(ProcessDefinition.key == key).limit(1))
    row = ProcessInstance(version=version, title=f"{key} {started:%Y-%m-%d}", status="running", started_at=started,
                          data={}, state_json="")
    db.session.add(row)
    db.session.flush()
    return row


def _scar(supplier: Supplier, sent: datetime, due: datetime, responded: datetime | None, round_: int = 1,
          instance: ProcessInstance | None = None) -> ScarRequest:
    instance = instance or _instance("supplier_return", sent)
    scar = ScarRequest(instance_id=instance.id, supplier_id=supplier.id, round=round_,
                       number=f"SCAR-{instance.id:06d}-{round_}", sent_at=sent, response_due_at=due,
                       responded_at=responded)
    db.session.add(scar)
    db.session.flush()
    return scar


def _reviews(supplier: Supplier) -> list[SupplierReview]:
    return list(db.session.scalars(db.select(SupplierReview).where(SupplierReview.supplier_id == supplier.id)
                                   .order_by(SupplierReview.id)))


def _ready(instance_id: int, element: str) -> Task | None:
    return db.session.scalar(db.select(Task).where(Task.instance_id == instance_id, Task.element_id == element,
                                                   Task.state == "ready"))


def test_the_window_counts_the_last_days_today_included(seeded, app):
    app.config["SUPPLIER_SCORE_WINDOW_DAYS"] = 30
    supplier = _supplier()
    for _ in range(3):
        _inspect(supplier, TODAY)  # inside
    _inspect(supplier, TODAY - timedelta(days=29), "fail")  # the window's first day: inside
    _inspect(supplier, TODAY - timedelta(days=30), "fail")  # the day before: outside
    _inspect(supplier, TODAY + timedelta(days=1), "fail")  # after now (a later clock): outside
    _inspect(supplier, TODAY, "fail", stage="in_process")  # not an incoming inspection
    db.session.commit()
    evaluation = supplier_quality.evaluate_supplier(supplier.id, now=T0, trigger="scheduled").evaluation
    assert evaluation.figures["inspections"] == 4 and evaluation.figures["failed"] == 1
    assert evaluation.figures["window_start"] == (TODAY - timedelta(days=29)).isoformat()
    assert evaluation.score == 50.0 and evaluation.band == "limit"  # 25 % x 2
    # A day later the failed inspection at the first day has left the window.
    later = supplier_quality.evaluate_supplier(supplier.id, now=T0 + timedelta(days=1), trigger="scheduled")
    assert later.evaluation.figures["inspections"] == 4  # the one "after now" has come in
    assert later.evaluation.figures["failed"] == 1


def test_not_enough_data_gives_no_score_and_starts_nothing(seeded, app):
    supplier = _supplier()
    _inspect(supplier, TODAY, "fail")
    _inspect(supplier, TODAY, "fail")
    db.session.commit()
    outcome = supplier_quality.evaluate_supplier(supplier.id, now=T0, trigger="scheduled")
    assert outcome.evaluation.score is None and outcome.evaluation.band == "no_data"
    assert outcome.review is None and not _reviews(supplier)


def test_late_scar_responses_and_returns_are_counted(seeded, app):
    supplier = _supplier()
    for _ in range(5):
        _inspect(supplier, TODAY - timedelta(days=10))
    _scar(supplier, T0 - timedelta(days=40), T0 - timedelta(days=26), T0 - timedelta(days=20))  # answered late
    _scar(supplier, T0 - timedelta(days=30), T0 - timedelta(days=16), T0 - timedelta(days=17))  # answered in time
    _scar(supplier, T0 - timedelta(days=20), T0 - timedelta(days=6), None)  # not answered, overdue: late
    _scar(supplier, T0 - timedelta(days=5), T0 + timedelta(days=9), None)  # not answered, not due yet: not late
    _scar(supplier, T0 - timedelta(days=400), T0 - timedelta(days=386), None)  # before the window
    # A second round is not another SCAR, but its late answer counts.
    first = _scar(supplier, T0 - timedelta(days=60), T0 - timedelta(days=46), T0 - timedelta(days=50))
    _scar(supplier, T0 - timedelta(days=45), T0 - timedelta(days=31), T0 - timedelta(days=29), round_=2,
          instance=db.session.get(ProcessInstance, first.instance_id))
    lot = _inspect(supplier, TODAY - timedelta(days=3))
    db.session.add(SupplierReturn(instance_id=first.instance_id, material_lot_id=lot.id, supplier_id=supplier.id,
                                  material=lot.material, lot_number=lot.lot_number, quantity=10,
                                  returned_on=TODAY - timedelta(days=3), recorded_at=T0))
    db.session.commit()
    figures = supplier_quality.evaluate_supplier(supplier.id, now=T0, trigger="scheduled").evaluation.figures
    assert figures["scars"] == 5 and figures["late_responses"] == 3 and figures["returns"] == 1
    assert figures["inspections"] == 6 and figures["failed"] == 0
    assert figures["deductions"] == {"nonconforming_pct": 0.0, "scar": 25.0, "return": 3.0, "late_response": 30.0}
    latest = supplier_quality.latest_evaluation(supplier.id)
    assert latest.score == 42.0 and latest.band == "limit"


def _failing(supplier: Supplier, failed: int, passed: int, day: date = TODAY) -> None:
    for _ in range(failed):
        _inspect(supplier, day, "fail")
    for _ in range(passed):
        _inspect(supplier, day)


def test_crossing_the_alert_threshold_starts_one_review_and_the_limit_feeds_it(seeded, app):
    supplier = _supplier()
    _failing(supplier, 3, 17)  # 15 % -> 70: alert
    quiet = _supplier("SQ2", "Tube Co")
    _failing(quiet, 0, 5)
    db.session.commit()
    outcomes = supplier_quality.evaluate_all(T0)
    by_supplier = {o.evaluation.supplier_id: o for o in outcomes}
    assert by_supplier[supplier.id].started and by_supplier[quiet.id].review is None
    (review,) = _reviews(supplier)
    assert review.trigger == "alert" and review.proposed_status == "conditional" and review.score == 70.0
    instance = db.session.get(ProcessInstance, review.instance_id)
    assert instance.status == "running" and instance.data["supplier_status"] == "conditional"
    task = _ready(instance.id, "review")
    assert task is not None and task.group_name == "qa"
    assert instance.started_by.username == "admin"  # the first active member of qa_management: no user runs it
    # Scoring again, by the schedule or on demand, starts nothing more: the open review gets the evaluation.
    again = supplier_quality.evaluate_all(T0 + timedelta(hours=1))
    on_demand = supplier_quality.evaluate_supplier(supplier.id, users.get_by_username("qa"),
                                                   T0 + timedelta(hours=2))
    assert not any(o.started for o in again) and not on_demand.started
    assert on_demand.review.id == review.id and on_demand.evaluation.review_id == review.id
    # Crossing the limit while it is open escalates that review instead of opening another.
    _failing(supplier, 6, 0)
    db.session.commit()
    worse = supplier_quality.evaluate_supplier(supplier.id, now=T0 + timedelta(hours=3), trigger="scheduled")
    assert worse.evaluation.band == "limit" and not worse.started
    assert len(_reviews(supplier)) == 1 and db.session.get(SupplierReview, review.id).band == "limit"
    assert db.session.scalar(db.select(db.func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "supplier_review.escalated")) == 1
    assert db.session.scalar(db.select(db.func.count()).select_from(ProcessInstance).join(ProcessVersion)
                             .join(ProcessDefinition).where(ProcessDefinition.key == "supplier_review")) == 1


def _decide(instance_id: int, user, status: str = "suspended", password: str | None = demo.DEMO_PASSWORD,
            approver: str = "head", **extra):
    tasks.complete_task(_ready(instance_id, "review").id,
                        {"assessment": "Three lots with black specks in one quarter; SCAR answers late.",
                         "supplier_status": status, "status_reason": "Repeated contamination of resin lots.",
                         **extra}, user("qa"), now=T0 + timedelta(hours=1), lang="en")
    return tasks.complete_task(_ready(instance_id, "approve").id, {"approval": "approve"}, user(approver),
                               now=T0 + timedelta(hours=2), lang="en", password=password)


def test_the_status_changes_only_with_the_signed_decision(seeded, user, client):
    supplier = _supplier()
    _failing(supplier, 5, 5)  # 50 % -> 0: limit
    lot = _inspect(supplier, TODAY)
    db.session.commit()
    outcome = supplier_quality.evaluate_supplier(supplier.id, now=T0, trigger="scheduled")
    review = outcome.review
    assert outcome.started and review.trigger == "limit" and review.proposed_status == "suspended"
    # A wrong password refuses the signature: the status stays and the attempt is audited.
    with pytest.raises(SignatureRejected):
        _decide(review.instance_id, user, password="wrong-password")
    db.session.rollback()
    assert db.session.get(Supplier, supplier.id).status == "approved"
    assert _ready(review.instance_id, "approve") is not None
    assert db.session.scalar(db.select(db.func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "signature.failed")) == 1
    tasks.complete_task(_ready(review.instance_id, "approve").id, {"approval": "approve"}, user("head"),
                        now=T0 + timedelta(hours=3), lang="en", password=demo.DEMO_PASSWORD)
    supplier = db.session.get(Supplier, supplier.id)
    assert supplier.status == "suspended"
    changed = db.session.scalar(db.select(AuditEvent).where(AuditEvent.action == "supplier.status_changed"))
    assert changed.actor_name == "Helen Head" and changed.old == {"status": "approved"}
    assert "e-signed by Helen Head" in changed.reason
    signature = db.session.scalar(db.select(Signature).where(Signature.instance_id == review.instance_id))
    assert signature.meaning == "approved" and signature.user.username == "head"
    closed = db.session.get(SupplierReview, review.id)
    assert closed.closed_at is not None and closed.decided_status == "suspended"
    assert db.session.get(ProcessInstance, review.instance_id).status == "completed"
    # A suspended supplier's lot is refused at release, and its page says why.
    with pytest.raises(Conflict, match="suspended"):
        lots.set_status("material", lot.id, "released", "Incoming inspection passed.", user("releaser"))
    db.session.rollback()
    login(client, "qa")
    page = client.get(f"/lots/material-lots/{lot.id}")
    assert page.status_code == 200 and b'data-testid="supplier-suspended-warning"' in page.data
    refused = client.post(f"/lots/material-lots/{lot.id}/status", data={"status": "released", "reason": "passed"})
    assert refused.status_code == 403  # qa may not release at all
    assert db.session.get(MaterialLot, lot.id).status == "quarantine"


def test_a_signed_review_can_return_a_lot_with_a_scar(seeded, user):
    supplier = _supplier()
    _failing(supplier, 3, 17)
    bad = _inspect(supplier, TODAY, "fail")
    other = _supplier("SQ9", "Other Co")
    foreign = _inspect(other, TODAY)
    db.session.commit()
    review = supplier_quality.evaluate_supplier(supplier.id, now=T0, trigger="scheduled").review
    with pytest.raises(FormInvalid) as refused:
        tasks.complete_task(_ready(review.instance_id, "review").id,
                            {"assessment": "Contamination again in this quarter.", "supplier_status": "conditional",
                             "status_reason": "Tightened inspection.", "start_scar": True,
                             "scar_lot": foreign.lot_number}, user("qa"), now=T0, lang="en")
    assert "scar_lot" in refused.value.errors
    db.session.rollback()
    _decide(review.instance_id, user, status="conditional", start_scar=True, scar_lot=bad.lot_number)
    assert db.session.get(Supplier, supplier.id).status == "conditional"
    closed = db.session.get(SupplierReview, review.id)
    outcome = db.session.get(ProcessInstance, review.instance_id).data["outcome"]
    started = db.session.get(ProcessInstance, outcome["return_instance_id"])
    assert started.version.definition.key == "supplier_return" and closed.decided_status == "conditional"
    assert started.started_by.username == "head"


def test_after_a_review_the_same_crossing_starts_nothing_until_the_score_recovers(seeded, user):
    supplier = _supplier()
    _failing(supplier, 3, 17, TODAY - timedelta(days=300))  # alert
    db.session.commit()
    review = supplier_quality.evaluate_supplier(supplier.id, now=T0, trigger="scheduled").review
    _decide(review.instance_id, user, status="conditional")
    assert not supplier_quality.evaluate_supplier(supplier.id, now=T0 + timedelta(days=1), trigger="scheduled").started
    # The bad inspections leave the window: good again; later a new drop is a new crossing.
    recovered = supplier_quality.evaluate_supplier(supplier.id, now=T0 + timedelta(days=70), trigger="scheduled")
    assert recovered.evaluation.band in ("good", "no_data")
    _failing(supplier, 3, 17, TODAY + timedelta(days=80))
    db.session.commit()
    again = supplier_quality.evaluate_supplier(supplier.id, now=T0 + timedelta(days=81), trigger="scheduled")
    assert again.started and len(_reviews(supplier)) == 2


def test_the_scheduled_run_scores_once_per_period(seeded, app):
    app.config["SUPPLIER_SCORE_HOURS"] = 24
    supplier = _supplier()
    _failing(supplier, 0, 3)
    db.session.commit()
    assert supplier_quality.scheduled_run(T0) == 1
    assert supplier_quality.scheduled_run(T0 + timedelta(hours=1)) == 0
    assert supplier_quality.scheduled_run(T0 + timedelta(hours=24)) == 1
    assert db.session.scalar(db.select(db.func.count()).select_from(SupplierEvaluation)) == 2


def test_a_review_by_hand_is_refused_while_one_is_open_and_needs_qa(seeded, user):
    supplier = _supplier()
    db.session.commit()
    with pytest.raises(PermissionDenied):
        supplier_quality.request_review(supplier.id, user("prod"), "suspended", "Audit finding 12.")
    review = supplier_quality.request_review(supplier.id, user("qa"), "suspended", "Audit finding 12: no CoA.",
                                             now=T0)
    assert review.trigger == "manual" and review.proposed_status == "suspended"
    with pytest.raises(Conflict):
        supplier_quality.request_review(supplier.id, user("qa"), "conditional", "Another reason.")


# --- pages, export, API, dashboard ------------------------------------------------------------------------------------

def _scored_plant() -> tuple[Supplier, Supplier, Supplier]:
    good = _supplier("SQ-A", "Alpha Resin")
    bad = _supplier("SQ-B", "=cmd|' /C calc'!A0")  # a formula-like name is defused in exports
    empty = _supplier("SQ-C", "Gamma Tubes", status="conditional")
    _failing(good, 0, 5, TODAY - timedelta(days=40))
    _failing(bad, 3, 17, TODAY - timedelta(days=40))
    db.session.commit()
    supplier_quality.evaluate_all(T0 - timedelta(days=35))
    _failing(good, 1, 4, TODAY - timedelta(days=2))  # 10 % -> 80 - good, trend down
    db.session.commit()
    supplier_quality.evaluate_all(T0)
    return good, bad, empty


def test_the_list_exports_as_csv_and_xlsx(seeded, client):
    good, bad, empty = _scored_plant()
    login(client, "head")  # English
    page = client.get("/suppliers/")
    assert page.status_code == 200 and b'data-testid="asl"' in page.data and b"SQ-A" in page.data
    filtered = client.get("/suppliers/?band=alert")
    assert b"SQ-B" in filtered.data and b'data-supplier="SQ-A"' not in filtered.data
    assert client.get("/suppliers/?band=evil").status_code == 400
    assert b'data-testid="asl-empty"' in client.get("/suppliers/?q=nothing-like-this").data

    csv_answer = client.get("/suppliers/export.csv")
    assert csv_answer.status_code == 200 and csv_answer.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(csv_answer.data.decode("utf-8-sig"))))
    assert rows[0][:5] == ["Code", "Supplier", "Status", "Score", "Band"]
    by_code = {row[0]: row for row in rows[1:]}
    assert by_code["SQ-A"][3] == "80.0" and by_code["SQ-A"][5] == "-20.0"
    assert by_code["SQ-B"][1].startswith("'=") and by_code["SQ-B"][4] == "below the alert threshold"
    assert by_code["SQ-C"][3] == "" and by_code["SQ-C"][4] == "not enough data"

    xlsx = client.get("/suppliers/export.xlsx?status=approved")
    assert xlsx.status_code == 200
    sheet = load_workbook(io.BytesIO(xlsx.data)).active
    values = list(sheet.iter_rows(values_only=True))
    assert values[0][0] == "Code" and len(values) == 3  # header + the two approved suppliers
    row_b = next(v for v in values[1:] if v[0] == "SQ-B")
    assert row_b[3] == 70 and row_b[8] == 3 and row_b[13].startswith("#")  # its open review


def test_the_supplier_page_charts_the_score_in_both_languages(seeded, client):
    good, bad, empty = _scored_plant()
    login(client, "qa")
    page = client.get(f"/suppliers/{bad.id}")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert 'data-supplier-chart="score-chart-data"' in text and '"alert": 80.0' in text and '"limit": 60.0' in text
    assert 'data-testid="reviews"' in text and "js/supplier_chart.js" in text
    blank = client.get(f"/suppliers/{empty.id}").get_data(as_text=True)
    assert 'data-testid="not-enough-data"' in blank and 'data-testid="chart-empty"' in blank
    assert client.get("/suppliers/99999").status_code == 404
    client.get("/language/zh_CN")
    zh = client.get(f"/suppliers/{bad.id}").get_data(as_text=True)
    assert "得分" in zh and "低于预警阈值" in zh
    assert "合格供应商名录" in client.get("/suppliers/").get_data(as_text=True)
    # A review by hand from the page: refused without a reason (422), started with one.
    refused = client.post(f"/suppliers/{good.id}/review", data={"proposed_status": "suspended", "reason": ""})
    assert refused.status_code == 422
    started = client.post(f"/suppliers/{good.id}/review", data={"proposed_status": "suspended",
                                                                "reason": "Audit finding: no CoA."})
    assert started.status_code == 302 and len(_reviews(good)) == 1


def test_the_dashboard_counts_suppliers_by_score(seeded, client):
    _scored_plant()
    login(client, "qa")
    text = client.get("/dashboard/").get_data(as_text=True)
    assert 'data-tile="suppliers"' in text or 'id="tile-suppliers"' in text or "Suppliers by quality score" in text
    assert "/suppliers/?band=alert" in text


@pytest.fixture
def auth(seeded):
    tokens: dict[str, str] = {}

    def headers(username: str) -> dict[str, str]:
        if username not in tokens:
            tokens[username] = users.issue_token(username)
        return {"Authorization": f"Bearer {tokens[username]}"}

    return headers


@pytest.mark.parametrize("query", ["band=evil", "status=gone", "page=0", "per_page=0", "per_page=101",
                                   "page=99999999999999999999", "q=" + "x" * 101, "per_page=abc"])
def test_hostile_list_queries_answer_422(client, auth, query):
    answer = client.get(f"/api/v1/supplier-quality?{query}", headers=auth("qa"))
    assert answer.status_code == 422, answer.get_json()
    assert answer.get_json()["error"]


def test_the_api_lists_scores_and_refuses_bad_requests(client, auth):
    good, bad, empty = _scored_plant()
    answer = client.get("/api/v1/supplier-quality?band=alert", headers=auth("auditor"))
    assert answer.status_code == 200
    body = answer.get_json()
    assert body["total"] == 1 and body["items"][0]["code"] == "SQ-B" and body["items"][0]["score"] == 70.0
    assert body["items"][0]["figures"]["failed"] == 3 and body["items"][0]["open_review_instance_id"]
    detail = client.get(f"/api/v1/supplier-quality/{good.id}?days=90", headers=auth("qa")).get_json()
    assert [e["score"] for e in detail["history"]] == [100.0, 80.0] and detail["alert_threshold"] == 80.0
    for url in (f"/api/v1/supplier-quality/{good.id}?days=0", f"/api/v1/supplier-quality/{good.id}?days=99999"):
        assert client.get(url, headers=auth("qa")).status_code == 422
    assert client.get("/api/v1/supplier-quality/99999", headers=auth("qa")).status_code == 404
    assert client.get("/api/v1/supplier-quality/9999999999999", headers=auth("qa")).status_code == 404
    assert client.post(f"/api/v1/supplier-quality/{good.id}/evaluate", headers=auth("auditor")).status_code == 403
    assert client.post(f"/api/v1/supplier-quality/{good.id}/evaluate", headers=auth("prod")).status_code == 403
    scored = client.post(f"/api/v1/supplier-quality/{good.id}/evaluate", headers=auth("qa"))
    assert scored.status_code == 201 and scored.get_json()["evaluation"]["band"] == "good"
    for payload in ({"proposed_status": "banned", "reason": "Because."}, {"proposed_status": "suspended"},
                    {"proposed_status": "suspended", "reason": "x"}, {"proposed_status": ["suspended"],
                                                                      "reason": "Audit finding."},
                    {"proposed_status": "suspended", "reason": "r" * 2001}):
        refused = client.post(f"/api/v1/supplier-quality/{good.id}/reviews", headers=auth("qa"), json=payload)
        assert refused.status_code == 422, payload
    assert client.post(f"/api/v1/supplier-quality/{bad.id}/reviews", headers=auth("qa"),
                       json={"proposed_status": "suspended", "reason": "Audit finding."}).status_code == 409
    made = client.post(f"/api/v1/supplier-quality/{good.id}/reviews", headers=auth("qa"),
                       json={"proposed_status": "conditional", "reason": "Audit finding 7."})
    assert made.status_code == 201 and made.get_json()["trigger"] == "manual"
    assert db.session.get(Supplier, good.id).status == "approved"  # nothing changes before the signed decision


def test_the_review_steps_read_in_both_languages(seeded, client, user):
    supplier = _supplier()
    _failing(supplier, 3, 17)
    db.session.commit()
    review = supplier_quality.evaluate_supplier(supplier.id, now=T0, trigger="scheduled").review
    task = _ready(review.instance_id, "review")
    login(client, "qa")  # Chinese
    zh = client.get(f"/tasks/{task.id}").get_data(as_text=True)
    assert "评审供应商并建议其状态" in zh and "供应商绩效评估" in zh and "有条件合格" in zh
    client.get("/language/en")
    en = client.get(f"/tasks/{task.id}").get_data(as_text=True)
    assert "Review the supplier and propose its status" in en and "Approved-supplier status" in en
    tasks.complete_task(task.id, {"assessment": "Three failed lots this year; tightened inspection.",
                                  "supplier_status": "conditional", "status_reason": "15 % nonconforming."},
                        user("qa"), now=T0, lang="en")
    client.post("/logout")
    login(client, "head")
    approve = client.get(f"/tasks/{_ready(review.instance_id, 'approve').id}").get_data(as_text=True)
    assert "Approve the supplier status" in approve and 'type="password"' in approve


def test_the_command_line_scores_every_supplier(seeded, runner):
    supplier = _supplier()
    _failing(supplier, 3, 17)
    db.session.commit()
    result = runner.invoke(args=["suppliers", "score", "--now", T0.isoformat()])
    assert result.exit_code == 0, result.output
    assert "1 supplier(s) scored; 1 review(s) started: #" in result.output
    again = runner.invoke(args=["suppliers", "score", "--now", (T0 + timedelta(hours=1)).isoformat()])
    assert "1 supplier(s) scored; 0 review(s) started." in again.output
    assert runner.invoke(args=["suppliers", "score", "--now", "yesterday"]).exit_code == 1


def test_a_cancelled_review_leaves_the_crossing_to_review_again(seeded, user):
    from app.services.workflow import instances
    supplier = _supplier()
    _failing(supplier, 3, 17)
    db.session.commit()
    first = supplier_quality.evaluate_supplier(supplier.id, now=T0, trigger="scheduled").review
    instances.cancel_instance(first.instance_id, user("admin"), "Started in error during a data clean-up.")
    again = supplier_quality.evaluate_supplier(supplier.id, now=T0 + timedelta(hours=1), trigger="scheduled")
    assert again.started and again.review.id != first.id and len(_reviews(supplier)) == 2


def test_the_api_refuses_to_release_a_suspended_suppliers_lot(client, auth):
    supplier = _supplier(status="suspended")
    lot = _inspect(supplier, TODAY)
    db.session.commit()
    answer = client.post(f"/api/v1/material-lots/{lot.id}/status", headers=auth("releaser"),
                         json={"status": "released", "reason": "Incoming inspection passed."})
    assert answer.status_code == 409 and "suspended" in answer.get_json()["message"]
    held = client.post(f"/api/v1/material-lots/{lot.id}/status", headers=auth("releaser"),
                       json={"status": "hold", "reason": "Supplier suspended."})
    assert held.status_code == 200  # other moves stay possible


def test_a_second_scheduler_in_the_same_period_scores_nothing_twice(seeded):
    supplier = _supplier()
    _failing(supplier, 0, 3)
    db.session.commit()
    supplier_quality.evaluate_all(T0, once_per_period=True)
    # Another scheduler that read "due" before the first one wrote its rows.
    second = supplier_quality.evaluate_all(T0 + timedelta(minutes=5), once_per_period=True)
    assert [o.note for o in second] == ["already_scored"]
    assert db.session.scalar(db.select(db.func.count()).select_from(SupplierEvaluation)) == 1

"""Lot status rules and their audit trail, the expiry job, near-expiry warnings, release checks, and the CAPA a
failed final inspection opens."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from app.exceptions import Conflict, FormInvalid, QualiflowError
from app.extensions import db
from app.models import (
    AuditEvent,
    Inspection,
    InstanceLot,
    MaterialLot,
    ProcessInstance,
    Product,
    ProductLot,
    Supplier,
    Task,
)
from app.models.lots import LOT_STATUSES
from app.models.sterilization import SterilizationBatch
from app.services import demo, users
from app.services.lots import imports, lots
from app.services.workflow import instances
from tests.conftest import T0
from tests.integration.services.scenarios import count

TODAY = T0.date()
DAY = timedelta(days=1)
GTIN = "06901234567892"
MODELS = {"product": ProductLot, "material": MaterialLot}


@pytest.fixture
def make_lot(app):
    """Create and commit a product lot of one catheter product (or a resin lot with kind="material")."""
    product, supplier = Product(name="Catheter", gtin=GTIN), Supplier(code="S1", name="Resin Co")
    db.session.add_all([product, supplier])
    db.session.commit()

    def make(lot_number: str = "L1", status: str = "quarantine", kind: str = "product", **fields):
        if kind == "material":
            lot = MaterialLot(supplier=supplier, material="resin", lot_number=lot_number, status=status, **fields)
        else:
            lot = ProductLot(**{"product": product, "lot_number": lot_number, "quantity": 100, "status": status,
                                **fields})
        db.session.add(lot)
        db.session.commit()
        return lot
    return make


def status_events(kind: str = "product") -> list[AuditEvent]:
    return list(db.session.scalars(select(AuditEvent).where(
        AuditEvent.action == "lot.status_changed", AuditEvent.object_type == f"{kind}_lot").order_by(AuditEvent.id)))


def status_of(kind: str, lot_id: int) -> str:
    db.session.expire_all()
    return db.session.get(MODELS[kind], lot_id).status


# --- status changes -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("kind", "start", "target", "username"), [
    ("product", "quarantine", "released", "releaser"),
    ("product", "quarantine", "released", "admin"),
    ("product", "quarantine", "hold", "qa"),
    ("product", "released", "recalled", "head"),
    ("product", "hold", "released", "releaser"),
    ("product", "recalled", "quarantine", "qa"),
    ("product", "expired", "scrapped", "qa"),
    ("material", "quarantine", "released", "releaser"),
    ("material", "released", "hold", "qa"),
])
def test_an_allowed_change_moves_the_lot_and_is_audited_with_reason_and_actor(
        make_lot, user, kind, start, target, username):
    lot = make_lot(status=start, kind=kind)
    lots.set_status(kind, lot.id, target, "  Batch record reviewed  ", user(username), now=T0)
    assert status_of(kind, lot.id) == target
    assert [(e.object_id, e.old, e.new, e.reason, e.actor_id, e.actor_name, e.at) for e in status_events(kind)] == [
        (str(lot.id), {"status": start}, {"status": target, "lot_number": "L1"}, "Batch record reviewed",
         user(username).id, user(username).full_name, T0)]


@pytest.mark.parametrize(("start", "target", "username", "reason", "status"), [
    ("quarantine", "released", "qa", "ok", 403),  # QA staff may hold a lot, not release it
    ("quarantine", "released", "head", "ok", 403),  # so may the head of QA
    ("quarantine", "hold", "prod", "ok", 403),  # production is not quality assurance
    ("quarantine", "hold", "auditor", "ok", 403),  # auditors are read-only
    ("recalled", "released", "releaser", "ok", 409),
    ("expired", "released", "releaser", "ok", 409),
    ("expired", "quarantine", "qa", "ok", 409),
    *(("scrapped", target, "admin", "ok", 409) for target in LOT_STATUSES if target != "scrapped"),
    ("quarantine", "hold", "qa", "  ", 400),  # a reason is required
    ("quarantine", "destroyed", "qa", "ok", 400),  # an unknown status
    ("quarantine", "returned", "admin", "ok", 400),  # only material goes back to a supplier
])
def test_a_refused_change_leaves_the_lot_and_the_audit_trail_alone(make_lot, user, start, target, username, reason,
                                                                  status):
    lot = make_lot(status=start)
    with pytest.raises(QualiflowError) as refused:
        lots.set_status("product", lot.id, target, reason, user(username), now=T0)
    assert refused.value.status == status
    assert status_of("product", lot.id) == start
    assert status_events() == []


def test_setting_the_status_a_lot_already_has_records_nothing(make_lot, user):
    lot = make_lot(status="released")
    assert lots.set_status("product", lot.id, "released", "again", user("releaser"), now=T0).status == "released"
    assert status_events() == []


@pytest.mark.parametrize(("kind", "lot_id"), [("product", 999), ("widget", 1)])
def test_changing_an_unknown_lot_is_not_found(make_lot, user, kind, lot_id):
    make_lot()
    with pytest.raises(QualiflowError) as refused:
        lots.set_status(kind, lot_id, "hold", "ok", user("qa"), now=T0)
    assert refused.value.status == 404


# --- expiry ---------------------------------------------------------------------------------------------------------

def test_the_expiry_job_locks_lots_past_their_date_once(make_lot, user):
    past = {"P-quarantine": make_lot("P-quarantine", expiry_on=TODAY - DAY),
            "P-hold": make_lot("P-hold", status="hold", expiry_on=TODAY - 400 * DAY),
            "M-past": make_lot("M-past", kind="material", expiry_on=TODAY - DAY)}
    untouched = {"P-today": make_lot("P-today", status="released", expiry_on=TODAY),  # usable to the end of the day
                 "P-scrapped": make_lot("P-scrapped", status="scrapped", expiry_on=TODAY - DAY),
                 "P-expired": make_lot("P-expired", status="expired", expiry_on=TODAY - DAY),
                 "P-no-date": make_lot("P-no-date"),
                 "M-future": make_lot("M-future", kind="material", expiry_on=TODAY + DAY)}
    before = {name: lot.status for name, lot in untouched.items()}

    assert lots.expire_lots(now=T0) == 3
    assert lots.expire_lots(now=T0) == 0

    db.session.expire_all()
    assert {name: lot.status for name, lot in past.items()} == dict.fromkeys(past, "expired")
    assert {name: lot.status for name, lot in untouched.items()} == before
    events = status_events("product") + status_events("material")
    assert sorted((e.new["lot_number"], e.old["status"], e.actor_id, e.actor_name, e.at) for e in events) == [
        ("M-past", "quarantine", None, "system", T0), ("P-hold", "hold", None, "system", T0),
        ("P-quarantine", "quarantine", None, "system", T0)]
    assert {e.reason for e in events if e.new["lot_number"] == "P-hold"} == {
        f"expiry date {(TODAY - 400 * DAY).isoformat()} passed"}


def test_the_expiry_job_follows_the_clock_it_is_given(make_lot, user):
    lot = make_lot(expiry_on=TODAY)
    assert lots.expire_lots(now=T0) == 0
    assert lots.expire_lots(now=T0 + DAY) == 1
    assert status_of("product", lot.id) == "expired"


@pytest.mark.parametrize(("days", "offset", "status", "near"), [
    (30, -1, "released", False),  # already past its date: the expiry job's business
    (30, 0, "released", True),
    (30, 30, "quarantine", True),
    (30, 31, "released", False),
    (30, 10, "recalled", True),
    (30, 10, "expired", False),
    (30, 10, "scrapped", False),
    (0, 0, "hold", True),
    (0, 1, "hold", False),
])
def test_near_expiry_covers_today_through_the_last_day_of_the_window(make_lot, days, offset, status, near):
    lot = make_lot(status=status, expiry_on=TODAY + offset * DAY)
    page = lots.near_expiry(TODAY, days)
    assert ([item.lot_number for item in page.items] == ["L1"]) is near
    assert lots.is_near_expiry(lot, TODAY, days) is near


def test_near_expiry_lists_the_soonest_first_and_pages(make_lot):
    for number, offset in (("C", 9), ("A", 3), ("B", 3), ("D", 1)):
        make_lot(number, expiry_on=TODAY + offset * DAY)
    assert [lot.lot_number for lot in lots.near_expiry(TODAY, 30).items] == ["D", "A", "B", "C"]
    second = lots.near_expiry(TODAY, 30, page=2, per_page=3)
    assert ([lot.lot_number for lot in second.items], second.total) == (["C"], 4)


# --- release checks ----------------------------------------------------------------------------------------------

COMPLETE = {"batch_record_complete": True, "labels_checked": True, "sterilization_batch": "ST-1",
            "expiry_on": TODAY + 365 * DAY, "inspections": [("final", "pass")]}


@pytest.mark.parametrize(("changes", "failed"), [
    pytest.param({}, [], id="complete"),
    pytest.param({"batch_record_complete": False}, ["batch_record_complete"], id="batch record open"),
    pytest.param({"inspections": []}, ["final_inspection_passed"], id="no inspection"),
    pytest.param({"inspections": [("in_process", "pass")]}, ["final_inspection_passed"], id="no final inspection"),
    pytest.param({"inspections": [("in_process", "fail"), ("final", "pass")]}, ["final_inspection_passed"],
                 id="an earlier inspection failed"),
    pytest.param({"sterile": True, "sterilization_batch": None}, ["sterilization_record"], id="sterile, no batch"),
    pytest.param({"sterile": True}, ["sterilization_record"], id="sterile, batch without a record"),
    pytest.param({"sterile": True, "sterilization_status": "pending"}, ["sterilization_record"],
                 id="sterile, batch pending"),
    pytest.param({"sterile": True, "sterilization_status": "failed"}, ["sterilization_record"],
                 id="sterile, batch failed"),
    pytest.param({"sterile": True, "sterilization_status": "released"}, [], id="sterile, batch released"),
    pytest.param({"labels_checked": False}, ["labels_udi"], id="labels not checked"),
    pytest.param({"gtin": None}, ["labels_udi"], id="product without GTIN"),
    pytest.param({"open_capa": True}, ["no_open_capa_or_deviation"], id="open CAPA"),
    pytest.param({"expiry_on": TODAY - DAY}, ["not_expired"], id="past expiry"),
    pytest.param({"expiry_on": TODAY}, [], id="expires today"),
    pytest.param({"status": "expired"}, ["not_expired"], id="expired status"),
    pytest.param({"batch_record_complete": False, "labels_checked": False, "expiry_on": TODAY - DAY},
                 ["batch_record_complete", "labels_udi", "not_expired"], id="three at once"),
])
def test_release_checks_list_exactly_the_failing_conditions(seeded, user, changes, failed):
    case = {**COMPLETE, **changes}
    product = Product(name="Catheter", gtin=case.pop("gtin", GTIN), sterile=case.pop("sterile", False))
    inspections, open_capa = case.pop("inspections"), case.pop("open_capa", False)
    sterilization_status = case.pop("sterilization_status", None)
    lot = ProductLot(product=product, lot_number="L1", quantity=10, **case)
    db.session.add(lot)
    if sterilization_status:
        db.session.add(SterilizationBatch(batch_number=case["sterilization_batch"], method="gamma",
                                          processed_on=TODAY - DAY, status=sterilization_status))
    db.session.add_all(Inspection(product_lot=lot, stage=stage, result=result, inspected_on=TODAY - DAY)
                       for stage, result in inspections)
    db.session.commit()
    if open_capa:
        capa = instances.start_instance("capa", user("qa"), title="Burr on hub", now=T0)
        lots.link_lots(capa.id, [lot.id], "subject")
        db.session.commit()

    report = lots.release_checks(lot, TODAY).as_dict()
    assert ([check["code"] for check in report["failed"]], report["releasable"]) == (failed, not failed)
    assert all(check["detail"] for check in report["failed"])
    assert len(report["checks"]) == 6


def test_the_capa_being_decided_does_not_block_its_own_lot(make_lot, user):
    lot = make_lot(batch_record_complete=True, labels_checked=True)
    db.session.add(Inspection(product_lot=lot, stage="final", result="pass", inspected_on=TODAY))
    capa = instances.start_instance("capa", user("qa"), title="Burr on hub", now=T0)
    lots.link_lots(capa.id, [lot.id, lot.id], "subject")
    db.session.commit()
    assert lots.release_checks(lot, TODAY).failed[0].detail == f"#{capa.id} Burr on hub"
    assert lots.release_checks(lot, TODAY, exclude_instance_id=capa.id).failed == []
    assert count(InstanceLot) == 1


# --- a failed final inspection opens a CAPA ----------------------------------------------------------------------

def inspection(stage: str = "final", result: str = "fail", **fields) -> dict:
    return {"stage": stage, "product_lot": "L1", "result": result, "inspected_on": "2026-11-20",
            "inspector": "Li Na", "results": "Burr on 3 of 50 hubs", **fields}


def test_a_failed_final_inspection_opens_a_capa_about_its_lot(make_lot, user):
    lot = make_lot()
    inspection_id = imports.create_record("inspections", inspection(), user("qa"), now=T0)

    record = db.session.get(Inspection, inspection_id)
    capa = db.session.get(ProcessInstance, record.capa_instance_id)
    assert (capa.version.definition.key, capa.status, capa.started_by.username, capa.started_at) == (
        "capa", "running", "qa", T0)
    assert {key: capa.data[key] for key in ("source", "lot_numbers", "inspection_id", "reported_on")} == {
        "source": "inspection", "lot_numbers": "L1", "inspection_id": inspection_id, "reported_on": "2026-11-20"}
    assert "Burr on 3 of 50 hubs" in capa.data["description"]
    links = db.session.execute(select(InstanceLot.instance_id, InstanceLot.product_lot_id, InstanceLot.role))
    assert [tuple(link) for link in links] == [(capa.id, lot.id, "subject")]
    assert db.session.scalars(select(Task.element_id).where(Task.instance_id == capa.id,
                                                            Task.state == "ready")).all() == ["describe_problem"]
    assert [(e.object_id, e.instance_id) for e in db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "inspection.capa_opened"))] == [(str(inspection_id), capa.id)]
    assert {"final_inspection_passed", "no_open_capa_or_deviation"} <= {
        check.code for check in lots.release_checks(lot, TODAY).failed}


@pytest.mark.parametrize("changes", [
    pytest.param({"result": "pass"}, id="passed final"),
    pytest.param({"stage": "in_process"}, id="failed in-process"),
    pytest.param({"stage": "incoming", "product_lot": "", "material": "resin", "material_lot": "M1"},
                 id="failed incoming of a material lot"),
    pytest.param({"product_lot": "", "material": "resin", "material_lot": "M1"}, id="failed final of a material lot"),
])
def test_other_inspections_open_no_capa(make_lot, user, changes):
    make_lot()
    make_lot("M1", kind="material")
    inspection_id = imports.create_record("inspections", inspection(**changes), user("qa"), now=T0)
    assert db.session.get(Inspection, inspection_id).capa_instance_id is None
    assert (count(ProcessInstance), count(InstanceLot)) == (0, 0)


@pytest.fixture
def people(app):
    """Demo users and groups, but no process deployed."""
    demo.seed_people()
    return users.get_by_username


def test_without_a_deployed_capa_a_failed_final_inspection_is_refused_and_nothing_is_written(make_lot, people):
    make_lot()
    events = count(AuditEvent)
    with pytest.raises(Conflict) as refused:
        imports.create_record("inspections", inspection(), people("qa"), now=T0)
    assert refused.value.status == 409
    assert (count(Inspection), count(ProcessInstance), count(InstanceLot), count(AuditEvent)) == (0, 0, 0, events)
    assert imports.create_record("inspections", inspection(result="pass"), people("qa"), now=T0)


def test_an_inspection_form_with_errors_saves_nothing(make_lot, user):
    make_lot()
    with pytest.raises(FormInvalid) as refused:
        imports.create_record("inspections", inspection(product_lot="L404", inspected_on="soon"), user("qa"),
                              lang="zh-CN", now=T0)
    assert refused.value.errors == {"inspected_on": ["不是日期（YYYY-MM-DD）"]}
    assert count(Inspection) == 0

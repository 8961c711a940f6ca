"""FEFO shipments: which lots are proposed and shipped, which are refused and why (English and Chinese), one
transaction per shipment, and QA's e-signed override of a shelf-life refusal."""
from __future__ import annotations

from datetime import timedelta

import pytest

from app.exceptions import Conflict, FormInvalid, PermissionDenied, SignatureRejected
from app.extensions import db
from app.models import AuditEvent, Shipment, ShipmentOrder, User
from app.services import demo
from app.services.lots import stock
from tests.conftest import T0
from tests.integration.stock.conftest import DAY, GTIN, level, put_lot


def request(quantity: int, customer: str = "HOSP-1", **extra) -> dict:
    return {"product": GTIN, "customer": customer, "quantity": quantity, "shipped_on": DAY.isoformat(), **extra}


# One lot X (10 units, at A-01) next to a good lot G expiring later (100 units, at A-02); ship 5 to a hospital
# that needs `minimum` days of shelf life. X is either picked first or refused with the reason shown.
CASES = [
    # status, days to expiry on the shipping day, customer minimum, expected: "picked" or the refusal code
    pytest.param("released", 300, 120, "picked", id="released-well-dated"),
    pytest.param("released", -1, 0, "expired", id="expiry-date-passed-status-not-yet"),
    pytest.param("expired", 300, 0, "expired", id="status-expired"),
    pytest.param("hold", 300, 0, "hold", id="on-hold"),
    pytest.param("recalled", 300, 0, "recalled", id="recalled"),
    pytest.param("quarantine", 300, 0, "quarantine", id="quarantined"),
    pytest.param("scrapped", 300, 0, "not_shippable", id="scrapped"),
    pytest.param("released", 119, 120, "shelf_life", id="one-day-below-customer-minimum"),
    pytest.param("released", 120, 120, "picked", id="exactly-at-customer-minimum"),
    pytest.param("released", 0, 0, "picked", id="expires-on-the-shipping-day-no-minimum"),
]

MESSAGES = {
    "expired": ("expired on", "过期"), "hold": ("on hold", "暂停"), "recalled": ("recalled", "召回"),
    "quarantine": ("quarantine", "待验"), "not_shippable": ("scrapped", "已报废"),
    "shelf_life": ("requires at least 120 days", "要求至少 120 天"),
}


@pytest.mark.parametrize(("status", "days", "minimum", "expected"), CASES)
def test_fefo_picks_or_refuses_each_lot_with_its_reason(depot, user, status, days, minimum, expected):
    depot["hospital"].min_shelf_life_days = minimum
    db.session.commit()
    put_lot(depot["product"], "X", 10, "A-01", status=status, expiry=days)
    put_lot(depot["product"], "G", 100, "A-02", expiry=500)

    proposal = stock.propose(request(5))
    if expected == "picked":
        assert [(p.lot.lot_number, p.level.location, p.quantity) for p in proposal.picks] == [("X", "A-01", 5)]
        assert proposal.refused == []
    else:
        assert [(p.lot.lot_number, p.quantity) for p in proposal.picks] == [("G", 5)]
        [refusal] = proposal.refused
        assert (refusal.lot.lot_number, refusal.location, refusal.code) == ("X", "A-01", expected)
        english, chinese = MESSAGES[expected]
        assert "Lot X at A-01" in refusal.text("en") and english in refusal.text("en")
        assert "批次 X（A-01）" in refusal.text("zh-CN") and chinese in refusal.text("zh-CN")

    order = stock.ship(request(5, document_no="DN-1"), user("qa"), now=T0)
    shipped_from = "X" if expected == "picked" else "G"
    assert [(line["lot_number"], line["quantity"]) for line in order.lines] == [(shipped_from, 5)]
    assert level(shipped_from, "A-01" if shipped_from == "X" else "A-02") == (5 if shipped_from == "X" else 95)
    assert [(s.product_lot.lot_number, s.quantity, s.document_no, s.order_id) for s in
            db.session.scalars(db.select(Shipment))] == [(shipped_from, 5, "DN-1", order.id)]


def test_first_expiry_first_out_across_warehouses_and_lots_without_expiry_last(depot, user):
    product = depot["product"]
    put_lot(product, "LATE", 10, "A-01", expiry=600)
    put_lot(product, "NONE", 10, "A-02", expiry=None)
    put_lot(product, "SOON", 10, "B-01", expiry=200)
    put_lot(product, "MID", 10, "A-02", expiry=400)
    proposal = stock.propose(request(35))
    assert [(p.lot.lot_number, p.quantity) for p in proposal.picks] == [
        ("SOON", 10), ("MID", 10), ("LATE", 10), ("NONE", 5)]
    only_a = stock.propose(request(15, warehouse="WH-A"))
    assert [(p.lot.lot_number, p.quantity) for p in only_a.picks] == [("MID", 10), ("LATE", 5)]


def test_a_shipment_spanning_two_lots_takes_the_rest_from_the_next_one(depot, user):
    put_lot(depot["product"], "FIRST", 3, "A-01", expiry=200)
    put_lot(depot["product"], "SECOND", 4, "B-01", expiry=300)
    order = stock.ship(request(5), user("qa"), now=T0)
    assert [(line["lot_number"], line["location"], line["quantity"]) for line in order.lines] == [
        ("FIRST", "A-01", 3), ("SECOND", "B-01", 2)]
    assert (level("FIRST", "A-01"), level("SECOND", "B-01")) == (0, 2)
    audit = db.session.scalar(db.select(AuditEvent).where(AuditEvent.action == "shipment.shipped"))
    assert audit.object_id == str(order.id) and audit.new["quantity"] == 5


def test_not_enough_shippable_stock_is_refused_naming_each_lot_and_nothing_is_written(depot, user):
    put_lot(depot["product"], "OK", 3, "A-01", expiry=300)
    put_lot(depot["product"], "HELD", 50, "A-02", status="hold", expiry=200)
    put_lot(depot["product"], "SHORT", 50, "B-01", expiry=100)  # below the hospital's 120 days
    with pytest.raises(Conflict) as refused:
        stock.ship(request(5), user("qa"), now=T0)
    assert "2 of 5 cannot be shipped" in refused.value.message
    assert "Lot HELD at A-02 is on hold" in refused.value.message
    assert "Lot SHORT at B-01 has 100 days of shelf life left" in refused.value.message
    chinese = stock.propose(request(5), "zh-CN").problem("zh-CN")
    assert "无法发货 2（共需 5）" in chinese and "批次 HELD（A-02）处于暂停状态" in chinese
    db.session.rollback()
    assert level("OK", "A-01") == 3
    assert db.session.scalar(db.select(db.func.count()).select_from(Shipment)) == 0
    assert db.session.scalar(db.select(db.func.count()).select_from(ShipmentOrder)) == 0


def test_the_site_default_minimum_applies_to_a_customer_without_one(depot, app):
    app.config["FEFO_MIN_SHELF_LIFE_DAYS"] = 90
    put_lot(depot["product"], "D89", 10, "A-01", expiry=89)
    put_lot(depot["product"], "D90", 10, "A-02", expiry=90)
    proposal = stock.propose(request(5, customer="DIST-1"))
    assert proposal.min_days == 90 and [p.lot.lot_number for p in proposal.picks] == ["D90"]
    assert [(r.lot.lot_number, r.code) for r in proposal.refused] == [("D89", "shelf_life")]


@pytest.mark.parametrize(("values", "field"), [
    ({"quantity": 0}, "quantity"), ({"quantity": -3}, "quantity"), ({"quantity": "ten"}, "quantity"),
    ({"quantity": 2**40}, "quantity"), ({"quantity": True}, "quantity"), ({"quantity": 1.5}, "quantity"),
    ({"product": "12345"}, "product"), ({"product": "06901234567899"}, "product"),
    ({"product": "04012345000008"}, "product"), ({"customer": "NOPE"}, "customer"),
    ({"customer": ["HOSP-1"]}, "customer"), ({"shipped_on": "2026-13-45"}, "shipped_on"),
    ({"warehouse": "WH-Z"}, "warehouse"), ({"document_no": "x" * 61}, "document_no"),
])
def test_bad_values_are_refused_per_field_and_nothing_is_shipped(depot, user, values, field):
    put_lot(depot["product"], "OK", 30, "A-01")
    with pytest.raises(FormInvalid) as refused:
        stock.ship({**request(5), **values}, user("qa"), now=T0)
    assert field in refused.value.errors
    db.session.rollback()
    assert level("OK", "A-01") == 30 and db.session.scalar(db.select(db.func.count()).select_from(Shipment)) == 0


# --- the override -------------------------------------------------------------------------------------------------

@pytest.fixture
def short_dated(depot):
    put_lot(depot["product"], "SHORT", 20, "A-01", expiry=60)  # the hospital needs 120 days
    put_lot(depot["product"], "HELD", 20, "A-02", status="hold", expiry=300)
    return depot


def test_qa_overrides_a_shelf_life_refusal_with_reason_and_e_signature(short_dated, user):
    order = stock.ship(request(15), user("qa"), overrides=["SHORT"], reason="Hospital agreed in writing (mail 21.11.)",
                       password=demo.DEMO_PASSWORD, now=T0)
    assert [(line["lot_number"], line["quantity"], line["overridden"]) for line in order.lines] == [
        ("SHORT", 15, "shelf_life")]
    assert level("SHORT", "A-01") == 5
    assert order.override_lots == ["SHORT"] and order.override_reason.startswith("Hospital agreed")
    assert order.override_printed_name == "Li Na" and order.override_meaning == "shipment override approved"
    assert order.override_signed_at == T0 and len(order.override_hash) == 64
    event = db.session.scalar(db.select(AuditEvent).where(AuditEvent.action == "shipment.override_signed"))
    assert event.reason.startswith("Hospital agreed") and event.new["lots"] == ["SHORT"]
    assert "has 60 days of shelf life left" in event.new["refusals"][0]


def test_an_override_with_a_wrong_password_is_refused_and_counted_nothing_shipped(short_dated, user):
    with pytest.raises(SignatureRejected, match="^The password is wrong; nothing was shipped.$"):
        stock.ship(request(15), user("qa"), overrides=["SHORT"], reason="Agreed", password="wrong", now=T0)
    db.session.rollback()
    assert level("SHORT", "A-01") == 20
    assert db.session.scalar(db.select(db.func.count()).select_from(ShipmentOrder)) == 0
    assert db.session.scalar(db.select(User.failed_logins).where(User.username == "qa")) == 1


@pytest.mark.parametrize(("who", "overrides", "reason", "password", "error", "field"), [
    ("prod", ["SHORT"], "Agreed", demo.DEMO_PASSWORD, PermissionDenied, None),
    ("qa", ["HELD"], "Agreed", demo.DEMO_PASSWORD, FormInvalid, "overrides"),
    ("qa", ["NOT-A-LOT"], "Agreed", demo.DEMO_PASSWORD, FormInvalid, "overrides"),
    ("qa", ["SHORT"], "  ", demo.DEMO_PASSWORD, FormInvalid, "reason"),
    ("qa", ["SHORT"], "Agreed", None, FormInvalid, "password"),
])
def test_an_override_is_refused_without_qa_reason_password_or_an_overridable_refusal(
        short_dated, user, who, overrides, reason, password, error, field):
    with pytest.raises(error) as refused:
        stock.ship(request(15), user(who), overrides=overrides, reason=reason, password=password, now=T0)
    if field:
        assert field in refused.value.errors
    if overrides == ["HELD"]:
        assert "Lot HELD cannot be shipped by an override" in refused.value.errors["overrides"][0]
    db.session.rollback()
    assert level("SHORT", "A-01") == 20 and level("HELD", "A-02") == 20


@pytest.mark.parametrize(("offset", "problem"), [
    (-31, "at most 30 days back (from 2026-10-24)"), (366, "at most 365 days ahead (until 2027-11-23)"),
    (-30, None), (365, None),
])
def test_the_shipping_day_is_at_most_30_days_back_and_a_year_ahead(depot, offset, problem):
    put_lot(depot["product"], "OK", 30, "A-01", expiry=800)
    values = request(5, shipped_on=(DAY + timedelta(days=offset)).isoformat())
    if problem is None:
        assert [p.lot.lot_number for p in stock.propose(values, now=T0).picks] == ["OK"]
        return
    with pytest.raises(FormInvalid) as refused:
        stock.propose(values, now=T0)
    assert problem in refused.value.errors["shipped_on"][0]
    with pytest.raises(FormInvalid) as chinese:
        stock.propose(values, "zh-CN", now=T0)
    assert "发货日期最多可" in chinese.value.errors["shipped_on"][0]


def test_a_late_entered_shipment_cannot_take_goods_that_expired_since(depot):
    put_lot(depot["product"], "LAPSED", 10, "A-01", expiry=-2)  # expired two days ago, the job has not run
    put_lot(depot["product"], "GOOD", 10, "A-02", expiry=400)
    proposal = stock.propose(request(5, shipped_on=(DAY - timedelta(days=5)).isoformat()), now=T0)
    assert [p.lot.lot_number for p in proposal.picks] == ["GOOD"]
    assert [(r.lot.lot_number, r.code) for r in proposal.refused] == [("LAPSED", "expired")]


def test_two_shipments_racing_for_the_last_units_ship_once_and_never_oversell(depot, app):
    from tests.integration.services.scenarios import run_together
    put_lot(depot["product"], "LAST", 8, "A-01", expiry=300)
    qa, head = User.query.filter_by(username="qa").one().id, User.query.filter_by(username="head").one().id
    db.session.commit()

    def ship_as(user_id: int, document: str):
        return lambda: stock.ship(request(5, document_no=document), db.session.get(User, user_id), now=T0).id

    results = run_together(app, [ship_as(qa, "DN-A"), ship_as(head, "DN-B")])
    shipped = [r for r in results if isinstance(r, int)]
    refused = [r for r in results if isinstance(r, Conflict)]
    assert len(shipped) == 1 and len(refused) == 1, results
    assert "2 of 5 cannot be shipped: only 3" in refused[0].message
    db.session.expire_all()
    assert level("LAST", "A-01") == 3
    assert db.session.scalar(db.select(db.func.sum(Shipment.quantity))) == 5

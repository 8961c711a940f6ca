"""The stock movement ledger: every change of a stock level (stock file import, a record entered alone, FEFO shipment,
signed scrap) writes one movement in the same transaction, so the ledger adds up to the levels; a refused shipment
writes nothing; the rows cannot be changed or removed; the lot page and the API show them, newest first."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from app.exceptions import Conflict, FormInvalid
from app.extensions import db
from app.models import ImportJob, ProductLot, ShipmentOrder, StockLevel, StockMovement
from app.services import demo
from app.services.lots import imports, ledger, stock
from app.services.workflow import instances
from tests.conftest import T0, login
from tests.integration.stock.conftest import DAY, GTIN
from tests.integration.stock.test_scrap import complete


def new_lot(depot, number: str, expiry_days: int | None, status: str = "released") -> ProductLot:
    lot = ProductLot(product_id=depot["product"].id, lot_number=number, quantity=100, status=status,
                     expiry_on=DAY + timedelta(days=expiry_days) if expiry_days is not None else None,
                     manufactured_on=DAY - timedelta(days=30))
    db.session.add(lot)
    db.session.commit()
    return lot


def import_stock(user, *rows: str) -> ImportJob:
    content = ("product_lot,location,quantity\n" + "\n".join(rows) + "\n").encode()
    job = imports.run_import(imports.start_import("stock", "count.csv", content, user("prod"), now=T0).id, now=T0)
    assert job.status == "succeeded", job.errors
    return job


def ship(user, quantity: int, who: str = "qa", **extra):
    return stock.ship({"product": GTIN, "customer": "HOSP-1", "quantity": quantity, "shipped_on": DAY.isoformat(),
                       **extra}, user(who), now=T0)


def movement_count() -> int:
    return db.session.scalar(db.select(db.func.count()).select_from(StockMovement))


def ledger_matches_levels() -> dict:
    """Per (lot, location): the sum of the ledger's changes, its last balance and the stock level agree."""
    db.session.expire_all()
    sums: dict[tuple, int] = {}
    last: dict[tuple, int] = {}
    for m in db.session.scalars(db.select(StockMovement).order_by(StockMovement.id)):
        key = (m.product_lot_id, m.location)
        sums[key] = sums.get(key, 0) + m.change
        last[key] = m.balance
    levels = {(lot, location): quantity for lot, location, quantity in db.session.execute(
        db.select(StockLevel.product_lot_id, StockLevel.location, StockLevel.quantity))}
    assert {key for key, quantity in levels.items() if quantity} <= set(sums)
    for key, total in sums.items():
        assert total == last[key] == levels.get(key, 0), (key, total, last[key], levels.get(key))
    return levels


def rows_of(lot: ProductLot, location: str) -> list[tuple]:
    return [(m.kind, m.change, m.balance) for m in db.session.scalars(
        db.select(StockMovement).where(StockMovement.product_lot_id == lot.id, StockMovement.location == location)
        .order_by(StockMovement.id))]


def test_the_ledger_adds_up_to_the_levels_after_imports_shipments_refusals_and_a_scrap(depot, user):
    soon, later = new_lot(depot, "SOON", 200), new_lot(depot, "LATER", 300)
    first = import_stock(user, "SOON,A-01,10", "LATER,B-01,20", "SOON,A-02,5")
    entered = imports.create_record("stock", {"product_lot": "LATER", "location": "A-02", "quantity": "7"},
                                    user("prod"), now=T0)
    assert entered
    order = ship(user, 12, document_no="DN-1")  # SOON: 10 at A-01, 2 at A-02
    ledger_matches_levels()
    before = movement_count()

    # Refused shipments write nothing: not enough stock that may be shipped (409), a bad value (422).
    with pytest.raises(Conflict):
        ship(user, 500)
    db.session.rollback()
    with pytest.raises(FormInvalid):
        ship(user, 5, customer="NOPE")
    db.session.rollback()
    assert movement_count() == before

    second = import_stock(user, "LATER,B-01,18")  # a count finds 2 missing
    scrap = instances.start_instance("scrap", user("qa"), {}, title="Scrap SOON", now=T0)
    complete(scrap.id, "request", {"lot_number": "SOON", "location": "A-02", "quantity": 3, "method": "incineration",
                                   "witness": "Zhou Jie", "reason": "Damaged cartons"}, user("qa"))
    complete(scrap.id, "approve", {"approval": "approve"}, user("head"), demo.DEMO_PASSWORD)
    order2 = ship(user, 4, who="head")  # LATER: the 7 at A-02 come first (location order), 4 of them

    levels = ledger_matches_levels()
    assert levels == {(soon.id, "A-01"): 0, (soon.id, "A-02"): 0, (later.id, "B-01"): 18, (later.id, "A-02"): 3}
    assert rows_of(soon, "A-01") == [("import", 10, 10), ("shipment", -10, 0)]
    assert rows_of(soon, "A-02") == [("import", 5, 5), ("shipment", -2, 3), ("scrap", -3, 0)]
    assert rows_of(later, "B-01") == [("import", 20, 20), ("import", -2, 18)]
    assert rows_of(later, "A-02") == [("entry", 7, 7), ("shipment", -4, 3)]
    moves = {(m.product_lot_id, m.location, m.change): m for m in db.session.scalars(db.select(StockMovement))}
    shipped = moves[(soon.id, "A-01", -10)]
    assert (shipped.order_id, shipped.actor_name, shipped.at) == (order.id, "Li Na", T0)
    assert moves[(later.id, "A-02", -4)].order_id == order2.id
    assert moves[(later.id, "B-01", 20)].import_job_id == first.id
    assert moves[(later.id, "B-01", -2)].import_job_id == second.id
    assert moves[(later.id, "A-02", 7)].import_job_id is None and moves[(later.id, "A-02", 7)].actor_name == "Wang Wei"
    scrapped = moves[(soon.id, "A-02", -3)]
    assert (scrapped.instance_id, scrapped.actor_name, scrapped.actor_id) == (scrap.id, "Helen Head",
                                                                              user("head").id)


def test_a_refused_import_and_a_count_that_changes_nothing_write_no_movement(depot, user):
    new_lot(depot, "L1", 200)
    import_stock(user, "L1,A-01,10")
    refused = imports.run_import(imports.start_import("stock", "count.csv", b"product_lot,location,quantity\n"
                                                      b"L1,A-01,4\nNOPE,A-01,3\n", user("prod"), now=T0).id, now=T0)
    assert refused.status == "failed"
    import_stock(user, "L1,A-01,10")  # counted again, the same
    assert [(m.kind, m.change, m.balance) for m in db.session.scalars(db.select(StockMovement))] == [
        ("import", 10, 10)]
    ledger_matches_levels()


def test_the_ledger_cannot_be_changed_or_removed(depot, user):
    new_lot(depot, "L1", 200)
    import_stock(user, "L1,A-01,10")
    for statement in ("UPDATE stock_movements SET change = 100", "DELETE FROM stock_movements"):
        with pytest.raises(DBAPIError, match="append-only"):
            db.session.execute(text(statement))
        db.session.rollback()
    if db.engine.dialect.name == "postgresql":
        with pytest.raises(DBAPIError, match="append-only"):
            db.session.execute(text("TRUNCATE stock_movements CASCADE"))
        db.session.rollback()
    assert [m.change for m in db.session.scalars(db.select(StockMovement))] == [10]


@pytest.fixture
def moved(depot, user):
    new_lot(depot, "SOON", 200)
    new_lot(depot, "LATER", 300)
    import_stock(user, "SOON,A-01,10", "LATER,B-01,20")
    ship(user, 4, document_no="DN-1")
    ship(user, 3, document_no="DN-2")
    return depot


def test_api_lists_movements_newest_first_by_lot_and_location(moved, client, auth):
    answer = client.get("/api/v1/stock/movements?lot=SOON", headers=auth("auditor"))
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    assert body["total"] == 3
    assert [(m["kind"], m["change"], m["balance"]) for m in body["items"]] == [
        ("shipment", -3, 3), ("shipment", -4, 6), ("import", 10, 10)]
    newest = body["items"][0]
    order = db.session.scalar(db.select(ShipmentOrder).where(ShipmentOrder.document_no == "DN-2"))
    assert (newest["lot_number"], newest["location"], newest["order_id"], newest["actor"]) == (
        "SOON", "A-01", order.id, "Li Na")
    assert body["items"][2]["import_job_id"] is not None and newest["at"].startswith("2026-11-23T09:00")
    second = client.get("/api/v1/stock/movements?lot=SOON&location=A-01&per_page=2&page=2",
                        headers=auth("auditor")).get_json()
    assert (second["page"], second["pages"], [m["change"] for m in second["items"]]) == (2, 2, [10])
    everything = client.get("/api/v1/stock/movements", headers=auth("auditor")).get_json()
    assert everything["total"] == 4
    assert client.get("/api/v1/stock/movements?location=B-01", headers=auth("auditor")).get_json()["total"] == 1
    assert client.get("/api/v1/stock/movements?lot=SOON&location=B-01",
                      headers=auth("auditor")).get_json()["items"] == []


@pytest.mark.parametrize(("query", "status"), [
    ("lot=NOPE", 404), ("page=0", 422), ("page=abc", 422), ("page=99999999999", 422), ("per_page=201", 422),
    ("per_page=0", 422), ("lot=" + "x" * 61, 422), ("location=" + "y" * 121, 422),
])
def test_api_refuses_bad_movement_queries(moved, client, auth, query, status):
    answer = client.get(f"/api/v1/stock/movements?{query}", headers=auth("auditor"))
    assert answer.status_code == status, (query, answer.get_json())
    assert answer.get_json()["message"]


def test_api_movements_need_a_token(moved, client):
    assert client.get("/api/v1/stock/movements").status_code == 401


def test_the_lot_page_shows_the_movements_paginated_in_english_and_chinese(moved, client, monkeypatch):
    monkeypatch.setattr(ledger, "PER_PAGE", 2)
    soon = db.session.scalar(db.select(ProductLot).where(ProductLot.lot_number == "SOON"))
    login(client, "auditor")
    client.get("/language/en")
    listed = client.get("/stock/?location=A-01").get_data(as_text=True)
    assert f'data-testid="movements-{soon.id}-A-01"' in listed
    page = client.get(f"/lots/product-lots/{soon.id}?location=A-01").get_data(as_text=True)
    assert 'data-testid="movements"' in page and "at A-01" in page
    assert page.count('data-testid="movement"') == 2
    assert ">-3<" in page and ">-4<" in page and ">+10<" not in page
    assert "shipment (first expiry, first out)" in page and "Shipment order #" in page
    assert 'data-testid="movements-next"' in page
    last = client.get(f"/lots/product-lots/{soon.id}?location=A-01&moves=2").get_data(as_text=True)
    assert last.count('data-testid="movement"') == 1 and ">+10<" in last and "stock import" in last
    assert "Import #" in last
    client.get("/language/zh_CN")
    chinese = client.get(f"/lots/product-lots/{soon.id}").get_data(as_text=True)
    assert "库存变动" in chinese and "发货（近效期先出）" in chinese and "结存" in chinese
    elsewhere = client.get(f"/lots/product-lots/{soon.id}?location=B-01").get_data(as_text=True)
    assert 'data-testid="movements-empty"' in elsewhere and "没有库存变动记录。" in elsewhere


def test_demo_stock_is_in_the_ledger(runner, app):
    result = runner.invoke(args=["demo", "load"])
    assert result.exit_code == 0, result.output
    levels = ledger_matches_levels()
    assert any(levels.values())
    assert set(db.session.scalars(db.select(StockMovement.kind).distinct())) == {"demo"}
    verified = runner.invoke(args=["audit", "verify"])  # the demo's records all agree with their evidence
    assert verified.exit_code == 0, verified.output


@pytest.mark.parametrize(("statement", "problem"), [
    ("UPDATE stock_levels SET quantity = 99 WHERE location = 'B-01'",
     "stock of lot LATER at 'B-01': 99 held, but the ledger's last movement left 20"),
    ("INSERT INTO stock_levels (product_lot_id, location, quantity) "
     "SELECT id, 'A-02', 40 FROM product_lots WHERE lot_number = 'LATER'",
     "stock of lot LATER at 'A-02': 40 held, but no stock movement records it"),
    ("DELETE FROM stock_levels WHERE location = 'A-01'",
     "stock of lot SOON at 'A-01': the ledger holds 10, but there is no stock level"),
], ids=["level raised", "level without movements", "level removed"])
def test_audit_verify_names_a_stock_level_edited_in_the_database(depot, user, runner, statement, problem):
    new_lot(depot, "SOON", 200), new_lot(depot, "LATER", 300)
    import_stock(user, "SOON,A-01,10", "LATER,B-01,20")
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 0, result.output
    assert "completed steps and stock match" in result.output

    db.session.execute(text(statement))  # stock levels carry no guard: the ledger is their evidence
    db.session.commit()

    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 1
    assert f"Error: {problem}" in result.output

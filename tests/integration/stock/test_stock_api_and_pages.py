"""FEFO shipping through the API, the file import and the web page: what each answers, hostile values refused with
4xx and nothing written, refusals in the caller's language, and the QA override with its e-signature."""
from __future__ import annotations

import pytest

from app.extensions import db
from app.models import ImportJob, ProductLot, Shipment, ShipmentOrder
from app.services import demo
from app.services.lots import import_rules, imports
from tests.conftest import T0, login
from tests.integration.stock.conftest import DAY, GTIN, level, put_lot

API = "/api/v1/shipment-orders"


@pytest.fixture
def shelf(depot):
    put_lot(depot["product"], "SOON", 10, "A-01", expiry=200)
    put_lot(depot["product"], "LATER", 20, "B-01", expiry=300)
    put_lot(depot["product"], "SHORT", 15, "A-02", expiry=60)  # below the hospital's 120 days
    put_lot(depot["product"], "HELD", 15, "A-02", status="hold", expiry=100)
    return depot


def body(**extra) -> dict:
    return {"product": GTIN, "customer": "HOSP-1", "quantity": 12, "shipped_on": DAY.isoformat(), **extra}


def nothing_written() -> bool:
    return (level("SOON", "A-01"), level("LATER", "B-01"), level("SHORT", "A-02")) == (10, 20, 15) and \
        db.session.scalar(db.select(db.func.count()).select_from(Shipment)) == 0 and \
        db.session.scalar(db.select(db.func.count()).select_from(ShipmentOrder)) == 0


def test_api_proposes_then_ships_and_reads_the_order_back(shelf, client, auth):
    proposal = client.post(f"{API}/proposal", json=body(), headers=auth("qa"))
    assert proposal.status_code == 200
    answer = proposal.get_json()
    assert [(p["lot_number"], p["quantity"]) for p in answer["picks"]] == [("SOON", 10), ("LATER", 2)]
    assert {r["lot_number"]: r["code"] for r in answer["refused"]} == {"SHORT": "shelf_life", "HELD": "hold"}
    assert answer["complete"] and nothing_written()
    shipped = client.post(API, json=body(document_no="DN-7"), headers=auth("qa"))
    assert shipped.status_code == 201, shipped.get_json()
    order = shipped.get_json()
    assert [(line["lot_number"], line["location"], line["quantity"]) for line in order["lines"]] == [
        ("SOON", "A-01", 10), ("LATER", "B-01", 2)]
    assert order["override_hash"] is None and "password" not in order
    assert (level("SOON", "A-01"), level("LATER", "B-01")) == (0, 18)
    again = client.get(f"{API}/{order['id']}", headers=auth("auditor")).get_json()
    assert again["document_no"] == "DN-7" and again["customer"] == "HOSP-1"
    assert client.get(f"{API}/999999", headers=auth("qa")).status_code == 404


@pytest.mark.parametrize("values", [
    {"quantity": "12; DROP TABLE stock_levels"}, {"quantity": -1}, {"quantity": 0}, {"quantity": 2**63},
    {"quantity": None}, {"quantity": [12]}, {"quantity": {"n": 12}}, {"quantity": True}, {"quantity": "1e400"},
    {"quantity": "NaN"}, {"product": 6901234567899}, {"product": "x" * 10_000}, {"product": None},
    {"customer": None}, {"customer": "' OR 1=1 --"}, {"customer": {"code": "HOSP-1"}}, {"shipped_on": "0000-00-00"},
    {"shipped_on": "9999-12-31"}, {"shipped_on": "23/11/2026"}, {"warehouse": "WH-A\u0000"}, {"document_no": "D" * 61},
    {"overrides": "SHORT"}, {"overrides": ["x" * 61]}, {"overrides": ["SHORT"] * 101}, {"reason": "r" * 2001},
    {"password": 12345}, {"unknown_field": 1},
])
def test_hostile_api_values_get_4xx_and_nothing_is_written(shelf, client, auth, values):
    response = client.post(API, json=body(**values), headers=auth("qa"))
    assert 400 <= response.status_code < 500 and response.status_code != 404, (values, response.status_code)
    assert response.get_json()["message"]
    db.session.rollback()
    assert nothing_written()


def test_api_refusals_in_the_requests_language(shelf, client, auth):
    english = client.post(API, json=body(quantity=40), headers=auth("qa"))
    assert english.status_code == 409
    assert english.get_json()["message"].startswith("10 of 40 cannot be shipped")
    assert "Lot HELD at A-02 is on hold" in english.get_json()["message"]
    chinese = client.post(API, json=body(quantity=40), headers={**auth("qa"), "Accept-Language": "zh-CN"})
    assert chinese.status_code == 409
    assert "无法发货 10（共需 40）" in chinese.get_json()["message"]
    assert "批次 SHORT（A-02）在 2026-11-23 的剩余效期为 60 天" in chinese.get_json()["message"]
    bad = client.post(API, json=body(customer="NOPE"), headers={**auth("qa"), "Accept-Language": "zh-CN"})
    assert bad.status_code == 422 and "没有此编码对应的客户。" in str(bad.get_json())
    proposal = client.post(f"{API}/proposal", json=body(), headers={**auth("qa"), "Accept-Language": "zh-CN"})
    refused = {r["lot_number"]: r for r in proposal.get_json()["refused"]}
    assert refused["HELD"]["message"] == refused["HELD"]["message_zh"] == \
        "批次 HELD（A-02）处于暂停状态：解除暂停前不得发货。"
    assert refused["HELD"]["message_en"].startswith("Lot HELD at A-02 is on hold")
    assert refused["SHORT"]["overridable"] and not refused["HELD"]["overridable"]
    db.session.rollback()
    assert nothing_written()


def test_api_override_needs_qa_and_the_right_password(shelf, client, auth):
    override = body(quantity=40, overrides=["SHORT"], reason="Customer agreed to 60 days (mail of 20.11.)")
    assert client.post(API, json={**override, "password": "wrong"}, headers=auth("qa")).status_code == 401
    assert client.post(API, json={**override, "password": demo.DEMO_PASSWORD}, headers=auth("prod")).status_code \
        == 403
    assert client.post(API, json={**override, "password": demo.DEMO_PASSWORD},
                       headers=auth("auditor")).status_code == 403
    held = client.post(API, json={**override, "overrides": ["HELD"], "password": demo.DEMO_PASSWORD},
                       headers=auth("qa"))
    assert held.status_code == 422 and "Lot HELD cannot be shipped by an override" in str(held.get_json())
    db.session.rollback()
    assert nothing_written()
    shipped = client.post(API, json={**override, "password": demo.DEMO_PASSWORD}, headers=auth("qa"))
    assert shipped.status_code == 201, shipped.get_json()
    order = shipped.get_json()
    assert [(line["lot_number"], line["quantity"], line["overridden"]) for line in order["lines"]] == [
        ("SHORT", 15, "shelf_life"), ("SOON", 10, None), ("LATER", 15, None)]
    assert order["override_printed_name"] == "Li Na" and order["override_meaning"] == "shipment override approved"
    assert order["override_reason"].startswith("Customer agreed") and len(order["override_hash"]) == 64


def _csv(*rows: str) -> bytes:
    return ("gtin,customer_code,quantity,shipped_on,document_no\n" + "\n".join(rows) + "\n").encode()


def test_the_fefo_import_ships_row_after_row_or_refuses_the_file(shelf, user):
    refused = imports.run_import(imports.start_import("fefo_shipments", "ship.csv", _csv(
        f"{GTIN},HOSP-1,25,{DAY.isoformat()},DN-1", f"{GTIN},HOSP-1,6,{DAY.isoformat()},DN-2"), user("qa"), now=T0).id,
        now=T0)
    assert refused.status == "failed"
    [error] = refused.errors
    assert (error["line"], error["column"], error["code"]) == (3, "quantity", "fefo_short")  # 25 + 6 > 30 shippable
    assert "1 of 6 cannot be picked" in import_rules.reason_text(error, "en")
    assert "Lot HELD at A-02 is on hold" in import_rules.reason_text(error, "en")
    assert "批次 SHORT（A-02）" in import_rules.reason_text(error, "zh-CN")
    db.session.expire_all()
    assert nothing_written()
    job = imports.run_import(imports.start_import("fefo_shipments", "ship.csv", _csv(
        f"{GTIN},HOSP-1,25,{DAY.isoformat()},DN-1", f"{GTIN},DIST-1,5,{DAY.isoformat()},DN-2"), user("qa"), now=T0).id,
        now=T0)
    assert (job.status, job.imported_rows) == ("succeeded", 2), job.errors
    orders = list(db.session.scalars(db.select(ShipmentOrder).order_by(ShipmentOrder.id)))
    assert [(o.document_no, [(line["lot_number"], line["quantity"]) for line in o.lines]) for o in orders] == [
        ("DN-1", [("SOON", 10), ("LATER", 15)]), ("DN-2", [("LATER", 5)])]
    assert level("LATER", "B-01") == 0
    assert db.session.scalar(db.select(db.func.count()).select_from(ImportJob)) == 2


def _page(client, **form) -> tuple[int, str]:
    response = client.post("/stock/ship", data=form)
    return response.status_code, response.get_data(as_text=True)


def test_the_ship_page_proposes_ships_and_shows_the_order(shelf, client):
    login(client, "qa")
    client.get("/language/en")
    status, html = _page(client, action="propose", **body())
    assert status == 200 and 'data-testid="picks"' in html
    assert 'data-testid="refusal-hold"' in html and "Lot HELD at A-02 is on hold" in html
    assert 'name="overrides" value="SHORT"' in html and 'name="overrides" value="HELD"' not in html
    assert nothing_written()
    status, html = _page(client, action="ship", **body(document_no="DN-9"))
    assert status == 201 and 'data-testid="shipped"' in html and "DN-9" in html
    orders = client.get("/stock/orders").get_data(as_text=True)
    assert "DN-9" in orders and 'data-testid="orders"' in orders
    soon = db.session.scalar(db.select(ProductLot).where(ProductLot.lot_number == "SOON"))
    lot_page = client.get(f"/lots/product-lots/{soon.id}").get_data(as_text=True)
    assert 'data-testid="lot-orders"' in lot_page and "Shipment order #" in lot_page


def test_the_ship_page_in_chinese_with_an_override_and_a_wrong_password(shelf, client):
    login(client, "qa")
    client.get("/language/zh_CN")
    status, html = _page(client, action="propose", **body(quantity=40))
    assert status == 200 and "无法发货 10（共需 40）" in html and "仍然发货" in html
    status, html = _page(client, action="ship", overrides="SHORT", reason="客户书面同意", password="wrong",
                         **body(quantity=40))
    assert status == 401 and 'data-testid="ship-message"' in html and "密码错误；未发货。" in html
    db.session.rollback()
    assert nothing_written()
    status, html = _page(client, action="ship", overrides="SHORT", reason="客户书面同意",
                         password=demo.DEMO_PASSWORD, **body(quantity=40))
    assert status == 201 and "例外放行（QA 电子签名）" in html and "Li Na" in html
    status, html = _page(client, action="ship", **body(quantity="abc"))
    assert status == 422 and "不是整数" in html


def test_a_production_user_sees_no_override_and_an_empty_stock_list_says_so(depot, client):
    put_lot(depot["product"], "SHORT", 15, "A-02", expiry=60)
    login(client, "prod")
    client.get("/language/en")
    status, html = _page(client, action="propose", **body(quantity=5))
    assert status == 200 and 'data-testid="override"' not in html and "ship anyway" not in html
    empty = client.get("/stock/?warehouse=WH-B").get_data(as_text=True)
    assert 'data-testid="stock-empty"' in empty


def test_the_fefo_import_names_a_bad_value_on_its_column_in_both_languages(shelf, user):
    job = imports.run_import(imports.start_import("fefo_shipments", "ship.csv", _csv(
        f"{GTIN},HOSP-1,2,2026-01-01,DN-1", f"{GTIN},NOPE,2,{DAY.isoformat()},DN-2"), user("qa"), now=T0).id, now=T0)
    assert job.status == "failed"
    errors = {(e["line"], e["column"]): e for e in job.errors}
    assert "at most 30 days back" in import_rules.reason_text(errors[(2, "shipped_on")], "en")
    assert "发货日期最多可追溯 30 天" in import_rules.reason_text(errors[(2, "shipped_on")], "zh-CN")
    assert import_rules.reason_text(errors[(3, "customer_code")], "zh-CN") == "没有此编码对应的客户。"
    db.session.expire_all()
    assert nothing_written()

"""Stock's refusals are gettext messages with their Chinese in messages.po: every refusal reads in Chinese, lot
statuses are named as the pages name them, and refusals that were English only now follow the page's language."""
from __future__ import annotations

import pytest

from app.extensions import db
from app.models import ProductLot
from app.services import demo
from app.services.lots import stock
from tests.conftest import login
from tests.integration.stock.conftest import DAY, GTIN, put_lot

PARAMS = {"lot": "L1", "location": "A-01", "expiry": "2026-01-01", "status": "scrapped", "remaining": 3,
          "shipped_on": "2026-11-23", "customer": "HOSP-1", "minimum": 120}


@pytest.mark.parametrize("code", list(stock.REFUSALS))
def test_every_refusal_reads_in_chinese_and_in_english(app, code):
    with app.test_request_context():
        chinese = stock.refusal_text(code, PARAMS, "zh-CN")
        english = stock.refusal_text(code, PARAMS, "en")
    assert chinese.startswith("批次 L1（A-01）") and "Lot" not in chinese, chinese
    assert english.startswith("Lot L1 at A-01"), english


@pytest.mark.parametrize(("status", "english", "chinese"), [
    ("scrapped", "Lot X at A-01 is scrapped: it cannot be shipped.", "批次 X（A-01）状态为已报废：不得发货。"),
    ("returned", "Lot X at A-01 is returned: it cannot be shipped.", "批次 X（A-01）状态为已退回供应商：不得发货。"),
])
def test_a_lot_status_is_named_in_the_refusals_language(depot, status, english, chinese):
    put_lot(depot["product"], "X", 10, "A-01", status=status)
    proposal = stock.propose({"product": GTIN, "customer": "HOSP-1", "quantity": 5, "shipped_on": DAY.isoformat()})
    [refusal] = proposal.refused
    assert (refusal.text("en"), refusal.text("zh-CN")) == (english, chinese)


def test_refusals_once_in_english_only_follow_the_callers_language(depot, client, auth):
    put_lot(depot["product"], "SHORT", 15, "A-02", expiry=60)  # below the hospital's 120 days
    body = {"product": GTIN, "customer": "HOSP-1", "quantity": 5, "shipped_on": DAY.isoformat(),
            "overrides": ["SHORT"], "reason": "Agreed", "password": demo.DEMO_PASSWORD}
    chinese = {**auth("prod"), "Accept-Language": "zh-CN"}
    refused = client.post("/api/v1/shipment-orders", json=body, headers=chinese)
    assert refused.status_code == 403
    assert refused.get_json()["message"] == "只有质量保证人员可以对被拒绝的批次例外放行。"
    english = client.post("/api/v1/shipment-orders", json=body, headers=auth("prod"))
    assert english.get_json()["message"] == "Only quality assurance can override a refused lot."
    bad = client.post("/api/v1/shipment-orders", json={**body, "customer": "NOPE", "overrides": []}, headers=chinese)
    assert bad.status_code == 422 and bad.get_json()["message"] == "发货单有错误；未发货。"

    lot = db.session.scalar(db.select(ProductLot).where(ProductLot.lot_number == "SHORT"))
    login(client, "qa")
    client.get("/language/zh_CN")
    page = client.post("/stock/scrap", data={"lot_id": lot.id, "location": "B-01", "next": "/stock/"},
                       follow_redirects=True).get_data(as_text=True)
    assert "批次 SHORT 在 B-01 没有库存。" in page

"""Stock by warehouse on the pages and the dashboard, and the scheduled expiry lock: near-expiry and expired stock per
warehouse, tiles that link to the list they count, and the job that locks expired lots with an audit event each."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import url_for

from app.extensions import db
from app.models import AuditEvent, ProductLot
from app.services.lots import lots, stock
from tests.conftest import T0, login
from tests.integration.stock.conftest import DAY, GTIN, put_lot


def _stocked(depot, base=DAY) -> None:
    """Stock in both warehouses and at a location of none, dated from `base` (the pages and the dashboard count
    from the real date: their tests pass today's)."""
    product = depot["product"]

    def day(offset: int):
        return base + timedelta(days=offset)
    put_lot(product, "NEAR-A", 7, "A-01", expiry=day(30))     # WH-A, near expiry
    put_lot(product, "NEAR-A", 3, "A-02")                     # the same lot at a second location of WH-A
    put_lot(product, "GONE-A", 4, "A-02", expiry=day(-5))     # WH-A, expired (date passed, job not run yet)
    put_lot(product, "NEAR-B", 6, "B-01", expiry=day(60))     # WH-B, near expiry
    put_lot(product, "FAR-B", 50, "B-01", expiry=day(400))    # WH-B, well dated
    put_lot(product, "LOOSE", 2, "Quarantine cage", status="quarantine", expiry=day(-1))  # no warehouse, expired


def _real_today():
    return datetime.now(UTC).date()  # the tests' plant time zone is UTC


def test_expiry_by_warehouse_counts_lots_and_units(depot):
    _stocked(depot)
    rows = {row.code: row for row in stock.expiry_by_warehouse(DAY, 90)}
    assert (rows["WH-A"].near_lots, rows["WH-A"].near_quantity, rows["WH-A"].expired_lots,
            rows["WH-A"].expired_quantity) == (1, 10, 1, 4)
    assert (rows["WH-B"].near_lots, rows["WH-B"].near_quantity, rows["WH-B"].expired_lots) == (1, 6, 0)
    assert (rows[""].near_lots, rows[""].expired_lots, rows[""].expired_quantity) == (0, 1, 2)
    assert list(rows) == ["WH-A", "WH-B", ""]  # no-warehouse stock last


def test_dashboard_tiles_link_to_the_stock_list_they_count(depot, client, app):
    _stocked(depot, _real_today())
    login(client, "head")
    client.get("/language/en")
    page = client.get("/dashboard/").get_data(as_text=True)
    tile = page.split('data-testid="tile-stock_expiry"')[1].split("</section>")[0]
    assert "Near-expiry and expired stock by warehouse" in tile and "WH-A Main warehouse" in tile
    assert "10 / 4" in tile  # units near expiry / expired in WH-A
    with app.test_request_context():
        near_a = url_for("stock.index", warehouse="WH-A", expiry="near")
        expired_loose = url_for("stock.index", warehouse="", expiry="expired")
    assert f'href="{near_a.replace("&", "&amp;")}"' in tile
    listed = client.get(near_a).get_data(as_text=True)
    assert listed.count('data-testid="stock-row"') == 2  # NEAR-A at A-01 and at A-02
    assert ">NEAR-A<" in listed and "NEAR-B" not in listed and "GONE-A" not in listed
    loose = client.get(expired_loose).get_data(as_text=True)
    assert loose.count('data-testid="stock-row"') == 1 and ">LOOSE<" in loose and "Quarantine cage" in loose
    whole = client.get("/stock/").get_data(as_text=True)
    assert whole.count('data-testid="stock-row"') == 6 and 'data-testid="warehouses"' in whole
    # Soonest expiry first: the expired lots lead the list.
    assert whole.index(">GONE-A<") < whole.index(">NEAR-A<") < whole.index(">FAR-B<")


def test_stock_api_lists_levels_by_warehouse_with_status_and_expiry(depot, client, auth):
    _stocked(depot, _real_today())
    answer = client.get("/api/v1/stock/levels?warehouse=WH-B", headers=auth("qa")).get_json()
    assert answer["total"] == 2
    assert [(i["lot_number"], i["warehouse"], i["location"], i["status"], i["quantity"]) for i in answer["items"]] == [
        ("NEAR-B", "WH-B", "B-01", "released", 6), ("FAR-B", "WH-B", "B-01", "released", 50)]
    expiry = client.get("/api/v1/stock/expiry", headers=auth("qa")).get_json()
    assert {row["warehouse"]: row["expired_lots"] for row in expiry["warehouses"]} == {"WH-A": 1, "WH-B": 0, None: 1}
    assert client.get("/api/v1/stock/levels?expiry=soon", headers=auth("qa")).status_code == 422
    assert client.get("/api/v1/stock/levels?per_page=100000", headers=auth("qa")).status_code == 422
    warehouses = client.get("/api/v1/warehouses", headers=auth("qa")).get_json()
    assert [(w["code"], w["locations"], w["quantity"]) for w in warehouses] == [("WH-A", 2, 14), ("WH-B", 1, 56)]


def test_the_expiry_job_locks_expired_stock_with_an_audit_event_per_lot(depot):
    _stocked(depot)
    put_lot(depot["product"], "TOMORROW", 5, "A-01", expiry=1)
    now = datetime.combine(DAY, datetime.min.time(), tzinfo=UTC) + timedelta(hours=1)
    assert lots.expire_lots(now=now) == 2  # GONE-A and LOOSE; TOMORROW still good today
    statuses = dict(db.session.execute(db.select(ProductLot.lot_number, ProductLot.status)).all())
    assert statuses["GONE-A"] == statuses["LOOSE"] == "expired" and statuses["TOMORROW"] == "released"
    events = list(db.session.scalars(db.select(AuditEvent).where(AuditEvent.action == "lot.status_changed")
                                     .order_by(AuditEvent.id)))
    assert [(e.new["lot_number"], e.new["status"], e.new.get("stock_locked")) for e in events] == [
        ("GONE-A", "expired", [{"location": "A-02", "quantity": 4}]),
        ("LOOSE", "expired", [{"location": "Quarantine cage", "quantity": 2}])]
    assert all(e.actor_id is None and e.at == now and e.reason.startswith("expiry date") for e in events)
    # Two days later, with the job's clock: TOMORROW is expired too, the others are not audited again.
    assert lots.expire_lots(now=now + timedelta(days=2)) == 1
    assert db.session.scalar(db.select(db.func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "lot.status_changed")) == 3
    # Locked: an expired lot is never proposed, and only scrapping it is allowed.
    proposal = stock.propose({"product": GTIN, "customer": "HOSP-1", "quantity": 1,
                              "shipped_on": (DAY + timedelta(days=2)).isoformat()})
    assert ("TOMORROW", "expired") in [(r.lot.lot_number, r.code) for r in proposal.refused]
    assert lots.TRANSITIONS["expired"] == ("scrapped", "returned")


def test_the_scheduler_registers_the_expiry_job():
    import inspect

    from app import scheduler
    source = inspect.getsource(scheduler.start_scheduler)
    assert 'args=[app, "expiry"]' in source and "EXPIRY_CHECK_MINUTES" in source
    assert T0.tzinfo is UTC

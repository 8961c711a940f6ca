"""A depot for the stock tests: one product, a hospital customer, two warehouses with locations, and a helper that
puts a lot with stock at a location. The shipping day is T0's date (2026-11-23)."""
from __future__ import annotations

from datetime import date, timedelta

import pytest

from app.extensions import db
from app.models import Customer, Product, ProductLot, StockLevel, StorageLocation, Warehouse
from tests.conftest import T0
from tests.integration.api.conftest import auth  # noqa: F401 - API tokens of demo users

DAY = T0.date()
GTIN = "06901234567892"


@pytest.fixture
def depot(seeded, monkeypatch):
    """The stock rules read the plant's date from T0 (shipments may name a day at most 30 days back)."""
    from app.services.lots import stock
    monkeypatch.setattr(stock, "utcnow", lambda: T0)
    product = Product(name="Insulin pen needle kit", gtin=GTIN)
    hospital = Customer(code="HOSP-1", name="City Hospital", kind="hospital", min_shelf_life_days=120)
    plain = Customer(code="DIST-1", name="North Distributor", kind="distributor")  # the site default applies
    wh_a, wh_b = Warehouse(code="WH-A", name="Main warehouse"), Warehouse(code="WH-B", name="Cold store")
    db.session.add_all([product, hospital, plain, wh_a, wh_b])
    db.session.flush()
    db.session.add_all([StorageLocation(code="A-01", warehouse_id=wh_a.id, name="Rack 1"),
                        StorageLocation(code="A-02", warehouse_id=wh_a.id),
                        StorageLocation(code="B-01", warehouse_id=wh_b.id)])
    db.session.commit()
    return {"product": product, "hospital": hospital, "plain": plain, "WH-A": wh_a, "WH-B": wh_b}


def put_lot(product: Product, number: str, quantity: int, location: str = "A-01", status: str = "released",
            expiry: date | int | None = 400) -> ProductLot:
    """A lot with `quantity` in stock at `location`; expiry as a date or as days after the shipping day."""
    expiry_on = DAY + timedelta(days=expiry) if isinstance(expiry, int) else expiry
    lot = db.session.scalar(db.select(ProductLot).where(ProductLot.lot_number == number))
    if lot is None:
        lot = ProductLot(product_id=product.id, lot_number=number, quantity=quantity, status=status,
                         expiry_on=expiry_on, manufactured_on=DAY - timedelta(days=30))
        db.session.add(lot)
        db.session.flush()
    db.session.add(StockLevel(product_lot_id=lot.id, location=location, quantity=quantity))
    db.session.commit()
    return lot


def level(number: str, location: str) -> int:
    return db.session.scalar(db.select(StockLevel.quantity).join(ProductLot).where(
        ProductLot.lot_number == number, StockLevel.location == location))

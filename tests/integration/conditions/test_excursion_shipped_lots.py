"""An excursion holds the lots that went through it but have left since: a lot shipped from the cold room on the
excursion's day or later is held with where it went; one shipped the day before, or from another place, is not."""
from __future__ import annotations

from datetime import date

from app.extensions import db
from app.models import Customer, Excursion, ProcessInstance, ProductLot, ShipmentOrder
from tests.integration.conditions.conftest import ROOM, logger_csv, run_file


def _ship(lot: ProductLot, customer: Customer, location: str, day: date, quantity: int) -> None:
    db.session.add(ShipmentOrder(product_id=lot.product_id, customer_id=customer.id, quantity=quantity,
                                 shipped_on=day, min_shelf_life_days=0,
                                 lines=[{"lot_number": lot.lot_number, "location": location, "quantity": quantity}]))


def test_lots_shipped_from_the_room_during_or_after_the_excursion_are_held_too(cold_room, user):
    product = cold_room["C1"].product
    gone = {number: ProductLot(product=product, lot_number=number, quantity=100, status="released")
            for number in ("S-DURING", "S-BEFORE", "S-ELSEWHERE")}
    hospital = Customer(code="HOSP-9", name="City Hospital", kind="hospital")
    db.session.add_all([*gone.values(), hospital])
    db.session.flush()
    # The readings start 2026-11-20 00:00 UTC; the excursion runs 02:00-02:45 UTC (10:00 in the plant, UTC+8).
    _ship(gone["S-DURING"], hospital, ROOM, date(2026, 11, 20), 60)
    _ship(gone["S-DURING"], hospital, ROOM, date(2026, 11, 21), 40)
    _ship(gone["S-BEFORE"], hospital, ROOM, date(2026, 11, 19), 100)
    _ship(gone["S-ELSEWHERE"], hospital, "Dry store", date(2026, 11, 20), 100)
    db.session.commit()

    job = run_file(logger_csv([5.0] * 24 + [9.6] * 9 + [5.0] * 24), user)
    assert job.status == "succeeded", job.errors

    excursion = db.session.scalar(db.select(Excursion))
    assert excursion.lots == ["C1", "C2", "S-DURING"]
    db.session.expire_all()
    assert {number: db.session.get(ProductLot, lot.id).status for number, lot in gone.items()} == {
        "S-DURING": "hold", "S-BEFORE": "released", "S-ELSEWHERE": "released"}
    assessed = db.session.get(ProcessInstance, excursion.instance_id).data["lots"]
    shipped = next(entry for entry in assessed if entry["lot_number"] == "S-DURING")
    assert shipped["quantity"] == 100
    assert shipped["location"] == f"{ROOM}, shipped 2026-11-20 to City Hospital"

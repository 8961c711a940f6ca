"""A cold room (2-8 °C, 30 min tolerance) holding two lots of a refrigerated product, its logger, and helpers that
write logger files and take the deviation assessment's steps."""
from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest

from app.extensions import db
from app.models import InstanceLot, Product, ProductLot, Sensor, StockLevel, Task
from app.services import demo
from app.services.lots import imports
from app.services.workflow import tasks
from tests.conftest import T0

ROOM = "Cold room A"
START = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)


@pytest.fixture
def cold_room(seeded):
    """Product REF-1 (2-8 °C, 10-80 %RH, 30 min); lots C1 (released) and C2 (quarantine) in the cold room, C3 of
    the same product elsewhere; temperature logger T1 and humidity logger H1 there (5 min)."""
    product = Product(name="Insulin pen needle kit", gtin="06901234567892", storage_temp_min=2, storage_temp_max=8,
                      storage_rh_min=10, storage_rh_max=80, excursion_tolerance_minutes=30)
    lots = {number: ProductLot(product=product, lot_number=number, quantity=500, status=status)
            for number, status in (("C1", "released"), ("C2", "quarantine"), ("C3", "released"))}
    db.session.add_all([product, *lots.values()])
    db.session.flush()
    db.session.add_all([StockLevel(product_lot_id=lots["C1"].id, location=ROOM, quantity=300),
                        StockLevel(product_lot_id=lots["C2"].id, location=ROOM, quantity=200),
                        StockLevel(product_lot_id=lots["C3"].id, location="Dry store", quantity=500),
                        Sensor(code="T1", name="Cold room A, rack 2", quantity="temperature", location=ROOM,
                               interval_seconds=300),
                        Sensor(code="H1", name="Cold room A, humidity", quantity="humidity", location=ROOM,
                               interval_seconds=300)])
    db.session.commit()
    return lots


def logger_csv(values: list[float], sensor: str = "T1", start: datetime = START, step_minutes: int = 5,
               unit: str = "C") -> bytes:
    """A logger export: one reading per step from start (ISO with Z), in the given unit."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["Timestamp", "Sensor", "Value", "Unit"])
    for index, value in enumerate(values):
        moment = start + timedelta(minutes=step_minutes * index)
        writer.writerow([moment.strftime("%Y-%m-%dT%H:%M:%SZ"), sensor, value, unit])
    return buffer.getvalue().encode()


def run_file(content: bytes, user, filename: str = "logger.csv", who: str = "qa", now: datetime = T0):
    job = imports.start_import("readings", filename, content, user(who), now=now)
    return imports.run_import(job.id, now=now)


def ready(instance_id: int, element: str) -> Task | None:
    return db.session.scalar(db.select(Task).where(Task.instance_id == instance_id, Task.element_id == element,
                                                   Task.state == "ready"))


def step(instance_id: int, element: str, data: dict, user, who: str, now: datetime = T0, signed: bool = False):
    task = ready(instance_id, element)
    assert task is not None, f"no ready task {element}"
    return tasks.complete_task(task.id, data, user(who), now=now, lang="en",
                               password=demo.DEMO_PASSWORD if signed else None)


def holds(lot: ProductLot) -> list[InstanceLot]:
    return list(db.session.scalars(db.select(InstanceLot).where(
        InstanceLot.product_lot_id == lot.id, InstanceLot.role == "hold").order_by(InstanceLot.id)))

"""A lot the excursion's signed decision scraps is destroyed on a record: the decision starts the scrap /
destruction procedure for the stock still at its location, whose signed approval takes it off stock."""
from __future__ import annotations

from datetime import timedelta

from app.extensions import db
from app.models import Excursion, ProcessInstance, ScrapRecord, StockLevel
from app.services import demo
from tests.conftest import T0
from tests.integration.conditions.conftest import ROOM, ready, run_file, step
from tests.integration.conditions.test_excursion_flow import ASSESS, excursion_file


def test_a_scrap_decision_starts_the_destruction_of_the_stock_left(cold_room, user):
    run_file(excursion_file(), user)
    excursion = db.session.scalar(db.select(Excursion))
    step(excursion.instance_id, "assess", ASSESS, user, "qa")
    step(excursion.instance_id, "approve", {"approval": "approve"}, user, "head", now=T0 + timedelta(hours=2),
         signed=True)

    db.session.expire_all()
    assert cold_room["C2"].status == "scrapped"
    deviation = db.session.get(ProcessInstance, excursion.instance_id)
    [destruction_id] = deviation.data["outcome"]["destruction_instances"]
    destruction = db.session.get(ProcessInstance, destruction_id)
    assert destruction.version.definition.key == "scrap" and destruction.status == "running"
    assert destruction.title == f"Scrap of lot C2 at {ROOM}"
    assert (destruction.data["lot_number"], destruction.data["location"], destruction.data["quantity"]) == (
        "C2", ROOM, 200)

    request = {"lot_number": "C2", "location": ROOM, "quantity": 200, "method": "incineration",
               "witness": "Zhou Jie, warehouse supervisor", "reason": destruction.data["reason"]}
    step(destruction.id, "request", request, user, "qa", now=T0 + timedelta(hours=3))
    task = ready(destruction.id, "approve")
    from app.services.workflow import tasks
    tasks.complete_task(task.id, {"approval": "approve"}, user("head"), password=demo.DEMO_PASSWORD,
                        now=T0 + timedelta(hours=4), lang="en")

    db.session.expire_all()
    level = db.session.scalar(db.select(StockLevel).where(StockLevel.product_lot_id == cold_room["C2"].id))
    assert level.quantity == 0
    record = db.session.scalar(db.select(ScrapRecord).where(ScrapRecord.instance_id == destruction.id))
    assert (record.quantity, record.lot_scrapped, record.approved_by) == (200, True, "Helen Head")
    assert cold_room["C2"].status == "scrapped"
    assert db.session.get(ProcessInstance, destruction.id).status == "completed"

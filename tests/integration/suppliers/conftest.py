"""A supplier with two material lots (one failed incoming inspection), another supplier, and the steps of the
shipped supplier return as its users take them."""
from __future__ import annotations

from datetime import date, datetime

import pytest

from app.extensions import db
from app.models import Inspection, MaterialLot, OutboxMessage, ScarRequest, Supplier, Task
from app.services import demo
from app.services.procedures import supplier_returns
from app.services.workflow import tasks
from tests.conftest import T0

IDENTIFY = {"source": "incoming_inspection", "material_lots": "M1, M2", "severity": "major", "found_on": "2026-11-23",
            "defect_description": "Resin pellets contaminated with black specks (12 of 50 samples).",
            "reference": "IQC-2026-118"}
SCAR = {"defect_description": "Black specks in PVC resin lots M1 and M2, 12 of 50 samples.",
        "requirements": "Contain your stock, find the root cause, correct and prevent; send the 8D report.",
        "scar_contact": "Li Na, +86 512 5555 0101"}
REQUEST = {"lines": [{"lot_number": "M1", "specification": "SG-5, 25 kg bag", "quantity": 400, "unit": "kg",
                      "reason": "Contaminated (black specks)"},
                     {"lot_number": "M2", "specification": "SG-5, 25 kg bag", "quantity": 250, "unit": "kg",
                      "reason": "Contaminated (black specks)"}],
           "recipient": "Resin Co, 8 Harbour Road, Ningbo; attn. Zhou Lei", "rma_number": "RMA-7781"}
AUTHORISE = {"decision": "approve", "comment": "Return both lots."}
SHIP = {"returned_on": "2026-11-25", "carrier": "SF Express", "tracking_no": "SF1234567890"}
ACCEPT = {"verification": "accepted", "verification_note": "8D report and new filter validation reviewed."}
REJECT = {"verification": "rejected", "verification_note": "Root cause not proven: no data on the screen mesh."}
STATUS = {"supplier_status": "suspended", "status_reason": "Major contamination; suspend until re-audit."}
CLOSE = {"decision": "approve", "comment": "Closed."}
ANSWER = {"responder_name": "Zhou Lei", "responder_title": "QA manager",
          "containment": "Stock of lots M1, M2 blocked at our warehouse; 3 t in transit recalled.",
          "root_cause": "Torn screen mesh on extruder 2 let degraded resin through.",
          "corrective_action": "Mesh replaced, inspection of the mesh added to the shift checklist.",
          "preventive_action": "Mesh on all extruders changed to a monitored type.", "completion_date": "2026-12-15"}
WHO = {"identify": "qa", "prepare_scar": "qa", "prepare_return": "prod", "authorise_return": "head",
       "ship_return": "prod", "verify_response": "qa", "supplier_status": "qa", "close": "head",
       "escalation_response": "head"}
SIGNED = ("authorise_return", "close")


@pytest.fixture
def supplier_plant(seeded):
    """S1 (e-mail, zh-CN) delivered M1 (failed incoming inspection) and M2; S2 delivered M3."""
    s1 = Supplier(code="S1", name="Resin Co", contact_name="Zhou Lei", email="quality@resin.example", language="zh-CN")
    s2 = Supplier(code="S2", name="Tube Co", email="qa@tube.example", language="en")
    lots = {name: MaterialLot(supplier=supplier, material="PVC resin", lot_number=name, status="released",
                              received_on=date(2026, 11, 20), expiry_on=date(2028, 11, 20))
            for name, supplier in (("M1", s1), ("M2", s1), ("M3", s2))}
    db.session.add_all([s1, s2, *lots.values()])
    db.session.flush()
    db.session.add(Inspection(stage="incoming", material_lot_id=lots["M1"].id, result="fail",
                              results="Black specks in 12 of 50 samples", inspected_on=date(2026, 11, 23),
                              inspector="Chen Jing"))
    db.session.commit()
    return lots


def ready(instance_id: int, element: str) -> Task | None:
    return db.session.scalar(db.select(Task).where(Task.instance_id == instance_id, Task.element_id == element,
                                                   Task.state == "ready"))


def step(instance_id: int, element: str, data: dict, user, now: datetime = T0):
    task = ready(instance_id, element)
    assert task is not None, f"no ready task {element}"
    return tasks.complete_task(task.id, data, user(WHO[element]), now=now, lang="en",
                               password=demo.DEMO_PASSWORD if element in SIGNED else None)


def start(plant, user, now: datetime = T0):
    """Start from M1's page, identify M1 and M2, quarantine them, and send the SCAR."""
    instance = supplier_returns.start_return(user("qa"), plant["M1"].id, now=now)
    step(instance.id, "identify", IDENTIFY, user, now)
    step(instance.id, "prepare_scar", SCAR, user, now)
    return instance


def scar_link(scar: ScarRequest) -> str:
    """The response link of the latest e-mail to the supplier about this SCAR, as the supplier reads it."""
    message = db.session.scalar(db.select(OutboxMessage).where(
        OutboxMessage.instance_id == scar.instance_id, OutboxMessage.recipients == scar.email,
        OutboxMessage.subject.contains(scar.number)).order_by(OutboxMessage.id.desc()).limit(1))
    return message.body.split("/scar/")[1].split()[0]


def ship(instance_id: int, user, now: datetime = T0) -> None:
    step(instance_id, "prepare_return", REQUEST, user, now)
    step(instance_id, "authorise_return", AUTHORISE, user, now)
    step(instance_id, "ship_return", SHIP, user, now)

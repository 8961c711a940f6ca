"""lots.* service-task handlers run from a deployed diagram: affected list, status changes, release checks,
backward trace; failures stop the instance with an incident and change nothing."""
from __future__ import annotations

import pytest

from app.extensions import db
from app.models import Incident, InstanceLot, ProductLot
from app.services.evidence import audit
from app.services.lots import imports
from app.services.workflow import instances
from tests.conftest import T0
from tests.integration.services.scenarios import count, deploy, diagram, user_task


def _service(element_id: str, operator: str, result: str, params: dict[str, str]) -> str:
    rows = "".join(f'<spiffworkflow:parameter id="{name}" type="any" value="{value}"/>'
                   for name, value in params.items())
    return f"""<bpmn:serviceTask id="{element_id}">
      <bpmn:extensionElements>
        <spiffworkflow:serviceTaskOperator id="{operator}" resultVariable="{result}">
          <spiffworkflow:parameters>{rows}</spiffworkflow:parameters>
        </spiffworkflow:serviceTaskOperator>
      </bpmn:extensionElements>
    </bpmn:serviceTask>"""


def _chain(process_id: str, *elements: tuple[str, str]) -> bytes:
    """A start event, the given (id, xml) elements in sequence, a closing user task and an end event."""
    ids = ["start", *(element_id for element_id, _ in elements), "review", "end"]
    flows = "".join(f'<bpmn:sequenceFlow id="f{i}" sourceRef="{a}" targetRef="{b}"/>'
                    for i, (a, b) in enumerate(zip(ids, ids[1:], strict=False)))
    body = ('<bpmn:startEvent id="start"/>' + "".join(xml for _, xml in elements)
            + user_task("review", "Review") + '<bpmn:endEvent id="end"/>' + flows)
    return diagram(process_id, body, lane_nodes=["review"])


@pytest.fixture
def plant(seeded, user):
    """Material M1 -> lots L1, L2; L1 -> L3 (sub-assembly); L1 shipped to a hospital."""
    admin = user("admin")
    for kind, row in [
        ("products", {"gtin": "06901234567892", "name": "Catheter", "sterile": "no"}),
        ("suppliers", {"code": "S1", "name": "Resin Co"}),
        ("material_lots", {"supplier_code": "S1", "material": "resin", "lot_number": "M1"}),
        ("product_lots", {"gtin": "06901234567892", "lot_number": "L1", "quantity": 100, "status": "released",
                          "sterilization_batch": "ST-1"}),
        ("product_lots", {"gtin": "06901234567892", "lot_number": "L2", "quantity": 50, "status": "released"}),
        ("product_lots", {"gtin": "06901234567892", "lot_number": "L3", "quantity": 20, "status": "scrapped"}),
        ("genealogy", {"product_lot": "L1", "material_lot": "M1", "quantity": 3}),
        ("genealogy", {"product_lot": "L2", "material_lot": "M1", "quantity": 2}),
        ("genealogy", {"product_lot": "L3", "component_lot": "L1", "quantity": 1}),
        ("customers", {"code": "H1", "name": "City Hospital", "kind": "hospital", "region": "Zhejiang"}),
        ("shipments", {"product_lot": "L1", "customer_code": "H1", "quantity": 40, "shipped_on": "2026-11-01"}),
    ]:
        imports.create_record(kind, row, admin, T0)
    return admin


def _lot(number: str) -> ProductLot:
    return db.session.scalar(db.select(ProductLot).where(ProductLot.lot_number == number))


def test_find_affected_then_hold_records_the_lots_and_the_reason(plant, user):
    deploy(_chain("hold_affected",
                  ("affected", _service("affected", "lots.find_affected", "affected",
                                        {"material_lots": "material_lots"})),
                  ("hold", _service("hold", "lots.set_status", "held",
                                    {"lots": "[lot['lot_number'] for lot in affected['lots'] "
                                             "if lot['status'] == 'released']",
                                     "status": "'hold'", "reason": "'Resin lot suspect: ' + material_lots"}))),
           "hold_affected.bpmn")
    instance = instances.start_instance("hold_affected", user("qa"), {"material_lots": "M1"}, now=T0)
    data = instance.data
    assert {lot["lot_number"] for lot in data["affected"]["lots"]} == {"L1", "L2", "L3"}
    assert data["affected"]["consignees"][0]["code"] == "H1" and data["affected"]["consignees"][0]["quantity"] == 40
    assert data["held"]["changed"] == ["L1", "L2"]
    assert (_lot("L1").status, _lot("L2").status, _lot("L3").status) == ("hold", "hold", "scrapped")
    events = [e for e in audit_events("lot.status_changed") if e.instance_id == instance.id]
    assert {e.reason for e in events} == {"Resin lot suspect: M1"} and len(events) == 2
    assert count(InstanceLot, InstanceLot.instance_id == instance.id, InstanceLot.role == "affected") == 3
    assert audit.verify().ok


def audit_events(action: str):
    from app.models import AuditEvent
    return list(db.session.scalars(db.select(AuditEvent).where(AuditEvent.action == action)))


def test_a_forbidden_transition_stops_at_an_incident_and_changes_nothing(plant, user):
    deploy(_chain("release_all", ("release", _service("release", "lots.set_status", "released",
                                                      {"lots": "'L2,L3'", "status": "'released'",
                                                       "reason": "'release'"}))), "release_all.bpmn")
    # L2 is already released (no change); L3 is scrapped and can never be released again.
    _lot("L2").status = "hold"
    db.session.commit()
    instance = instances.start_instance("release_all", user("qa"), now=T0)
    assert instance.status == "incident"
    incident = db.session.scalar(db.select(Incident).where(Incident.instance_id == instance.id))
    assert "scrapped" in incident.message
    assert _lot("L2").status == "hold"  # the change made before the refusal rolled back with the savepoint
    assert audit.verify().ok  # ... and so did its audit row, without breaking the chain


@pytest.mark.parametrize(("params", "message"), [
    ({"material_lots": "'NOPE'"}, "unknown material lot"),
    ({"product_lots": "'L9'"}, "unknown product lot"),
    ({"sterilization_batches": "'ST-404'"}, "affected list would be empty"),
    ({}, "give material lots"),
])
def test_find_affected_refuses_bad_criteria_with_an_incident(plant, user, params, message):
    deploy(_chain("affected_bad", ("affected", _service("affected", "lots.find_affected", "affected", params))),
           "affected_bad.bpmn")
    instance = instances.start_instance("affected_bad", user("qa"), now=T0)
    incident = db.session.scalar(db.select(Incident).where(Incident.instance_id == instance.id))
    assert instance.status == "incident" and message in incident.message


def test_release_checks_and_backward_trace_report_on_a_lot(plant, user):
    deploy(_chain("check_lot",
                  ("checks", _service("checks", "lots.release_checks", "checks", {"lot": "'L3'"})),
                  ("origin", _service("origin", "lots.trace_backward", "origin", {"lot": "'L3'"}))),
           "check_lot.bpmn")
    instance = instances.start_instance("check_lot", user("qa"), now=T0)
    checks, origin = instance.data["checks"], instance.data["origin"]
    assert checks["releasable"] is False
    assert {c["code"] for c in checks["failed"]} == {"batch_record_complete", "final_inspection_passed",
                                                     "labels_udi"}
    assert {lot["lot_number"] for lot in origin["lots"]} == {"L1", "L3"}
    assert [m["lot_number"] for m in origin["material_lots"]] == ["M1"]
    assert origin["sterilization_batches"] == ["ST-1"]

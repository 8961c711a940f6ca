"""Forward and backward trace on a small hand-built plant with multi-level and diamond genealogy."""
from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import Customer, GenealogyEdge, MaterialLot, Product, ProductLot, Shipment, Supplier
from app.services import trace


@pytest.fixture
def plant(app):
    """M1 -> A -> C -> E and M1 -> B -> C (a diamond), M2 -> B, M3 -> D; shipments incl. an onward one."""
    s1, s2 = Supplier(code="S1", name="Resin Co"), Supplier(code="S2", name="Tube Co")
    product = Product(name="Catheter", gtin="06901234567892")
    db.session.add_all([s1, s2, product])
    db.session.flush()
    materials = {name: MaterialLot(supplier=supplier, material="resin", lot_number=name)
                 for name, supplier in (("M1", s1), ("M2", s2), ("M3", s1))}
    lots = {name: ProductLot(product=product, lot_number=name, quantity=100, sterilization_batch=f"ST-{name}")
            for name in "ABCDE"}
    db.session.add_all([*materials.values(), *lots.values()])
    db.session.flush()
    edges = [("A", "M1", None), ("B", "M1", None), ("B", "M2", None), ("C", None, "A"), ("C", None, "B"),
             ("D", "M3", None), ("E", None, "C")]
    db.session.add_all(GenealogyEdge(product_lot_id=lots[made].id, quantity=1,
                                     material_lot_id=materials[m].id if m else None,
                                     component_lot_id=lots[c].id if c else None) for made, m, c in edges)
    customers = {code: Customer(code=code, name=code, kind=kind) for code, kind in
                 (("X", "distributor"), ("H1", "hospital"), ("H2", "hospital"), ("H3", "hospital"))}
    db.session.add_all(customers.values())
    db.session.flush()
    shipped = [("C", "X", None), ("C", "H1", "X"), ("E", "H2", None), ("D", "H3", None), ("D", "H1", "X")]
    db.session.add_all(Shipment(product_lot_id=lots[lot].id, customer_id=customers[to].id, quantity=10,
                                from_customer_id=customers[via].id if via else None, shipped_on=date(2026, 11, 1),
                                document_no=f"DN-{lot}-{to}") for lot, to, via in shipped)
    db.session.commit()
    return materials, lots


def _names(rows, attribute="lot_number"):
    return {getattr(row, attribute) for row in rows}


@pytest.mark.parametrize(("material", "lots", "documents", "consignees"), [
    ("M1", {"A", "B", "C", "E"}, {"DN-C-X", "DN-C-H1", "DN-E-H2"}, {"X", "H1", "H2"}),
    ("M2", {"B", "C", "E"}, {"DN-C-X", "DN-C-H1", "DN-E-H2"}, {"X", "H1", "H2"}),
    ("M3", {"D"}, {"DN-D-H3"}, {"H3"}),  # X never received D, so its onward "D" shipment is not reached
])
def test_forward_trace_reaches_every_lot_shipment_and_consignee(plant, material, lots, documents, consignees):
    materials, _ = plant
    result = trace.forward([materials[material].id])
    assert _names(result.product_lots) == lots
    assert _names(result.shipments, "document_no") == documents
    assert _names(result.consignees, "code") == consignees


def test_forward_trace_of_nothing_is_empty(plant):
    result = trace.forward([])
    assert (result.product_lots, result.shipments, result.consignees) == ([], [], [])


def test_backward_trace_finds_components_materials_and_suppliers(plant):
    _, lots = plant
    result = trace.backward(lots["E"].id)
    assert _names(result.product_lots) == {"A", "B", "C", "E"}
    assert _names(result.material_lots) == {"M1", "M2"}
    assert _names(result.suppliers, "code") == {"S1", "S2"}
    assert result.sterilization_batches == ["ST-A", "ST-B", "ST-C", "ST-E"]


@pytest.mark.parametrize("bad_row", [
    lambda m, lots: Shipment(product_lot_id=lots["A"].id, customer_id=1, quantity=0, shipped_on=date(2026, 11, 2)),
    lambda m, lots: GenealogyEdge(product_lot_id=lots["A"].id, material_lot_id=m["M1"].id,
                                  component_lot_id=lots["B"].id),
    lambda m, lots: GenealogyEdge(product_lot_id=lots["A"].id),
], ids=["shipment without quantity", "edge with two components", "edge without component"])
def test_the_database_refuses_impossible_rows(plant, bad_row):
    materials, lots = plant
    db.session.add(bad_row(materials, lots))
    with pytest.raises(IntegrityError):
        db.session.commit()
    db.session.rollback()

"""Forward and backward trace on a small hand-built plant with multi-level and diamond genealogy."""
from __future__ import annotations

import csv
import io
from datetime import date

import pytest
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import Customer, GenealogyEdge, MaterialLot, Product, ProductLot, Shipment, Supplier
from app.services.lots import trace


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


@pytest.mark.parametrize(("query", "matched", "lots", "consignees"), [
    ("C", {"C"}, {"C", "E"}, {"X", "H1", "H2"}),                  # a lot number: the lot and what used it
    ("ST-D", {"D"}, {"D"}, {"H3"}),                              # a sterilization batch
    ("DN-E-H2", set(), {"E"}, {"H2"}),                           # a shipment's document number
    ("(01)06901234567892(17)271100(10)A", {"A"}, {"A", "C", "E"}, {"X", "H1", "H2"}),  # a scanned UDI
])
def test_search_finds_where_to_start_and_traces_both_ways(plant, query, matched, lots, consignees):
    report = trace.trace_report(query)
    assert _names(report.match.product_lots) == matched
    assert _names(report.forward.product_lots) == lots
    assert {line.customer.code for line in report.consignees} == consignees
    assert report.backward is not None


def test_a_material_lot_number_traces_forward_only(plant):
    report = trace.trace_report("M3")
    assert _names(report.match.material_lots) == {"M3"}
    assert _names(report.forward.product_lots) == {"D"}
    assert report.backward is None


def test_consignee_lines_sum_quantities_per_consignee(plant):
    report = trace.trace_report("M1")
    quantities = {line.customer.code: (line.quantity, line.shipments) for line in report.consignees}
    assert quantities == {"X": (10, 1), "H1": (10, 1), "H2": (10, 1)}
    assert report.counts["quantity_shipped"] == 20  # X's onward shipment to H1 is not shipped twice by us


def test_a_udi_with_a_bad_check_digit_is_refused(plant):
    from app.exceptions import ValidationFailed
    with pytest.raises(ValidationFailed, match="check digit"):
        trace.search("(01)06901234567893(10)A")


def test_nothing_found_is_an_empty_report(plant):
    report = trace.trace_report("NO-SUCH-LOT")
    assert report.match.empty
    assert report.forward.product_lots == [] and report.backward is None


@pytest.mark.parametrize(("criteria", "lots"), [
    ({"sterilization_batches": ["ST-A"]}, {"A", "C", "E"}),
    ({"product_lot_ids": ["D"]}, {"D"}),
    ({"material_lot_ids": ["M2"], "sterilization_batches": ["ST-D"]}, {"B", "C", "D", "E"}),
])
def test_find_affected_unions_its_criteria(plant, criteria, lots):
    materials, product_lots = plant
    if "product_lot_ids" in criteria:
        criteria["product_lot_ids"] = [product_lots[name].id for name in criteria["product_lot_ids"]]
    if "material_lot_ids" in criteria:
        criteria["material_lot_ids"] = [materials[name].id for name in criteria["material_lot_ids"]]
    result = trace.find_affected(**criteria).as_dict()
    assert {lot["lot_number"] for lot in result["lots"]} == lots
    assert result["totals"]["lots"] == len(lots)


def test_exports_carry_every_table(plant):
    from openpyxl import load_workbook
    report = trace.trace_report("M1")
    workbook = load_workbook(io.BytesIO(trace.export_xlsx(report)))
    assert workbook.sheetnames[:4] == ["Summary", "Product lots", "Shipments", "Consignees"]
    assert {row[0] for row in workbook["Product lots"].iter_rows(min_row=2, values_only=True)} == {"A", "B", "C", "E"}
    rows = list(csv.reader(io.StringIO(trace.export_csv(report))))
    shipments = {row[1] for row in rows if row[0] == "Shipments"}
    assert shipments == {"DN-C-X", "DN-C-H1", "DN-E-H2"}
    assert ["section", "document_no", "lot_number"] in [row[:3] for row in rows]  # each table has its header

"""Master-data imports through start_import + run_import: every kind, CSV and XLSX, bad-row tables, all-or-nothing."""
from __future__ import annotations

import csv
import gc
import hashlib
import io
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import pytest
from biip.checksums import gs1_standard_check_digit
from openpyxl import Workbook
from sqlalchemy import select
from sqlalchemy.orm import aliased

from app.exceptions import ValidationFailed
from app.extensions import db
from app.models import (
    AuditEvent,
    Customer,
    GenealogyEdge,
    ImportJob,
    Inspection,
    InstanceLot,
    MaterialLot,
    ProcessInstance,
    Product,
    ProductLot,
    Reading,
    Sensor,
    SerialNumber,
    Shipment,
    StockLevel,
    StorageLocation,
    Supplier,
    Warehouse,
)
from app.models.sterilization import SterilizationBatch, SterilizationLoad
from app.services.lots import conditions, import_rules, imports, stock  # noqa: F401 - stock registers its kinds
from tests.conftest import T0
from tests.integration.services.scenarios import count


def with_check_digit(body: str) -> str:
    """Complete a GTIN body with its GS1 check digit."""
    return body + str(gs1_standard_check_digit(body))


GTIN = with_check_digit("0690123456789")  # the plant's product
GTIN_NEW = with_check_digit("0690123456790")  # valid, not in the database
BAD_CHECK_DIGIT = GTIN[:-1] + str((int(GTIN[-1]) + 1) % 10)

MODELS = {"products": Product, "suppliers": Supplier, "material_lots": MaterialLot, "product_lots": ProductLot,
          "genealogy": GenealogyEdge, "inspections": Inspection, "stock": StockLevel, "serials": SerialNumber,
          "customers": Customer, "shipments": Shipment}
PRODUCT_LOT_HEADER = ["gtin", "lot_number", "quantity", "manufactured_on", "expiry_on"]
SHIPMENT_HEADER = ["product_lot", "customer_code", "quantity", "shipped_on", "document_no", "from_customer_code"]


@pytest.fixture
def plant(seeded):
    """One product; suppliers S1 (approved) and S9 (suspended); material lot M1 of resin and of tubing; product
    lots L-<status> for released, quarantine, hold and recalled (made 2026-01-01, expiring 2028-01-01); customers
    D1 (distributor) and H1 (hospital); temperature logger T0 at WH-A."""
    product = Product(name="Catheter", gtin=GTIN)
    approved, suspended = Supplier(code="S1", name="Resin Co"), Supplier(code="S9", name="Old Co", status="suspended")
    db.session.add_all([product, approved, suspended])
    db.session.add_all(MaterialLot(supplier=approved, material=material, lot_number="M1", status="released")
                       for material in ("resin", "tubing"))
    db.session.add_all(ProductLot(product=product, lot_number=f"L-{status}", quantity=100, status=status,
                                  manufactured_on=date(2026, 1, 1), expiry_on=date(2028, 1, 1))
                       for status in ("released", "quarantine", "hold", "recalled"))
    db.session.add_all([Customer(code="D1", name="North Distribution", kind="distributor"),
                        Customer(code="H1", name="City Hospital", kind="hospital"),
                        Sensor(code="T0", name="Warehouse A", location="WH-A")])
    db.session.commit()
    return seeded


def csv_bytes(rows: list[list]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue().encode()


def xlsx_bytes(rows: list[list]) -> bytes:
    workbook = Workbook()
    for row in rows:
        workbook.active.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


@pytest.fixture
def uploads(plant, tmp_path, monkeypatch):
    """Keep uploaded files in the test's own instance folder; return where they are stored."""
    monkeypatch.setattr(plant, "instance_path", str(tmp_path))
    return tmp_path / "imports"


@pytest.fixture
def run(uploads, user):
    """Import rows (or raw file bytes) of a kind as admin with the clock at T0; return the finished job."""
    def run(kind: str, rows: list[list] | bytes, filename: str = "data.csv", progress=None) -> ImportJob:
        content = rows if isinstance(rows, bytes) else csv_bytes(rows)
        job = imports.start_import(kind, filename, content, user("admin"), now=T0)
        return imports.run_import(job.id, now=T0, progress=progress)
    return run


def triples(job: ImportJob) -> list[tuple[int, str, str]]:
    return [(error["line"], error["column"], error["code"]) for error in job.errors]


def rows_of(query) -> list[tuple]:
    return [tuple(row) for row in db.session.execute(query)]


def _genealogy():
    component, material = aliased(ProductLot), aliased(MaterialLot)
    return rows_of(select(ProductLot.lot_number, material.material, material.lot_number, component.lot_number,
                          GenealogyEdge.quantity)
                   .join(ProductLot, ProductLot.id == GenealogyEdge.product_lot_id)
                   .outerjoin(material, material.id == GenealogyEdge.material_lot_id)
                   .outerjoin(component, component.id == GenealogyEdge.component_lot_id).order_by(GenealogyEdge.id))


def _inspections():
    return rows_of(select(Inspection.stage, ProductLot.lot_number, MaterialLot.lot_number, Inspection.result,
                          Inspection.inspected_on, Inspection.inspector, Inspection.capa_instance_id)
                   .outerjoin(ProductLot, ProductLot.id == Inspection.product_lot_id)
                   .outerjoin(MaterialLot, MaterialLot.id == Inspection.material_lot_id).order_by(Inspection.id))


def _stock():
    return rows_of(select(ProductLot.lot_number, StockLevel.location, StockLevel.quantity)
                   .join(ProductLot, ProductLot.id == StockLevel.product_lot_id).order_by(StockLevel.location))


def _customers():
    parent = aliased(Customer)
    return rows_of(select(Customer.code, Customer.kind, Customer.country, Customer.email, parent.code)
                   .outerjoin(parent, parent.id == Customer.parent_id)
                   .where(Customer.code.notin_(("D1", "H1"))).order_by(Customer.code))


def _shipments():
    sender = aliased(Customer)
    return rows_of(select(ProductLot.lot_number, Customer.code, sender.code, Shipment.quantity, Shipment.shipped_on)
                   .join(ProductLot, ProductLot.id == Shipment.product_lot_id)
                   .join(Customer, Customer.id == Shipment.customer_id)
                   .outerjoin(sender, sender.id == Shipment.from_customer_id).order_by(Shipment.id))


def _sterilization_loads():
    return rows_of(select(ProductLot.lot_number, ProductLot.sterilization_batch, SterilizationLoad.quantity,
                          SterilizationBatch.status).select_from(SterilizationLoad)
                   .join(ProductLot, ProductLot.id == SterilizationLoad.product_lot_id)
                   .join(SterilizationBatch, SterilizationBatch.id == SterilizationLoad.batch_id)
                   .order_by(ProductLot.lot_number))


# A good file per kind (it builds on the plant) and what the database holds afterwards.
GOOD: dict[str, list[list]] = {
    "products": [["gtin", "name", "model", "registration_expiry", "device_class", "sterile"],
                 [GTIN_NEW[1:], "Guide wire", "GW-1", "2030-12-31", "II", "yes"]],  # GTIN-13 is stored as 14
    "suppliers": [["code", "name", "status"], ["S2", "Tube Co", "conditional"], ["S3", "Film Co", ""]],
    "material_lots": [["supplier_code", "material", "lot_number", "received_on", "expiry_on"],
                      ["S1", "resin", "M2", "2026-10-01", "2028-10-01"],
                      ["S1", "film", "M1", "2026-10-02", ""]],  # the same lot number for another material
    "product_lots": [[*PRODUCT_LOT_HEADER, "sterilization_batch", "batch_record_complete"],
                     [GTIN, "L2", "500", "2026-11-01", "2029-11-01", "ST-9", "yes"],
                     [GTIN, "L3", "0", "", "", "", ""]],
    "genealogy": [["product_lot", "material", "material_lot", "component_lot", "quantity"],
                  ["L-released", "resin", "M1", "", "2.5"], ["L-hold", "", "", "L-released", ""]],
    "inspections": [["stage", "product_lot", "material", "material_lot", "result", "inspected_on", "inspector"],
                    ["final", "L-quarantine", "", "", "pass", "2026-11-20", "Li Na"],
                    ["incoming", "", "resin", "M1", "fail", "2026-11-21", ""]],
    "stock": [["product_lot", "location", "quantity"], ["L-released", "WH-A", "40"], ["L-released", "WH-B", "0"]],
    "serials": [["product_lot", "serial"], ["L-released", "SN0001"], ["L-hold", "SN0001"]],
    "customers": [["code", "name", "kind", "region", "country", "email", "parent_code"],
                  ["H2", "Ruijin Hospital", "hospital", "Shanghai", "cn", "ops@ruijin.example", "D2"],
                  ["D2", "East Distribution", "distributor", "", "", "", ""]],  # the parent comes later
    "shipments": [SHIPMENT_HEADER, ["L-released", "D1", "10", "2026-11-20", "DN-1", ""],
                  ["L-released", "H1", "2", "2026-11-21", "DN-2", "D1"]],
    "sensors": [["code", "name", "quantity", "place", "location", "interval_seconds"],
                ["T2", "Cold room", "temperature", "warehouse", "WH-B", "60"],
                ["H2", "Truck humidity", "humidity", "vehicle", "Truck 1", ""]],
    "readings": [["timestamp", "sensor", "value", "unit"], ["2026-11-20T08:00:00+08:00", "T0", "41", "F"],
                 ["2026-11-20 00:05", "T0", "5.5", "C"]],  # 41 °F = 5 °C; plant time is UTC in the tests
    "warehouses": [["code", "name", "address"], ["W1", "Main warehouse", "Hangzhou"], ["W2", "Cold store", ""]],
    "locations": [["code", "warehouse", "name"], ["WH-A", "W0", "Rack A"], ["WH-B", "W0", ""]],
    "fefo_shipments": [["gtin", "customer_code", "quantity", "shipped_on", "document_no"],
                       [GTIN, "D1", "10", "2026-11-20", "FO-1"], [GTIN, "H1", "5", "", "FO-2"]],  # held lot skipped
    "sterilization_batches": [["batch_number", "method", "processed_on", "dose_min_kgy", "dose_max_kgy", "load"],
                              ["G-1", "gamma", "2026-11-20", "26", "34", "L-quarantine:60; L-hold"]],
}
READINGS_FROM = conditions.to_seconds(datetime(2026, 11, 20, tzinfo=UTC))


# What the database holds after each kind's good file was imported into the plant.
IMPORTED: dict[str, tuple[Callable[[], list[tuple]], list[tuple]]] = {
    "products": (lambda: rows_of(select(Product.gtin, Product.name, Product.model, Product.registration_expiry,
                                        Product.device_class, Product.sterile).where(Product.gtin == GTIN_NEW)),
     [(GTIN_NEW, "Guide wire", "GW-1", date(2030, 12, 31), "II", True)]),
    "suppliers": (lambda: rows_of(select(Supplier.code, Supplier.status).where(Supplier.code.in_(("S2", "S3")))
                                  .order_by(Supplier.code)),
     [("S2", "conditional"), ("S3", "approved")]),
    "material_lots": (lambda: rows_of(select(MaterialLot.material, MaterialLot.lot_number, MaterialLot.received_on,
                                             MaterialLot.expiry_on, MaterialLot.status, Supplier.code)
                                      .join(Supplier).order_by(MaterialLot.id)),
     [("resin", "M1", None, None, "released", "S1"), ("tubing", "M1", None, None, "released", "S1"),
      ("resin", "M2", date(2026, 10, 1), date(2028, 10, 1), "quarantine", "S1"),
      ("film", "M1", date(2026, 10, 2), None, "quarantine", "S1")]),
    "product_lots": (lambda: rows_of(select(ProductLot.lot_number, Product.gtin, ProductLot.quantity,
                                            ProductLot.manufactured_on, ProductLot.expiry_on,
                                            ProductLot.sterilization_batch, ProductLot.status,
                                            ProductLot.batch_record_complete)
                                     .join(Product).where(ProductLot.lot_number.in_(("L2", "L3")))
                                     .order_by(ProductLot.lot_number)),
     [("L2", GTIN, 500, date(2026, 11, 1), date(2029, 11, 1), "ST-9", "quarantine", True),
      ("L3", GTIN, 0, None, None, None, "quarantine", False)]),
    "genealogy": (_genealogy,
     [("L-released", "resin", "M1", None, 2.5), ("L-hold", None, None, "L-released", 0)]),
    "inspections": (_inspections,
     [("final", "L-quarantine", None, "pass", date(2026, 11, 20), "Li Na", None),
      ("incoming", None, "M1", "fail", date(2026, 11, 21), "", None)]),
    "stock": (_stock, [("L-released", "WH-A", 40), ("L-released", "WH-B", 0)]),
    "serials": (lambda: rows_of(select(ProductLot.lot_number, SerialNumber.serial).join(ProductLot)
                                .order_by(SerialNumber.id)),
     [("L-released", "SN0001"), ("L-hold", "SN0001")]),
    "customers": (_customers,
     [("D2", "distributor", "CN", "", None), ("H2", "hospital", "CN", "ops@ruijin.example", "D2")]),
    "shipments": (_shipments,
     [("L-released", "D1", None, 10, date(2026, 11, 20)), ("L-released", "H1", "D1", 2, date(2026, 11, 21))]),
    "sensors": (lambda: rows_of(select(Sensor.code, Sensor.quantity, Sensor.place, Sensor.location,
                                       Sensor.interval_seconds).where(Sensor.code != "T0").order_by(Sensor.code)),
     [("H2", "humidity", "vehicle", "Truck 1", 300), ("T2", "temperature", "warehouse", "WH-B", 60)]),
    "readings": (lambda: rows_of(select(Reading.at, Reading.value).order_by(Reading.at)),
     [(READINGS_FROM, 500), (READINGS_FROM + 300, 550)]),
    "warehouses": (lambda: rows_of(select(Warehouse.code, Warehouse.name, Warehouse.address).order_by(Warehouse.code)),
     [("W1", "Main warehouse", "Hangzhou"), ("W2", "Cold store", "")]),
    "locations": (lambda: rows_of(select(StorageLocation.code, Warehouse.code, StorageLocation.name).join(Warehouse)
                                  .order_by(StorageLocation.code)),
     [("WH-A", "W0", "Rack A"), ("WH-B", "W0", "")]),
    "fefo_shipments": (lambda: rows_of(select(Shipment.document_no, ProductLot.lot_number, Shipment.quantity,
                                              Shipment.shipped_on).join(ProductLot)
                                       .where(Shipment.order_id.is_not(None)).order_by(Shipment.id)) + _stock(),
     [("FO-1", "L-released", 10, date(2026, 11, 20)), ("FO-2", "L-released", 5, date(2026, 11, 23)),
      ("L-released", "WH-A", 15), ("L-hold", "WH-B", 30)]),
    "sterilization_batches": (_sterilization_loads,
     [("L-hold", "G-1", 100, "pending"), ("L-quarantine", "G-1", 60, "pending")]),
}


def _warehouse_w0() -> None:
    db.session.add(Warehouse(code="W0", name="Existing warehouse"))
    db.session.commit()


def _stock_to_ship() -> None:
    lots_by_number = dict(db.session.execute(select(ProductLot.lot_number, ProductLot.id)).all())
    db.session.add_all([StockLevel(product_lot_id=lots_by_number["L-released"], location="WH-A", quantity=30),
                        StockLevel(product_lot_id=lots_by_number["L-hold"], location="WH-B", quantity=30)])
    db.session.commit()


# What a kind's good file needs in the plant first (a warehouse for its locations, stock to ship).
SETUP: dict[str, Callable[[], None]] = {"locations": _warehouse_w0, "fefo_shipments": _stock_to_ship}


@pytest.mark.parametrize("kind", list(import_rules.KINDS))
def test_a_good_csv_file_imports_every_row(run, kind):
    observe, expected = IMPORTED[kind]
    SETUP.get(kind, lambda: None)()
    job = run(kind, GOOD[kind])
    assert (job.status, job.imported_rows, job.errors, job.message) == ("succeeded", len(GOOD[kind]) - 1, [], "")
    db.session.expire_all()
    assert observe() == expected


def test_genealogy_refuses_an_input_that_came_after_the_lot_was_made(run):
    run("material_lots", [["supplier_code", "material", "lot_number", "received_on"], ["S1", "resin", "M-LATE",
                                                                                       "2026-03-01"]])
    run("product_lots", [PRODUCT_LOT_HEADER, [GTIN, "L-LATE", "10", "2026-04-01", "2028-04-01"]])
    job = run("genealogy", [["product_lot", "material", "material_lot", "component_lot"],
                            ["L-hold", "resin", "M-LATE", ""], ["L-hold", "", "", "L-LATE"],
                            ["L-LATE", "resin", "M-LATE", ""], ["L-LATE", "", "", "L-hold"]])
    assert (job.status, triples(job)) == ("failed", [(2, "material_lot", "received_after_made"),
                                                     (3, "component_lot", "made_after_made")])
    assert job.errors[0]["reason"] == "material lot M-LATE was received on 2026-03-01, after lot L-hold was made " \
                                      "on 2026-01-01"
    assert count(GenealogyEdge) == 0


def test_an_xlsx_file_with_date_and_number_cells_imports_like_csv(run):
    content = xlsx_bytes([
        ["Product UDI-DI (GTIN)", "Lot number", "Quantity", "Manufactured on", "Expiry date", "Labels / UDI checked"],
        [GTIN, "X1", 250, date(2026, 11, 2), date(2028, 11, 1), True],
        [],  # an empty row is skipped, and the sheet's row numbers still count it
        [int(GTIN), "X2", 1200.0, date(2026, 11, 3), date(2028, 11, 2), "no"],  # a GTIN typed as a number
    ])
    job = run("product_lots", content, filename="lots.XLSX")
    assert (job.status, job.imported_rows) == ("succeeded", 2)
    assert rows_of(select(ProductLot.lot_number, ProductLot.quantity, ProductLot.manufactured_on,
                          ProductLot.expiry_on, ProductLot.labels_checked)
                   .where(ProductLot.lot_number.in_(("X1", "X2"))).order_by(ProductLot.lot_number)) == [
        ("X1", 250, date(2026, 11, 2), date(2028, 11, 1), True),
        ("X2", 1200, date(2026, 11, 3), date(2028, 11, 2), False)]


def test_an_xlsx_refusal_names_the_sheet_row(run):
    content = xlsx_bytes([PRODUCT_LOT_HEADER, [GTIN, "X1", 5, date(2026, 11, 2), date(2028, 1, 1)], [],
                          [GTIN, "X2", 5, date(2026, 11, 2), date(2026, 11, 1)]])
    job = run("product_lots", content, filename="lots.xlsx")
    assert (job.status, triples(job)) == ("failed", [(4, "expiry_on", "date_order")])


@pytest.mark.parametrize("header", [
    PRODUCT_LOT_HEADER,
    ["Product UDI-DI (GTIN)", "Lot number", "Quantity", "Manufactured on", "Expiry date"],
    ["产品 UDI-DI（GTIN）", "批号", "数量", "生产日期", "有效期至"],
    [" GTIN ", "Lot-Number", "QUANTITY", "manufactured on", "expiry_on"],
], ids=["column names", "English labels", "Chinese labels", "spacing and case"])
def test_headers_may_be_names_or_labels_in_either_language(run, header):
    job = run("product_lots", [header, [GTIN, "Z1", "7", "2026-11-01", "2028-11-01"]])
    assert (job.status, job.imported_rows) == ("succeeded", 1)
    assert db.session.scalar(select(ProductLot.quantity).where(ProductLot.lot_number == "Z1")) == 7


def _lot(gtin=GTIN, lot="L9", quantity="10", made="2026-11-01", expires="2028-11-01") -> list[str]:
    return [gtin, lot, quantity, made, expires]


GOOD_LOT = _lot(lot="L8")


@pytest.mark.parametrize(("kind", "rows", "expected"), [
    pytest.param("product_lots", [PRODUCT_LOT_HEADER, GOOD_LOT, _lot(gtin=GTIN_NEW)],
                 [(3, "gtin", "unknown_product")], id="unknown product"),
    pytest.param("product_lots", [PRODUCT_LOT_HEADER, GOOD_LOT, _lot(gtin=BAD_CHECK_DIGIT)],
                 [(3, "gtin", "bad_gtin")], id="bad GTIN check digit"),
    pytest.param("product_lots", [PRODUCT_LOT_HEADER, GOOD_LOT, _lot(lot="L8")],
                 [(3, "lot_number", "duplicate_in_file")], id="duplicate lot in the file"),
    pytest.param("product_lots", [PRODUCT_LOT_HEADER, GOOD_LOT, _lot(lot="L-hold")],
                 [(3, "lot_number", "exists")], id="lot already in the database"),
    pytest.param("product_lots", [PRODUCT_LOT_HEADER, GOOD_LOT, _lot(made="2026-11-01", expires="2026-10-31")],
                 [(3, "expiry_on", "date_order")], id="expiry before manufacture"),
    pytest.param("product_lots", [PRODUCT_LOT_HEADER, GOOD_LOT, _lot(quantity="-1")],
                 [(3, "quantity", "negative")], id="negative quantity"),
    pytest.param("product_lots", [PRODUCT_LOT_HEADER, GOOD_LOT, _lot(quantity="1.5"), _lot(lot="L7", quantity="nan"),
                                  _lot(lot="L6", quantity="inf")],
                 [(3, "quantity", "bad_integer"), (4, "quantity", "bad_integer"), (5, "quantity", "bad_integer")],
                 id="quantity not a whole number"),
    pytest.param("product_lots", [PRODUCT_LOT_HEADER, GOOD_LOT, _lot(made="2026-02-30", expires="1.1.2028")],
                 [(3, "manufactured_on", "bad_date"), (3, "expiry_on", "bad_date")], id="bad dates"),
    pytest.param("product_lots", [PRODUCT_LOT_HEADER, GOOD_LOT, _lot(lot=" ", quantity="")],
                 [(3, "lot_number", "required"), (3, "quantity", "required")], id="required value missing"),
    pytest.param("product_lots", [[*PRODUCT_LOT_HEADER, "colour"], [*GOOD_LOT, "blue"]],
                 [(1, "colour", "unknown_column")], id="unknown column"),
    pytest.param("product_lots", [["gtin", "lot_number"], GOOD_LOT[:2]],
                 [(1, "quantity", "missing_column")], id="missing required column"),
    pytest.param("product_lots", [PRODUCT_LOT_HEADER], [(1, "", "empty_file")], id="header only"),
    pytest.param("material_lots", [["supplier_code", "material", "lot_number"], ["S1", "resin", "M5"],
                                   ["S9", "resin", "M6"], ["S7", "resin", "M7"]],
                 [(3, "supplier_code", "supplier_suspended"), (4, "supplier_code", "unknown_supplier")],
                 id="suspended or unknown supplier"),
    pytest.param("shipments", [SHIPMENT_HEADER, ["L-released", "H1", "5", "2026-11-20", "", ""],
                               ["L-released", "H1", "0", "2026-11-20", "", ""],
                               ["L-released", "H1", "-3", "2026-11-20", "", ""]],
                 [(3, "quantity", "not_positive"), (4, "quantity", "not_positive")], id="shipment quantity not > 0"),
    pytest.param("shipments", [SHIPMENT_HEADER, ["L-released", "H1", "5", "2028-01-02", "", ""],
                               ["L-released", "H1", "5", "2025-12-31", "", ""],
                               ["L-released", "X9", "5", "2026-11-20", "", ""]],
                 [(2, "shipped_on", "expired_at_shipment"), (3, "shipped_on", "date_order"),
                  (4, "customer_code", "unknown_customer")], id="shipment dates and consignee"),
    pytest.param("genealogy", [["product_lot", "material", "material_lot", "component_lot"],
                               ["L-hold", "resin", "M1", ""], ["L-hold", "resin", "M1", "L-released"],
                               ["L-hold", "", "", ""], ["L-hold", "", "", "L-hold"], ["L-hold", "", "M1", ""]],
                 [(3, "material_lot", "one_component"), (4, "material_lot", "one_component"),
                  (5, "component_lot", "self_component"), (6, "material", "ambiguous_lot")],
                 id="genealogy component"),
    pytest.param("customers", [["code", "name", "kind", "parent_code"], ["H5", "A", "hospital", "D1"],
                               ["H6", "B", "hospital", "D404"], ["H7", "C", "hospital", "H1"]],
                 [(3, "parent_code", "unknown_customer"), (4, "parent_code", "parent_not_distributor")],
                 id="parent distributor"),
    pytest.param("customers", [["code", "name", "kind", "country", "email"], ["H5", "A", "clinic", "CHN", "a@b"]],
                 [(2, "kind", "bad_choice"), (2, "country", "bad_country"), (2, "email", "bad_email")],
                 id="customer fields"),
])
@pytest.mark.filterwarnings("error::ResourceWarning")  # a file a refusal leaves open fails the test
@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
def test_a_file_with_a_bad_row_imports_nothing_and_names_each_problem(run, uploads, kind, rows, expected):
    model = MODELS[kind]
    before = count(model)
    job = run(kind, rows)
    gc.collect()
    assert (job.status, triples(job)) == ("failed", expected)
    assert job.imported_rows == 0 and all(error["reason"] for error in job.errors)
    assert count(model) == before
    assert list(uploads.iterdir()) == []  # the stored upload is deleted once refused
    assert imports.job_status(job.id)["error_count"] == len(expected)
    later = run(kind, GOOD[kind])
    assert (later.status, count(model)) == ("succeeded", before + len(GOOD[kind]) - 1)


def test_a_reason_is_stored_in_english_and_rendered_in_chinese(run):
    job = run("product_lots", [PRODUCT_LOT_HEADER, _lot(gtin=BAD_CHECK_DIGIT), _lot(lot="L7", quantity="-2")])
    assert [error["reason"] for error in job.errors] == [
        f"bad GTIN check digit: expected {GTIN[-1]}", "must not be negative"]
    assert import_rules.reason_text(job.errors[1], "zh-CN") == "不能为负数"


@pytest.mark.parametrize("status", ["quarantine", "hold", "recalled"])
def test_a_lot_not_released_cannot_be_shipped_but_a_distributors_onward_shipment_is_kept(run, status):
    own = run("shipments", [SHIPMENT_HEADER, [f"L-{status}", "H1", "5", "2026-11-20", "DN-7", ""]])
    assert (own.status, triples(own), own.errors[0]["params"]) == (
        "failed", [(2, "product_lot", "not_shippable")], {"value": f"L-{status}", "status": status})
    onward = run("shipments", [SHIPMENT_HEADER, [f"L-{status}", "H1", "5", "2026-11-20", "DN-7", "D1"]])
    assert onward.status == "succeeded"
    assert _shipments() == [(f"L-{status}", "H1", "D1", 5, date(2026, 11, 20))]


def test_errors_are_listed_by_line_whichever_check_found_them(run):
    job = run("product_lots", [PRODUCT_LOT_HEADER,
                               _lot(gtin=GTIN_NEW, lot="A"),  # found when the chunk meets the database
                               _lot(lot="B", made="yesterday"),  # found while parsing
                               _lot(lot="A")])  # found while parsing: same lot as line 2
    assert triples(job) == [(2, "gtin", "unknown_product"), (3, "manufactured_on", "bad_date"),
                            (4, "lot_number", "duplicate_in_file")]


@pytest.mark.parametrize(("filename", "content"), [("lots.csv", b""), ("lots.txt", b"gtin\n")])
def test_an_empty_upload_or_another_file_type_is_refused_before_a_job_exists(plant, user, filename, content):
    with pytest.raises(ValidationFailed) as refused:
        imports.start_import("product_lots", filename, content, user("admin"), now=T0)
    assert refused.value.status == 400
    assert count(ImportJob) == 0


def test_a_successful_import_is_audited_once_with_the_files_hash(run, user):
    content = csv_bytes(GOOD["product_lots"])
    job = run("product_lots", content)
    refused = run("product_lots", content)  # now every lot exists
    assert (job.status, refused.status) == ("succeeded", "failed")
    events = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "import.completed")).all()
    assert [(e.object_type, e.object_id, e.actor_id, e.at) for e in events] == [
        ("import_job", str(job.id), user("admin").id, T0)]
    assert events[0].new == {"kind": "product_lots", "file": "data.csv", "rows": 2,
                             "sha256": hashlib.sha256(content).hexdigest()}
    assert job.sha256 == hashlib.sha256(content).hexdigest()


def test_progress_reports_growing_counts_up_to_the_row_count(run, monkeypatch):
    monkeypatch.setattr(import_rules, "CHUNK", 2)
    reports = []
    rows = [PRODUCT_LOT_HEADER, *(_lot(lot=f"P{i}") for i in range(5))]
    job = run("product_lots", rows, progress=lambda read, expected: reports.append((read, expected)))
    assert reports == [(2, 5), (4, 5), (5, 5)]
    assert imports.job_status(job.id)["read"] == job.imported_rows == 5


def test_another_worker_sees_a_running_import_on_its_row(app, run, monkeypatch):
    """Another worker has only the database: the row carries the row count from the start and, on a database with
    concurrent writers (PostgreSQL), the rows read per chunk with a fresh heartbeat."""
    monkeypatch.setattr(import_rules, "CHUNK", 2)
    seen = []

    def watch(read: int, expected: int) -> None:  # a poll (GET) on a connection of its own
        with app.test_request_context("/lots/imports/1.json"), db.engine.connect() as other_worker:
            row = other_worker.execute(select(ImportJob.status, ImportJob.rows_read, ImportJob.rows_expected,
                                              ImportJob.heartbeat_at)).one()
        seen.append((row.status, row.rows_read, row.rows_expected, row.heartbeat_at is not None))

    job = run("product_lots", [PRODUCT_LOT_HEADER, *(_lot(lot=f"P{i}") for i in range(5))], progress=watch)

    concurrent = db.engine.dialect.name != "sqlite"
    assert seen == [("running", read if concurrent else 0, 5, True) for read in (2, 4, 5)]
    assert (job.status, job.rows_read, job.rows_expected) == ("succeeded", 5, 5)


def test_an_import_whose_worker_died_is_failed_when_polled_or_by_the_scheduler(app, uploads, user):
    from app.scheduler import _job
    jobs = [imports.start_import("products", "p.csv", b"gtin,name\n", user("admin")) for _ in range(3)]
    polled, swept, fresh = (job.id for job in jobs)
    stale_minutes = app.config["IMPORT_STALE_MINUTES"]
    for job_id in (polled, swept):  # their worker died with them: no heartbeat since they were started
        db.session.get(ImportJob, job_id).created_at -= timedelta(minutes=stale_minutes + 1)
    db.session.commit()

    status = imports.job_status(polled)
    db.session.rollback()  # end this worker's transaction: the scheduler's thread writes
    _job(app, "imports")

    assert status["status"] == "failed" and "wrote no progress for 10 minutes" in status["message"]
    db.session.expire_all()
    assert [db.session.get(ImportJob, i).status for i in (polled, swept, fresh)] == ["failed", "failed", "running"]
    assert sorted(uploads.iterdir()) == [imports.stored_file(db.session.get(ImportJob, fresh))]
    again = imports.run_import(polled)  # a queue delivering the job again finds it finished and leaves it
    assert (again.status, again.message) == ("failed", status["message"])


def test_a_stock_count_replaces_the_quantity_held_at_that_location(run):
    run("stock", GOOD["stock"])
    job = run("stock", [["product_lot", "location", "quantity"], ["L-released", "WH-A", "25"],
                        ["L-hold", "WH-A", "3"]])
    assert job.status == "succeeded"
    assert _stock() == [("L-released", "WH-A", 25), ("L-hold", "WH-A", 3), ("L-released", "WH-B", 0)]


def test_a_failed_final_inspection_in_a_file_opens_a_capa_for_its_lot(run):
    job = run("inspections", [["stage", "product_lot", "result", "inspected_on"],
                              ["final", "L-quarantine", "fail", "2026-11-20"],
                              ["final", "L-hold", "pass", "2026-11-20"]])
    assert (job.status, job.imported_rows) == ("succeeded", 2)
    capa = db.session.scalar(select(ProcessInstance))
    assert rows_of(select(InstanceLot.instance_id, ProductLot.lot_number, InstanceLot.role).join(ProductLot)) == [
        (capa.id, "L-quarantine", "subject")]
    assert {row[1]: row[6] for row in _inspections()} == {"L-quarantine": capa.id, "L-hold": None}


def test_twenty_thousand_lots_import_in_one_go_or_not_at_all(run):
    lines = [",".join(PRODUCT_LOT_HEADER)] + [f"{GTIN},B{i:05d},{i % 900},2026-11-01,2028-11-01"
                                             for i in range(20_000)]
    good = "\n".join(lines).encode()
    bad = "\n".join([*lines, f"{GTIN_NEW},B99999,1,2026-11-01,2028-11-01"]).encode()
    before = count(ProductLot)
    started = time.process_time()  # CPU time: the test machine is shared, wall time would be flaky
    refused = run("product_lots", bad)
    assert (refused.status, triples(refused)) == ("failed", [(20_002, "gtin", "unknown_product")])
    assert count(ProductLot) == before
    job = run("product_lots", good)
    assert time.process_time() - started < 10
    assert (job.status, job.imported_rows, count(ProductLot)) == ("succeeded", 20_000, before + 20_000)
    assert db.session.scalar(select(ProductLot.quantity).where(ProductLot.lot_number == "B19999")) == 19_999 % 900

"""Forward and backward trace over the genealogy and shipments, as recursive SQL (CTEs) on indexed edges;
the search box that finds where to start, the affected list for recalls, and XLSX/CSV exports."""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import Select, and_, literal, or_, select, text, true, union
from sqlalchemy.orm import joinedload

from app.exceptions import ValidationFailed
from app.extensions import db
from app.models import (
    Customer,
    GenealogyEdge,
    Inspection,
    MaterialLot,
    Product,
    ProductLot,
    SerialNumber,
    Shipment,
    Supplier,
)
from app.services.lots import sterilization
from app.services.lots.identifiers import InvalidCode, ScannedCode, parse_code

MATCH_LIMIT = 500  # a GTIN alone matches every lot of the product; the page shows the first ones


@dataclass
class ConsigneeLine:
    """One consignee reached by a trace, with the quantity and number of shipments it received."""

    customer: Customer
    quantity: int
    shipments: int


@dataclass
class ForwardTrace:
    """What a set of material lots reached: product lots, shipments (direct and onward) and consignees."""

    product_lots: list[ProductLot] = field(default_factory=list)
    shipments: list[Shipment] = field(default_factory=list)
    consignee_lines: list[ConsigneeLine] = field(default_factory=list)

    @property
    def consignees(self) -> list[Customer]:
        return [line.customer for line in self.consignee_lines]

    @property
    def quantity_shipped(self) -> int:
        """Return what we shipped ourselves (a distributor's onward shipment is the same goods again)."""
        return sum(s.quantity for s in self.shipments if s.from_customer_id is None)

    def as_dict(self) -> dict[str, Any]:
        """Describe the affected lots, shipments and consignees as plain data (a handler's result)."""
        return {
            "lots": [_lot_dict(lot) for lot in self.product_lots],
            "shipments": [_shipment_dict(shipment) for shipment in self.shipments],
            "consignees": [{**_customer_dict(line.customer), "quantity": line.quantity, "shipments": line.shipments}
                           for line in self.consignee_lines],
            "totals": {"lots": len(self.product_lots), "shipments": len(self.shipments),
                       "consignees": len(self.consignee_lines),
                       "quantity_made": sum(lot.quantity for lot in self.product_lots),
                       "quantity_shipped": self.quantity_shipped},
        }


@dataclass
class BackwardTrace:
    """Where a product lot came from: every component lot, the material lots, their suppliers, inspections."""

    product_lots: list[ProductLot] = field(default_factory=list)
    material_lots: list[MaterialLot] = field(default_factory=list)
    suppliers: list[Supplier] = field(default_factory=list)
    sterilization_batches: list[str] = field(default_factory=list)
    inspections: list[Inspection] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "lots": [_lot_dict(lot) for lot in self.product_lots],
            "material_lots": [{"id": m.id, "material": m.material, "lot_number": m.lot_number,
                               "supplier": m.supplier.code, "status": m.status,
                               "expiry_on": _iso(m.expiry_on)} for m in self.material_lots],
            "suppliers": [{"code": s.code, "name": s.name, "status": s.status} for s in self.suppliers],
            "sterilization_batches": self.sterilization_batches,
            "inspections": [_inspection_dict(i) for i in self.inspections],
        }


def _iso(value: date | None) -> str | None:
    return value.isoformat() if value else None


def _lot_dict(lot: ProductLot) -> dict[str, Any]:
    return {"id": lot.id, "lot_number": lot.lot_number, "product": lot.product.name, "gtin": lot.product.gtin,
            "quantity": lot.quantity, "manufactured_on": _iso(lot.manufactured_on), "expiry_on": _iso(lot.expiry_on),
            "sterilization_batch": lot.sterilization_batch, "status": lot.status}


def _customer_dict(customer: Customer) -> dict[str, Any]:
    return {"id": customer.id, "code": customer.code, "name": customer.name, "kind": customer.kind,
            "region": customer.region, "country": customer.country, "contact": customer.contact,
            "email": customer.email}


def _shipment_dict(shipment: Shipment) -> dict[str, Any]:
    return {"id": shipment.id, "document_no": shipment.document_no, "lot_number": shipment.product_lot.lot_number,
            "consignee": shipment.customer.code, "consignee_name": shipment.customer.name,
            "region": shipment.customer.region, "quantity": shipment.quantity,
            "shipped_on": _iso(shipment.shipped_on),
            "via": shipment.from_customer.code if shipment.from_customer else None}


def _inspection_dict(inspection: Inspection) -> dict[str, Any]:
    lot = inspection.product_lot or inspection.material_lot
    return {"id": inspection.id, "stage": inspection.stage, "result": inspection.result,
            "lot_number": lot.lot_number, "inspected_on": _iso(inspection.inspected_on),
            "inspector": inspection.inspector, "results": inspection.results,
            "capa_instance_id": inspection.capa_instance_id}


def _affected_lots(material_lot_ids: list[int], start_lots: Select | None = None):
    """Return a recursive CTE of product lots made from the material lots (or starting at start_lots),
    and every lot that used them as a component, through any number of levels."""
    seeds = []
    if material_lot_ids:
        seeds.append(select(GenealogyEdge.product_lot_id.label("lot_id")).where(
            GenealogyEdge.material_lot_id.in_(material_lot_ids)))
    if start_lots is not None:
        seeds.append(start_lots)
    seed = seeds[0] if len(seeds) == 1 else select(union(*seeds).subquery().c[0].label("lot_id"))
    affected = seed.cte("affected", recursive=True)
    upward = select(GenealogyEdge.product_lot_id).join(affected, GenealogyEdge.component_lot_id == affected.c.lot_id)
    return affected.union(upward)  # UNION (not ALL) ends the recursion on diamonds


def _reached_shipments(lots):
    """Return a recursive CTE of shipments of those lots, following distributors' onward shipments."""
    first = select(Shipment.id.label("shipment_id"), Shipment.customer_id, Shipment.product_lot_id).where(
        Shipment.product_lot_id.in_(select(lots.c.lot_id)), Shipment.from_customer_id.is_(None))
    reached = first.cte("reached", recursive=True)
    if db.session.get_bind().dialect.name == "postgresql":
        # PostgreSQL guesses a recursive worktable at 10x its first step and then hash-joins it against every
        # shipment (a full scan per level, seconds); a LATERAL subquery fenced with OFFSET 0 stays an index probe
        # on ix_shipments_from_lot per reached shipment. SQLite already plans the join below that way.
        probe = (select(Shipment.id, Shipment.customer_id, Shipment.product_lot_id)
                 .where(Shipment.from_customer_id == reached.c.customer_id,
                        Shipment.product_lot_id == reached.c.product_lot_id).offset(0).lateral("onward"))
        onward = select(probe.c.id, probe.c.customer_id, probe.c.product_lot_id).select_from(reached).join(
            probe, true())
    else:
        onward = select(Shipment.id, Shipment.customer_id, Shipment.product_lot_id).join(
            reached, (Shipment.from_customer_id == reached.c.customer_id)
            & (Shipment.product_lot_id == reached.c.product_lot_id))
    return reached.union(onward)


def _forward(material_lot_ids: list[int], start_lots: Select | None) -> ForwardTrace:
    lots = _affected_lots(material_lot_ids, start_lots)
    reached = _reached_shipments(lots)
    session = db.session
    if session.get_bind().dialect.name == "postgresql":
        # the recursive CTEs' row guesses are huge, so PostgreSQL would JIT-compile the query (~0.25 s) for nothing
        session.execute(text("SET LOCAL jit = off"))
    # lots first: each shipment's product_lot then comes from the session's identity map, with no join of
    # product_lots (PostgreSQL hash-joins all of it when it overestimates the recursive CTE's rows)
    product_lots = list(session.scalars(select(ProductLot).where(ProductLot.id.in_(select(lots.c.lot_id)))
                                        .options(joinedload(ProductLot.product)).order_by(ProductLot.lot_number)))
    shipments = list(session.scalars(
        select(Shipment).where(Shipment.id.in_(select(reached.c.shipment_id)))
        .options(joinedload(Shipment.customer), joinedload(Shipment.from_customer))
        .order_by(Shipment.shipped_on, Shipment.id)))
    totals: dict[int, ConsigneeLine] = {}
    for shipment in shipments:  # from the shipments already loaded: no second run of the recursive CTEs
        line = totals.get(shipment.customer_id)
        if line is None:
            line = totals[shipment.customer_id] = ConsigneeLine(shipment.customer, 0, 0)
        line.quantity += shipment.quantity
        line.shipments += 1
    lines = sorted(totals.values(), key=lambda line: line.customer.code)
    return ForwardTrace(product_lots=product_lots, shipments=shipments, consignee_lines=lines)


def forward(material_lot_ids: list[int], product_lot_ids: list[int] | None = None) -> ForwardTrace:
    """Trace material lots (and product lots) forward to every product lot, shipment and consignee."""
    product_lot_ids = list(product_lot_ids or [])
    if not material_lot_ids and not product_lot_ids:
        return ForwardTrace()
    start = (select(ProductLot.id.label("lot_id")).where(ProductLot.id.in_(product_lot_ids))
             if product_lot_ids else None)
    return _forward(list(material_lot_ids), start)


def find_affected(*, material_lot_ids: list[int] = (), product_lot_ids: list[int] = (),
                  sterilization_batches: list[str] = (), product_id: int | None = None,
                  manufactured_from: date | None = None, manufactured_to: date | None = None) -> ForwardTrace:
    """Find the lots, shipments and consignees affected by material lots, product lots, sterilization
    batches or a product's manufacturing date range (any combination; the union is traced forward)."""
    conditions = []
    if product_lot_ids:
        conditions.append(ProductLot.id.in_(list(product_lot_ids)))
    if sterilization_batches:
        conditions.append(ProductLot.sterilization_batch.in_(list(sterilization_batches)))
    if manufactured_from or manufactured_to:
        period = [ProductLot.manufactured_on >= manufactured_from] if manufactured_from else []
        period += [ProductLot.manufactured_on <= manufactured_to] if manufactured_to else []
        if product_id is not None:
            period.append(ProductLot.product_id == product_id)
        conditions.append(and_(*period))
    elif product_id is not None:
        conditions.append(ProductLot.product_id == product_id)
    if not material_lot_ids and not conditions:
        return ForwardTrace()
    start = select(ProductLot.id.label("lot_id")).where(or_(*conditions)) if conditions else None
    return _forward(list(material_lot_ids), start)


def backward(product_lot_id: int | list[int]) -> BackwardTrace:
    """Trace product lots back to their component lots, material lots, suppliers, sterilization batches
    and inspections."""
    ids = [product_lot_id] if isinstance(product_lot_id, int) else list(product_lot_id)
    if not ids:
        return BackwardTrace()
    start = (select(literal(ids[0]).label("lot_id")) if len(ids) == 1
             else select(ProductLot.id.label("lot_id")).where(ProductLot.id.in_(ids)))
    lots = start.cte("components", recursive=True)
    down = select(GenealogyEdge.component_lot_id).join(lots, GenealogyEdge.product_lot_id == lots.c.lot_id).where(
        GenealogyEdge.component_lot_id.is_not(None))
    lots = lots.union(down)
    materials = select(GenealogyEdge.material_lot_id).where(
        GenealogyEdge.product_lot_id.in_(select(lots.c.lot_id)), GenealogyEdge.material_lot_id.is_not(None))
    session = db.session
    product_lots = list(session.scalars(select(ProductLot).where(ProductLot.id.in_(select(lots.c.lot_id)))
                                        .options(joinedload(ProductLot.product)).order_by(ProductLot.lot_number)))
    material_lots = list(session.scalars(select(MaterialLot).where(MaterialLot.id.in_(materials))
                                         .options(joinedload(MaterialLot.supplier)).order_by(MaterialLot.lot_number)))
    suppliers = list(session.scalars(select(Supplier).where(Supplier.id.in_(
        select(MaterialLot.supplier_id).where(MaterialLot.id.in_(materials)))).order_by(Supplier.code)))
    inspections = list(session.scalars(select(Inspection).where(or_(
        Inspection.product_lot_id.in_(select(lots.c.lot_id)), Inspection.material_lot_id.in_(materials)))
        .order_by(Inspection.inspected_on, Inspection.id)))
    return BackwardTrace(product_lots=product_lots, material_lots=material_lots, suppliers=suppliers,
                         sterilization_batches=sorted({lot.sterilization_batch for lot in product_lots
                                                       if lot.sterilization_batch}),
                         inspections=inspections)


# --- search and report -----------------------------------------------------------------------------------------------

@dataclass
class SearchMatch:
    """What a search text or scanned code found to trace from."""

    code: ScannedCode
    product_lots: list[ProductLot] = field(default_factory=list)
    material_lots: list[MaterialLot] = field(default_factory=list)
    shipments: list[Shipment] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.product_lots or self.material_lots or self.shipments)


def _match_text(code: ScannedCode) -> SearchMatch:
    text = code.text
    session = db.session
    lot_ids = union(select(ProductLot.id).where(ProductLot.lot_number == text),
                    select(ProductLot.id).where(ProductLot.sterilization_batch == text),
                    select(SerialNumber.product_lot_id).where(SerialNumber.serial == text))
    return SearchMatch(
        code=code,
        product_lots=list(session.scalars(select(ProductLot).where(ProductLot.id.in_(lot_ids))
                                          .order_by(ProductLot.lot_number).limit(MATCH_LIMIT))),
        material_lots=list(session.scalars(select(MaterialLot).where(MaterialLot.lot_number == text)
                                           .order_by(MaterialLot.material).limit(MATCH_LIMIT))),
        shipments=list(session.scalars(select(Shipment).where(Shipment.document_no == text)
                                       .order_by(Shipment.id).limit(MATCH_LIMIT))),
    )


def _match_gs1(code: ScannedCode) -> SearchMatch:
    query = select(ProductLot).join(Product, Product.id == ProductLot.product_id)
    if code.gtin:
        query = query.where(Product.gtin == code.gtin)
    if code.lot:
        query = query.where(ProductLot.lot_number == code.lot)
    if code.serial:
        query = query.where(ProductLot.id.in_(select(SerialNumber.product_lot_id).where(
            SerialNumber.serial == code.serial)))
    lots = list(db.session.scalars(query.order_by(ProductLot.lot_number).limit(MATCH_LIMIT)))
    return SearchMatch(code=code, product_lots=lots)


def search(text: str) -> SearchMatch:
    """Find the lots or shipments a lot number, serial, document no., GS1 element string or UDI names."""
    text = (text or "").strip()
    if not text:
        raise ValidationFailed("Enter a lot number, serial, document number or scan a UDI.")
    try:
        code = parse_code(text)
    except InvalidCode as err:
        if text.isdigit():  # a numeric lot number can look like a GTIN with a wrong check digit
            match = _match_text(ScannedCode(text=text))
            if not match.empty:
                return match
        raise ValidationFailed(str(err)) from err
    if not code.is_gs1:
        return _match_text(code)
    match = _match_gs1(code)
    if match.empty and code.gtin and not code.lot and not code.serial:
        return _match_text(ScannedCode(text=text))  # a numeric lot number that happens to be a valid GTIN
    return match


@dataclass
class TraceReport:
    """A search and both directions of trace from what it found, with counts for the page and exports."""

    query: str
    match: SearchMatch
    forward: ForwardTrace
    backward: BackwardTrace | None
    # product lot id -> the sterilization batch records it was in (every product lot of the report, one query)
    sterilization: dict[int, list[sterilization.LotBatch]] = field(default_factory=dict)

    @property
    def product_lots(self) -> list[ProductLot]:
        """Every product lot the report names (found, reached forward, traced backward), each once."""
        lots = {lot.id: lot for lot in self.match.product_lots}
        lots.update((lot.id, lot) for lot in self.forward.product_lots)
        lots.update((lot.id, lot) for lot in (self.backward.product_lots if self.backward else []))
        return sorted(lots.values(), key=lambda lot: lot.lot_number)

    def batches_of(self, lots: list[ProductLot]) -> list[tuple[sterilization.LotBatch, list[ProductLot]]]:
        """The batch records these lots were in, each once with its lots of these, oldest cycle first."""
        found: dict[int, tuple[sterilization.LotBatch, list[ProductLot]]] = {}
        for lot in lots:
            for record in self.sterilization.get(lot.id, []):
                found.setdefault(record.batch.id, (record, []))[1].append(lot)
        return sorted(found.values(), key=lambda item: (item[0].batch.processed_on, item[0].batch.id))

    def unrecorded_batches(self, lots: list[ProductLot]) -> list[str]:
        """Batch numbers these lots name that have no sterilization record."""
        recorded = {record.batch.batch_number for lot in lots for record in self.sterilization.get(lot.id, [])}
        return sorted({lot.sterilization_batch for lot in lots if lot.sterilization_batch} - recorded)

    @property
    def sterilization_records(self) -> list[dict[str, Any]]:
        """One row per product lot and sterilization batch record it was in."""
        return [sterilization.lot_batch_dict(lot, record) for lot in self.product_lots
                for record in self.sterilization.get(lot.id, [])]

    @property
    def consignees(self) -> list[ConsigneeLine]:
        return self.forward.consignee_lines

    @property
    def counts(self) -> dict[str, int]:
        backward = self.backward or BackwardTrace()
        return {"matched_product_lots": len(self.match.product_lots),
                "matched_material_lots": len(self.match.material_lots),
                "matched_shipments": len(self.match.shipments),
                "product_lots": len(self.forward.product_lots), "shipments": len(self.forward.shipments),
                "consignees": len(self.forward.consignee_lines),
                "quantity_shipped": self.forward.quantity_shipped,
                "component_lots": max(len(backward.product_lots) - len(self.match.product_lots), 0),
                "material_lots": len(backward.material_lots), "suppliers": len(backward.suppliers),
                "inspections": len(backward.inspections)}

    def as_dict(self) -> dict[str, Any]:
        code = self.match.code
        return {
            "query": self.query,
            "code": {"gtin": code.gtin, "lot": code.lot, "serial": code.serial, "expiry": _iso(code.expiry),
                     "production": _iso(code.production), "is_gs1": code.is_gs1},
            "matched": {"product_lots": [lot.lot_number for lot in self.match.product_lots],
                        "material_lots": [lot.lot_number for lot in self.match.material_lots],
                        "shipments": [s.document_no for s in self.match.shipments]},
            "counts": self.counts,
            "forward": self.forward.as_dict(),
            "backward": self.backward.as_dict() if self.backward else None,
            "sterilization_records": self.sterilization_records,
        }


def trace_report(text: str) -> TraceReport:
    """Search, then trace forward from everything found and backward from the product lots and shipments."""
    match = search(text)
    product_ids = list(dict.fromkeys([lot.id for lot in match.product_lots]
                                     + [s.product_lot_id for s in match.shipments]))
    material_ids = [lot.id for lot in match.material_lots]
    report = TraceReport(query=text.strip(), match=match, forward=forward(material_ids, product_ids),
                         backward=backward(product_ids) if product_ids else None)
    report.sterilization = sterilization.batches_for_lots(report.product_lots)
    return report


def export_sheets(report: TraceReport) -> list[tuple[str, list[str], list[list[Any]]]]:
    """Lay a report out as named tables (summary, lots, shipments, consignees, materials, suppliers, inspections)."""
    backward = report.backward or BackwardTrace()
    code = report.match.code
    summary = [["query", report.query], ["gtin", code.gtin or ""], ["lot", code.lot or ""],
               ["serial", code.serial or ""], ["expiry", _iso(code.expiry) or ""],
               *([name, value] for name, value in report.counts.items())]
    lot_header = ["lot_number", "product", "gtin", "quantity", "manufactured_on", "expiry_on",
                  "sterilization_batch", "status"]
    return [
        ("Summary", ["item", "value"], summary),
        ("Product lots", lot_header, [[_lot_dict(lot)[k] for k in lot_header] for lot in report.forward.product_lots]),
        ("Shipments", ["document_no", "lot_number", "consignee", "consignee_name", "region", "quantity",
                       "shipped_on", "via"],
         [list(_shipment_dict(s).values())[1:] for s in report.forward.shipments]),
        ("Consignees", ["code", "name", "kind", "region", "country", "contact", "email", "quantity", "shipments"],
         [[line.customer.code, line.customer.name, line.customer.kind, line.customer.region, line.customer.country,
           line.customer.contact, line.customer.email, line.quantity, line.shipments]
          for line in report.forward.consignee_lines]),
        ("Components", lot_header, [[_lot_dict(lot)[k] for k in lot_header] for lot in backward.product_lots]),
        ("Material lots", ["material", "lot_number", "supplier", "status", "expiry_on"],
         [[m.material, m.lot_number, m.supplier.code, m.status, _iso(m.expiry_on)] for m in backward.material_lots]),
        ("Suppliers", ["code", "name", "status"], [[s.code, s.name, s.status] for s in backward.suppliers]),
        ("Inspections", ["lot_number", "stage", "result", "inspected_on", "inspector", "results"],
         [[d["lot_number"], d["stage"], d["result"], d["inspected_on"], d["inspector"], d["results"]]
          for d in map(_inspection_dict, backward.inspections)]),
        ("Sterilization", STERILIZATION_HEADER,
         [[row[name] for name in STERILIZATION_HEADER] for row in report.sterilization_records]),
    ]


STERILIZATION_HEADER = ["lot_number", "batch_number", "method", "processed_on", "sterilizer", "bi_result", "status",
                        "current"]


def export_xlsx(report: TraceReport) -> bytes:
    """Return the report as an XLSX workbook, one sheet per table."""
    from openpyxl import Workbook
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    def cell(value):
        # A worksheet cannot hold control characters (a searched text may carry them): they are left out.
        return ILLEGAL_CHARACTERS_RE.sub("", value) if isinstance(value, str) else value

    workbook = Workbook(write_only=True)
    for title, header, rows in export_sheets(report):
        sheet = workbook.create_sheet(title)
        sheet.append(header)
        for row in rows:
            sheet.append([cell(value) for value in row])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def export_csv(report: TraceReport) -> str:
    """Return the report as one CSV: each table under its own header row, the first column naming the table."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for title, header, rows in export_sheets(report):
        writer.writerow(["section", *header])
        writer.writerows([title, *("" if value is None else value for value in row)] for row in rows)
    return buffer.getvalue()

"""Forward and backward trace over the genealogy and shipments, as recursive SQL (CTEs) on indexed edges."""
from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import literal, select

from app.extensions import db
from app.models import Customer, GenealogyEdge, MaterialLot, ProductLot, Shipment, Supplier


@dataclass
class ForwardTrace:
    """What a set of material lots reached: product lots, shipments (direct and onward) and consignees."""

    product_lots: list[ProductLot] = field(default_factory=list)
    shipments: list[Shipment] = field(default_factory=list)
    consignees: list[Customer] = field(default_factory=list)


@dataclass
class BackwardTrace:
    """Where a product lot came from: every component lot, the material lots, their suppliers."""

    product_lots: list[ProductLot] = field(default_factory=list)
    material_lots: list[MaterialLot] = field(default_factory=list)
    suppliers: list[Supplier] = field(default_factory=list)
    sterilization_batches: list[str] = field(default_factory=list)


def _affected_lots(material_lot_ids: list[int]):
    """Return a recursive CTE of product lots made from the material lots, through any number of levels."""
    direct = select(GenealogyEdge.product_lot_id.label("lot_id")).where(
        GenealogyEdge.material_lot_id.in_(material_lot_ids))
    affected = direct.cte("affected", recursive=True)
    upward = select(GenealogyEdge.product_lot_id).join(affected, GenealogyEdge.component_lot_id == affected.c.lot_id)
    return affected.union(upward)  # UNION (not ALL) ends the recursion on diamonds


def _reached_shipments(lots):
    """Return a recursive CTE of shipments of those lots, following distributors' onward shipments."""
    first = select(Shipment.id.label("shipment_id"), Shipment.customer_id, Shipment.product_lot_id).where(
        Shipment.product_lot_id.in_(select(lots.c.lot_id)), Shipment.from_customer_id.is_(None))
    reached = first.cte("reached", recursive=True)
    onward = select(Shipment.id, Shipment.customer_id, Shipment.product_lot_id).join(
        reached, (Shipment.from_customer_id == reached.c.customer_id)
        & (Shipment.product_lot_id == reached.c.product_lot_id))
    return reached.union(onward)


def forward(material_lot_ids: list[int]) -> ForwardTrace:
    """Trace material lots forward to every product lot, shipment and consignee."""
    if not material_lot_ids:
        return ForwardTrace()
    lots = _affected_lots(material_lot_ids)
    reached = _reached_shipments(lots)
    session = db.session
    return ForwardTrace(
        product_lots=list(session.scalars(select(ProductLot).where(ProductLot.id.in_(select(lots.c.lot_id)))
                                          .order_by(ProductLot.lot_number))),
        shipments=list(session.scalars(select(Shipment).where(Shipment.id.in_(select(reached.c.shipment_id)))
                                       .order_by(Shipment.id))),
        consignees=list(session.scalars(select(Customer).where(Customer.id.in_(select(reached.c.customer_id)))
                                        .order_by(Customer.code))),
    )


def backward(product_lot_id: int) -> BackwardTrace:
    """Trace a product lot back to its component lots, material lots, suppliers and sterilization batches."""
    start = select(literal(product_lot_id).label("lot_id"))
    lots = start.cte("components", recursive=True)
    down = select(GenealogyEdge.component_lot_id).join(lots, GenealogyEdge.product_lot_id == lots.c.lot_id).where(
        GenealogyEdge.component_lot_id.is_not(None))
    lots = lots.union(down)
    materials = select(GenealogyEdge.material_lot_id).where(
        GenealogyEdge.product_lot_id.in_(select(lots.c.lot_id)), GenealogyEdge.material_lot_id.is_not(None))
    session = db.session
    product_lots = list(session.scalars(select(ProductLot).where(ProductLot.id.in_(select(lots.c.lot_id)))
                                        .order_by(ProductLot.lot_number)))
    material_lots = list(session.scalars(select(MaterialLot).where(MaterialLot.id.in_(materials))
                                         .order_by(MaterialLot.lot_number)))
    suppliers = list(session.scalars(select(Supplier).where(Supplier.id.in_(
        select(MaterialLot.supplier_id).where(MaterialLot.id.in_(materials)))).order_by(Supplier.code)))
    return BackwardTrace(product_lots=product_lots, material_lots=material_lots, suppliers=suppliers,
                         sterilization_batches=sorted({lot.sterilization_batch for lot in product_lots
                                                       if lot.sterilization_batch}))


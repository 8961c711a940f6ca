"""Lot data the procedures decide about: products, suppliers, material and product lots, genealogy,
customers and shipments (issue 4; the first slice: the tables forward and backward trace need)."""
from __future__ import annotations

from datetime import date

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db

LOT_STATUSES = ("quarantine", "released", "hold", "recalled", "expired", "scrapped")
SUPPLIER_STATUSES = ("approved", "conditional", "suspended")
CUSTOMER_KINDS = ("distributor", "hospital", "end_user")


class Product(db.Model):
    __tablename__ = "products"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    model: Mapped[str] = mapped_column(String(120), default="")
    specification: Mapped[str] = mapped_column(String(200), default="")
    gtin: Mapped[str | None] = mapped_column(String(14), unique=True)  # UDI-DI
    registration_no: Mapped[str] = mapped_column(String(120), default="")
    registration_expiry: Mapped[date | None]
    device_class: Mapped[str] = mapped_column(String(10), default="")


class Supplier(db.Model):
    __tablename__ = "suppliers"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(60), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default="approved")


class MaterialLot(db.Model):
    __tablename__ = "material_lots"
    __table_args__ = (UniqueConstraint("material", "lot_number"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    supplier_id: Mapped[int] = mapped_column(ForeignKey("suppliers.id"), index=True)
    material: Mapped[str] = mapped_column(String(200))
    lot_number: Mapped[str] = mapped_column(String(60), index=True)
    received_on: Mapped[date | None]
    expiry_on: Mapped[date | None]
    status: Mapped[str] = mapped_column(String(20), default="quarantine")
    supplier: Mapped[Supplier] = relationship()


class ProductLot(db.Model):
    __tablename__ = "product_lots"
    __table_args__ = (CheckConstraint("quantity >= 0", name="quantity_not_negative"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), index=True)
    lot_number: Mapped[str] = mapped_column(String(60), unique=True)
    quantity: Mapped[int]
    manufactured_on: Mapped[date | None]
    expiry_on: Mapped[date | None]
    sterilization_batch: Mapped[str | None] = mapped_column(String(60), index=True)
    status: Mapped[str] = mapped_column(String(20), default="quarantine")
    product: Mapped[Product] = relationship()


class GenealogyEdge(db.Model):
    """One component that went into a product lot: a material lot, or another product lot (sub-assembly)."""

    __tablename__ = "genealogy_edges"
    __table_args__ = (
        CheckConstraint("(material_lot_id IS NULL) != (component_lot_id IS NULL)", name="one_component"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    product_lot_id: Mapped[int] = mapped_column(ForeignKey("product_lots.id"), index=True)
    material_lot_id: Mapped[int | None] = mapped_column(ForeignKey("material_lots.id"), index=True)
    component_lot_id: Mapped[int | None] = mapped_column(ForeignKey("product_lots.id"), index=True)
    quantity: Mapped[float] = mapped_column(default=0)


class Customer(db.Model):
    __tablename__ = "customers"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(60), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    region: Mapped[str] = mapped_column(String(120), default="")
    contact: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str] = mapped_column(String(254), default="")
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))


class Shipment(db.Model):
    """Goods of one product lot sent to a consignee; from_customer_id marks a distributor's onward shipment."""

    __tablename__ = "shipments"
    __table_args__ = (Index("ix_shipments_from_lot", "from_customer_id", "product_lot_id"),
                      CheckConstraint("quantity > 0", name="quantity_positive"))
    id: Mapped[int] = mapped_column(primary_key=True)
    product_lot_id: Mapped[int] = mapped_column(ForeignKey("product_lots.id"), index=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    from_customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))
    quantity: Mapped[int]
    shipped_on: Mapped[date]
    document_no: Mapped[str] = mapped_column(String(60), default="")

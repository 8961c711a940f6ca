"""Lot data the procedures decide about: products, suppliers, material and product lots, genealogy,
inspections, stock, serials, customers and shipments, and which instances concern which lots."""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.types import UTCDateTime, utcnow

LOT_STATUSES = ("quarantine", "released", "hold", "recalled", "expired", "scrapped", "returned")
# Only material goes back to its supplier (a supplier return records the GSP return shipment).
MATERIAL_ONLY_STATUSES = ("returned",)
SUPPLIER_STATUSES = ("approved", "conditional", "suspended")
CUSTOMER_KINDS = ("distributor", "hospital", "end_user")
INSPECTION_STAGES = ("incoming", "in_process", "final")
INSPECTION_RESULTS = ("pass", "fail")
DEVICE_CLASSES = ("I", "II", "III")


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
    sterile: Mapped[bool] = mapped_column(default=False)  # a sterile product's lots need a sterilization batch
    # Storage conditions (issue 23): a range in degrees Celsius and optionally in %RH, and how many minutes out
    # of range, cumulative within the excursion window, are tolerated before it is an excursion.
    storage_temp_min: Mapped[float | None]
    storage_temp_max: Mapped[float | None]
    storage_rh_min: Mapped[float | None]
    storage_rh_max: Mapped[float | None]
    excursion_tolerance_minutes: Mapped[int] = mapped_column(default=30, server_default="30")


class Supplier(db.Model):
    __tablename__ = "suppliers"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(60), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default="approved")
    contact_name: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str] = mapped_column(String(254), default="")  # where corrective action requests go
    language: Mapped[str] = mapped_column(String(10), default="zh-CN")  # of its SCARs and response page


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
    kind = "material"


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
    batch_record_complete: Mapped[bool] = mapped_column(default=False)
    labels_checked: Mapped[bool] = mapped_column(default=False)  # labels with UDI printed and verified
    product: Mapped[Product] = relationship()
    kind = "product"


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
    product_lot: Mapped[ProductLot] = relationship(foreign_keys=[product_lot_id])
    material_lot: Mapped[MaterialLot | None] = relationship()
    component_lot: Mapped[ProductLot | None] = relationship(foreign_keys=[component_lot_id])


class Customer(db.Model):
    __tablename__ = "customers"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(60), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    region: Mapped[str] = mapped_column(String(120), default="")
    contact: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str] = mapped_column(String(254), default="")
    country: Mapped[str] = mapped_column(String(2), default="CN")  # ISO 3166 alpha-2: recall markets
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))
    # The remaining shelf life (days to expiry at shipment) a lot shipped to this customer must have; None: the
    # default (FEFO_MIN_SHELF_LIFE_DAYS).
    min_shelf_life_days: Mapped[int | None]
    parent: Mapped[Customer | None] = relationship(remote_side=[id])


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
    document_no: Mapped[str] = mapped_column(String(60), default="", index=True)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("shipment_orders.id"), index=True)  # a FEFO shipment
    product_lot: Mapped[ProductLot] = relationship()
    customer: Mapped[Customer] = relationship(foreign_keys=[customer_id])
    from_customer: Mapped[Customer | None] = relationship(foreign_keys=[from_customer_id])


class Inspection(db.Model):
    """An incoming, in-process or final inspection of a material or product lot; a failed final starts a CAPA."""

    __tablename__ = "inspections"
    __table_args__ = (
        CheckConstraint("(material_lot_id IS NULL) != (product_lot_id IS NULL)", name="one_lot"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    stage: Mapped[str] = mapped_column(String(20))
    material_lot_id: Mapped[int | None] = mapped_column(ForeignKey("material_lots.id"), index=True)
    product_lot_id: Mapped[int | None] = mapped_column(ForeignKey("product_lots.id"), index=True)
    result: Mapped[str] = mapped_column(String(10))
    results: Mapped[str] = mapped_column(Text, default="")
    inspected_on: Mapped[date]
    inspector: Mapped[str] = mapped_column(String(200), default="")
    capa_instance_id: Mapped[int | None] = mapped_column(ForeignKey("process_instances.id"))
    material_lot: Mapped[MaterialLot | None] = relationship()
    product_lot: Mapped[ProductLot | None] = relationship()


class StockLevel(db.Model):
    """Quantity of a product lot held at one location (warehouse, quarantine area, consignment)."""

    __tablename__ = "stock_levels"
    __table_args__ = (UniqueConstraint("product_lot_id", "location"),
                      CheckConstraint("quantity >= 0", name="quantity_not_negative"))
    id: Mapped[int] = mapped_column(primary_key=True)
    product_lot_id: Mapped[int] = mapped_column(ForeignKey("product_lots.id"))
    location: Mapped[str] = mapped_column(String(120))
    quantity: Mapped[int]
    product_lot: Mapped[ProductLot] = relationship()


class SerialNumber(db.Model):
    """A serialized unit (GS1 AI 21) and the lot it belongs to, so a scanned UDI finds its lot."""

    __tablename__ = "serial_numbers"
    __table_args__ = (UniqueConstraint("serial", "product_lot_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    serial: Mapped[str] = mapped_column(String(20), index=True)
    product_lot_id: Mapped[int] = mapped_column(ForeignKey("product_lots.id"), index=True)
    product_lot: Mapped[ProductLot] = relationship()


class InstanceLot(db.Model):
    """A lot a procedure instance concerns (CAPA subject, recall scope, change hold), for both directions."""

    __tablename__ = "instance_lots"
    __table_args__ = (
        CheckConstraint("(material_lot_id IS NULL) != (product_lot_id IS NULL)", name="one_lot"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("process_instances.id"), index=True)
    material_lot_id: Mapped[int | None] = mapped_column(ForeignKey("material_lots.id"), index=True)
    product_lot_id: Mapped[int | None] = mapped_column(ForeignKey("product_lots.id"), index=True)
    role: Mapped[str] = mapped_column(String(40), default="subject")
    # For a hold: the status the lot had before this instance held it, and when the instance lifted the hold.
    previous_status: Mapped[str | None] = mapped_column(String(20))
    lifted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ImportJob(db.Model):
    """One file import: who, what, how far, and every refused row (nothing is written unless all rows pass)."""

    __tablename__ = "import_jobs"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    filename: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20), default="running")  # running, succeeded, failed
    total_rows: Mapped[int] = mapped_column(default=0)
    imported_rows: Mapped[int] = mapped_column(default=0)
    errors: Mapped[list] = mapped_column(JSON, default=list)
    message: Mapped[str] = mapped_column(Text, default="")
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Progress while it runs, written by the importing worker in short transactions of their own so every worker
    # sees it; a running job whose heartbeat is older than IMPORT_STALE_MINUTES lost its worker and is failed.
    rows_read: Mapped[int] = mapped_column(default=0, server_default="0")
    rows_expected: Mapped[int] = mapped_column(default=0, server_default="0")
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

"""Stock control (issue 23 section 2): warehouses and their storage locations, shipment orders picked first-expiry-
first-out (with a QA-signed override of a refusal), and destruction / scrap records."""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, CheckConstraint, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.lots import Customer, Product, ProductLot
from app.models.types import UTCDateTime, utcnow

SCRAP_METHODS = ("incineration", "shredding", "autoclave_then_landfill", "return_to_manufacturer", "other")


class Warehouse(db.Model):
    """A site that holds stock (a GSP warehouse, a cold store, a consignment store)."""

    __tablename__ = "warehouses"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(60), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    address: Mapped[str] = mapped_column(String(300), default="")


class StorageLocation(db.Model):
    """A location inside a warehouse. Its code is the location string stock levels and sensors already use, so a
    stock level or sensor at a location not registered here still works (it shows under no warehouse)."""

    __tablename__ = "storage_locations"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(120), unique=True)
    warehouse_id: Mapped[int] = mapped_column(ForeignKey("warehouses.id"), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    warehouse: Mapped[Warehouse] = relationship()


class ShipmentOrder(db.Model):
    """One outgoing shipment of a product to a customer, picked first-expiry-first-out: the lines it shipped
    (lot, location, quantity), the lots it refused and why, and the QA signature of an override."""

    __tablename__ = "shipment_orders"
    __table_args__ = (CheckConstraint("quantity > 0", name="quantity_positive"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    document_no: Mapped[str] = mapped_column(String(60), default="", index=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), index=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    warehouse_id: Mapped[int | None] = mapped_column(ForeignKey("warehouses.id"))
    quantity: Mapped[int]
    shipped_on: Mapped[date]
    min_shelf_life_days: Mapped[int]  # the customer's minimum remaining shelf life applied
    lines: Mapped[list] = mapped_column(JSON, default=list)  # [{lot_number, location, quantity, expiry_on, ...}]
    refused: Mapped[list] = mapped_column(JSON, default=list)  # [{lot_number, location, quantity, code, ...}]
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # An override of refused lots: the reason and the QA signer's manifest (printed name, meaning, time, hash).
    override_lots: Mapped[list] = mapped_column(JSON, default=list)
    override_reason: Mapped[str | None] = mapped_column(Text)
    override_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    override_printed_name: Mapped[str | None] = mapped_column(String(200))
    override_meaning: Mapped[str | None] = mapped_column(String(40))
    override_signed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    override_hash: Mapped[str | None] = mapped_column(String(64))
    product: Mapped[Product] = relationship()
    customer: Mapped[Customer] = relationship()
    warehouse: Mapped[Warehouse | None] = relationship()


class ScrapRecord(db.Model):
    """Goods of a product lot destroyed at one location, as the signed scrap / destruction procedure decided."""

    __tablename__ = "scrap_records"
    __table_args__ = (CheckConstraint("quantity > 0", name="quantity_positive"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("process_instances.id"), index=True)
    product_lot_id: Mapped[int] = mapped_column(ForeignKey("product_lots.id"), index=True)
    location: Mapped[str] = mapped_column(String(120))
    quantity: Mapped[int]
    method: Mapped[str] = mapped_column(String(40))
    witness: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text, default="")
    scrapped_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    approved_by: Mapped[str] = mapped_column(String(200), default="")  # the gate signer's printed name
    lot_scrapped: Mapped[bool] = mapped_column(default=False)  # the whole lot was gone: its status became scrapped
    product_lot: Mapped[ProductLot] = relationship()

"""Stock control (issue 23 section 2): warehouses and their storage locations, shipment orders picked first-expiry-
first-out (with a QA-signed override of a refusal), destruction / scrap records, and the append-only ledger of every
change of a stock level's quantity (stock movements)."""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, String, Text
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


# Why a stock level's quantity changed: the balance the ledger opened with (migration 0024, one row per stock level
# then held), a stock file import (a count: the level becomes the counted quantity), a stock record entered on its
# own (the New form, POST /api/v1/stock), the demo data, a FEFO shipment, a signed scrap / destruction.
MOVEMENT_KINDS = ("opening", "import", "entry", "demo", "shipment", "scrap")


class StockMovement(db.Model):
    """One change of the quantity of a product lot at a location: the signed change, the balance it left, why (kind)
    and by what (shipment order, scrap procedure instance, import job), who and when. Written in the transaction
    that changes the stock level, so the changes of a lot at a location add up to its level. Append-only: the
    database refuses UPDATE, DELETE (and on PostgreSQL TRUNCATE) of these rows (LEDGER_GUARDS_SQL)."""

    __tablename__ = "stock_movements"
    __table_args__ = (CheckConstraint("balance >= 0", name="balance_not_negative"),
                      Index("ix_stock_movements_lot_location", "product_lot_id", "location", "id"))
    id: Mapped[int] = mapped_column(primary_key=True)
    product_lot_id: Mapped[int] = mapped_column(ForeignKey("product_lots.id"))
    location: Mapped[str] = mapped_column(String(120), index=True)
    change: Mapped[int]  # signed: + goods in, - goods out
    balance: Mapped[int]  # the level's quantity after this change
    kind: Mapped[str] = mapped_column(String(20))  # MOVEMENT_KINDS
    order_id: Mapped[int | None] = mapped_column(ForeignKey("shipment_orders.id"), index=True)
    instance_id: Mapped[int | None] = mapped_column(ForeignKey("process_instances.id"), index=True)
    import_job_id: Mapped[int | None] = mapped_column(ForeignKey("import_jobs.id"), index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    actor_name: Mapped[str] = mapped_column(String(200), default="")
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    product_lot: Mapped[ProductLot] = relationship()


# The ledger is evidence of where goods went: the database refuses changing or removing its rows, as it does for the
# audit trail (app/models/audit.py); installed by migration 0024 (and by the tests' schema).
_LEDGER_REFUSAL = "the stock movement ledger is append-only"
LEDGER_GUARDS_SQL = {
    "sqlite": [f"CREATE TRIGGER stock_movements_no_{verb.lower()} BEFORE {verb} ON stock_movements "
               f"BEGIN SELECT RAISE(ABORT, '{_LEDGER_REFUSAL}'); END" for verb in ("UPDATE", "DELETE")],
    "postgresql": [
        "CREATE OR REPLACE FUNCTION stock_movements_append_only() RETURNS trigger AS $$ "
        f"BEGIN RAISE EXCEPTION '{_LEDGER_REFUSAL}'; END; $$ LANGUAGE plpgsql",
        "CREATE TRIGGER stock_movements_no_update BEFORE UPDATE OR DELETE ON stock_movements "
        "FOR EACH ROW EXECUTE FUNCTION stock_movements_append_only()",
        "CREATE TRIGGER stock_movements_no_truncate BEFORE TRUNCATE ON stock_movements "
        "FOR EACH STATEMENT EXECUTE FUNCTION stock_movements_append_only()",
    ],
}
DROP_LEDGER_GUARDS_SQL = {
    "sqlite": ["DROP TRIGGER IF EXISTS stock_movements_no_update", "DROP TRIGGER IF EXISTS stock_movements_no_delete"],
    "postgresql": ["DROP FUNCTION IF EXISTS stock_movements_append_only() CASCADE"],
}


def install_ledger_guards(connection) -> None:
    """Create the triggers that make stock_movements append-only."""
    for statement in LEDGER_GUARDS_SQL[connection.dialect.name]:
        connection.exec_driver_sql(statement)

"""A supplier return: the corrective action requests (SCAR) sent to the supplier with their single-use response
links, the supplier's answers and our verification, and the GSP record of the goods returned."""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import CheckConstraint, ForeignKey, Numeric, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.evidence import Document
from app.models.lots import MaterialLot, Supplier
from app.models.outbox import OutboxMessage
from app.models.types import UTCDateTime
from app.models.users import User

VERIFICATION_RESULTS = ("accepted", "rejected")


class ScarRequest(db.Model):
    """One round of a supplier corrective action request: sent, answered through its link, verified by us.

    A rejected verification starts the next round with a new link and a new response due date.
    """

    __tablename__ = "scar_requests"
    __table_args__ = (UniqueConstraint("instance_id", "round"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("process_instances.id"), index=True)
    supplier_id: Mapped[int] = mapped_column(ForeignKey("suppliers.id"), index=True)
    round: Mapped[int] = mapped_column(default=1)
    number: Mapped[str] = mapped_column(String(40), unique=True)
    language: Mapped[str] = mapped_column(String(10), default="zh-CN")
    email: Mapped[str] = mapped_column(String(254), default="")  # where it was sent ("" = by post or fax)
    document_id: Mapped[int | None] = mapped_column(ForeignKey("documents.id"))
    outbox_message_id: Mapped[int | None] = mapped_column(ForeignKey("outbox_messages.id"))
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime())
    response_due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Only the SHA-256 of the response token is stored: the link in the e-mail is the only copy.
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    token_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    reminders: Mapped[int] = mapped_column(default=0)
    last_reminded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    responded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    responder_name: Mapped[str] = mapped_column(String(200), default="")
    responder_title: Mapped[str] = mapped_column(String(200), default="")
    containment: Mapped[str] = mapped_column(Text, default="")
    root_cause: Mapped[str] = mapped_column(Text, default="")
    corrective_action: Mapped[str] = mapped_column(Text, default="")
    preventive_action: Mapped[str] = mapped_column(Text, default="")
    completion_date: Mapped[date | None]
    response_note: Mapped[str] = mapped_column(Text, default="")
    verification_result: Mapped[str] = mapped_column(String(20), default="")  # "", accepted, rejected
    verification_note: Mapped[str] = mapped_column(Text, default="")
    verified_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    supplier: Mapped[Supplier] = relationship()
    document: Mapped[Document | None] = relationship()
    message: Mapped[OutboxMessage | None] = relationship()
    verified_by: Mapped[User | None] = relationship()


class SupplierReturn(db.Model):
    """The GSP record of one material lot returned to its supplier (GSP Art. 106-107)."""

    __tablename__ = "supplier_returns"
    __table_args__ = (UniqueConstraint("instance_id", "material_lot_id"),
                      CheckConstraint("quantity > 0", name="quantity_positive"))
    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("process_instances.id"), index=True)
    material_lot_id: Mapped[int] = mapped_column(ForeignKey("material_lots.id"), index=True)
    supplier_id: Mapped[int] = mapped_column(ForeignKey("suppliers.id"))
    material: Mapped[str] = mapped_column(String(200))
    specification: Mapped[str] = mapped_column(String(200), default="")
    lot_number: Mapped[str] = mapped_column(String(60))
    quantity: Mapped[float] = mapped_column(Numeric(14, 3, asdecimal=False))
    unit: Mapped[str] = mapped_column(String(20), default="")
    expiry_on: Mapped[date | None]
    reason: Mapped[str] = mapped_column(Text, default="")
    authorisation_no: Mapped[str] = mapped_column(String(60), default="")
    returned_on: Mapped[date]
    carrier: Mapped[str] = mapped_column(String(200), default="")
    tracking_no: Mapped[str] = mapped_column(String(120), default="")
    recipient: Mapped[str] = mapped_column(String(500), default="")
    document_id: Mapped[int | None] = mapped_column(ForeignKey("documents.id"))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    material_lot: Mapped[MaterialLot] = relationship()
    document: Mapped[Document | None] = relationship()

"""Regulatory deadlines of an instance, and a recall's consignees with their notices, acknowledgments,
returns and effectiveness checks."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.evidence import Document
from app.models.lots import Customer, ProductLot
from app.models.outbox import OutboxMessage
from app.models.types import UTCDateTime
from app.models.users import User


class Deadline(db.Model):
    """A dated obligation of an instance (report to the regulator within 5 working days, ...).

    It is met when the BPMN element named by met_by completes; a timer in the diagram escalates it when it is
    missed. The diagram computes due_at, so process owners change durations there, not in code.
    """

    __tablename__ = "deadlines"
    __table_args__ = (UniqueConstraint("instance_id", "key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("process_instances.id"), index=True)
    key: Mapped[str] = mapped_column(String(60))
    label: Mapped[str] = mapped_column(String(200))
    label_zh: Mapped[str] = mapped_column(String(200), default="")
    basis: Mapped[str] = mapped_column(String(200), default="")  # how due_at was computed, as the diagram says it
    met_by: Mapped[str] = mapped_column(String(120))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    due_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    met_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    def status(self, now: datetime) -> str:
        """Return met, met_late, overdue or pending."""
        if self.met_at is not None:
            return "met" if self.met_at <= self.due_at else "met_late"
        return "overdue" if now > self.due_at else "pending"


class RecallConsignee(db.Model):
    """One consignee of a recall: its notice, the single-use acknowledgment link, its answer and the check."""

    __tablename__ = "recall_consignees"
    __table_args__ = (UniqueConstraint("instance_id", "customer_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("process_instances.id"), index=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    language: Mapped[str] = mapped_column(String(10), default="zh-CN")
    notice_document_id: Mapped[int | None] = mapped_column(ForeignKey("documents.id"))
    outbox_message_id: Mapped[int | None] = mapped_column(ForeignKey("outbox_messages.id"))
    notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Only the SHA-256 of the acknowledgment token is stored: the link in the e-mail is the only copy.
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    token_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ack_received: Mapped[bool | None] = mapped_column()
    ack_on_hand: Mapped[int | None] = mapped_column()
    ack_contact: Mapped[str] = mapped_column(String(200), default="")
    ack_comment: Mapped[str] = mapped_column(Text, default="")
    ack_forwarded: Mapped[bool | None] = mapped_column()
    reminders: Mapped[int] = mapped_column(default=0)
    last_reminded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    in_sample: Mapped[bool] = mapped_column(default=False)
    checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    check_method: Mapped[str] = mapped_column(String(40), default="")
    check_effective: Mapped[bool | None] = mapped_column()
    check_note: Mapped[str] = mapped_column(Text, default="")
    checked_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    customer: Mapped[Customer] = relationship()
    notice: Mapped[Document | None] = relationship()
    message: Mapped[OutboxMessage | None] = relationship()
    checked_by: Mapped[User | None] = relationship()
    lines: Mapped[list[RecallLine]] = relationship(back_populates="consignee", order_by="RecallLine.id")


class RecallLine(db.Model):
    """Quantities of one affected lot at one consignee: shipped to it, passed on by it to other consignees of
    the recall, returned and destroyed in the field."""

    __tablename__ = "recall_lines"
    __table_args__ = (
        UniqueConstraint("consignee_id", "product_lot_id"),
        CheckConstraint("quantity_returned >= 0 AND quantity_destroyed >= 0", name="quantities_not_negative"),
        CheckConstraint("quantity_returned + quantity_destroyed <= quantity_shipped", name="not_above_shipped"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("process_instances.id"), index=True)
    consignee_id: Mapped[int] = mapped_column(ForeignKey("recall_consignees.id"), index=True)
    product_lot_id: Mapped[int] = mapped_column(ForeignKey("product_lots.id"))
    quantity_shipped: Mapped[int] = mapped_column(default=0)
    quantity_forwarded: Mapped[int] = mapped_column(default=0, server_default="0")
    quantity_returned: Mapped[int] = mapped_column(default=0)
    quantity_destroyed: Mapped[int] = mapped_column(default=0)
    consignee: Mapped[RecallConsignee] = relationship(back_populates="lines")
    product_lot: Mapped[ProductLot] = relationship()

    @property
    def quantity_held(self) -> int:
        """Units this consignee kept: an onward shipment is part of what it received, not more units."""
        return self.quantity_shipped - self.quantity_forwarded

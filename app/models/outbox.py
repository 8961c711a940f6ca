"""Outgoing e-mail, queued in the same transaction as the change that caused it."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.types import UTCDateTime, utcnow


class OutboxMessage(db.Model):
    __tablename__ = "outbox_messages"
    id: Mapped[int] = mapped_column(primary_key=True)
    # Makes a handler retry idempotent: the same (instance, task, purpose) queues one message.
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    recipients: Mapped[str] = mapped_column(Text)  # comma-separated addresses
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    instance_id: Mapped[int | None] = mapped_column(ForeignKey("process_instances.id"), index=True)
    status: Mapped[str] = mapped_column(String(20), default="queued", index=True)  # queued, sent, failed
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    last_error: Mapped[str] = mapped_column(Text, default="")
    # When the current run of failed attempts began (cleared by a delivery or a resend): the sender gives up
    # OUTBOX_RETRY_DAYS after it.
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # A rendered document sent as the message's attachment (a recall notice).
    attachment_document_id: Mapped[int | None] = mapped_column(ForeignKey("documents.id"))

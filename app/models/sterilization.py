"""Sterilization batch records (ISO 11135 ethylene oxide, ISO 11137 radiation, ISO 17665 moist heat): one cycle of a
sterilizer, its parameters against the validated limits, its load of product lots, the biological indicator and
dosimeter results, and QA's e-signed release or failure. Product lots name their batch by number
(`product_lots.sterilization_batch`), which stays the link trace and recalls search by."""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, CheckConstraint, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.lots import ProductLot
from app.models.types import UTCDateTime, utcnow
from app.models.users import User

STERILIZATION_METHODS = ("eo", "gamma", "ebeam", "steam")
BATCH_STATUSES = ("pending", "released", "failed")
BI_RESULTS = ("pending", "pass", "fail")


class SterilizationBatch(db.Model):
    """One sterilization cycle (batch) and its record, from entry (pending) to QA's signed release or its failure."""

    __tablename__ = "sterilization_batches"
    id: Mapped[int] = mapped_column(primary_key=True)
    batch_number: Mapped[str] = mapped_column(String(60), unique=True)
    method: Mapped[str] = mapped_column(String(20))
    sterilizer: Mapped[str] = mapped_column(String(120), default="")  # the chamber / irradiator / contractor
    processed_on: Mapped[date]
    # Cycle parameters as entered (temperature_c, humidity_rh, gas_mg_l, exposure_minutes for EO; dose_min_kgy and
    # dose_max_kgy, the dosimeter results, for radiation; temperature_c and exposure_minutes for steam) and the
    # validated limits they were judged against, as they were then: {name: [min or null, max or null]}.
    parameters: Mapped[dict] = mapped_column(JSON, default=dict)
    limits: Mapped[dict] = mapped_column(JSON, default=dict)
    bi_result: Mapped[str | None] = mapped_column(String(10))  # pending / pass / fail; None: the method uses none
    status: Mapped[str] = mapped_column(String(20), default="pending", index=True)
    failure_reasons: Mapped[list] = mapped_column(JSON, default=list)  # [{code, params}]
    note: Mapped[str] = mapped_column(Text, default="")
    capa_instance_id: Mapped[int | None] = mapped_column(ForeignKey("process_instances.id"))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # QA's decision (released or failed), e-signed: who, when, why, and the hash the signature binds.
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    decision_reason: Mapped[str] = mapped_column(Text, default="")
    signed_name: Mapped[str] = mapped_column(String(200), default="")
    signed_meaning: Mapped[str] = mapped_column(String(40), default="")
    signed_hash: Mapped[str] = mapped_column(String(64), default="")
    created_by: Mapped[User | None] = relationship(foreign_keys=[created_by_id])
    decided_by: Mapped[User | None] = relationship(foreign_keys=[decided_by_id])
    load: Mapped[list[SterilizationLoad]] = relationship(back_populates="batch", order_by="SterilizationLoad.id")


class SterilizationLoad(db.Model):
    """One product lot (and how many of its units) in a sterilization batch's load."""

    __tablename__ = "sterilization_loads"
    __table_args__ = (UniqueConstraint("batch_id", "product_lot_id"),
                      CheckConstraint("quantity >= 0", name="quantity_not_negative"))
    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("sterilization_batches.id"), index=True)
    product_lot_id: Mapped[int] = mapped_column(ForeignKey("product_lots.id"), index=True)
    quantity: Mapped[int]
    batch: Mapped[SterilizationBatch] = relationship(back_populates="load")
    product_lot: Mapped[ProductLot] = relationship()

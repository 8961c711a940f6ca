"""Supplier quality: each evaluation of a supplier's score over a rolling window (with the figures it was made of),
and the supplier reviews the scores start (one open review per supplier)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.lots import Supplier
from app.models.types import UTCDateTime

# good: at or above the alert threshold; alert: below it; limit: below the limit; no_data: not enough data to score.
SCORE_BANDS = ("good", "alert", "limit", "no_data")
REVIEW_TRIGGERS = ("alert", "limit", "manual")


class SupplierEvaluation(db.Model):
    """One scoring of one supplier: the window, the figures counted in it, the score (None: not enough data) and its
    band; the review it started or fed, if any."""

    __tablename__ = "supplier_evaluations"
    __table_args__ = (Index("ix_supplier_evaluations_supplier_at", "supplier_id", "evaluated_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    supplier_id: Mapped[int] = mapped_column(ForeignKey("suppliers.id"))
    evaluated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    window_days: Mapped[int]
    score: Mapped[float | None]
    band: Mapped[str] = mapped_column(String(20))
    figures: Mapped[dict] = mapped_column(JSON, default=dict)  # inspections, failed, scars, late, returns, ...
    trigger: Mapped[str] = mapped_column(String(20), default="scheduled")  # scheduled, on_demand
    review_id: Mapped[int | None] = mapped_column(ForeignKey("supplier_reviews.id"))
    supplier: Mapped[Supplier] = relationship()


class SupplierReview(db.Model):
    """A supplier review procedure instance about one supplier: why it started (alert, limit, manual), the score
    then, the status proposed, and how it ended (the status decided, signed)."""

    __tablename__ = "supplier_reviews"
    id: Mapped[int] = mapped_column(primary_key=True)
    supplier_id: Mapped[int] = mapped_column(ForeignKey("suppliers.id"), index=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("process_instances.id"), unique=True)
    trigger: Mapped[str] = mapped_column(String(20))
    score: Mapped[float | None]
    band: Mapped[str] = mapped_column(String(20), default="")  # the worst band seen while it was open
    proposed_status: Mapped[str] = mapped_column(String(20), default="")
    status_before: Mapped[str] = mapped_column(String(20), default="")
    decided_status: Mapped[str] = mapped_column(String(20), default="")
    decision_note: Mapped[str] = mapped_column(Text, default="")
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    supplier: Mapped[Supplier] = relationship()

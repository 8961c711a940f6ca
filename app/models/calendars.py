"""Holiday calendars per jurisdiction (CN, US, EU ...): public holidays and make-up working days (调休)."""
from __future__ import annotations

from datetime import date

from sqlalchemy import Date, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db


class CalendarDay(db.Model):
    """One day that breaks the Monday-to-Friday rule in a jurisdiction: a holiday, or a weekend day worked."""

    __tablename__ = "calendar_days"
    __table_args__ = (UniqueConstraint("jurisdiction", "day"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    jurisdiction: Mapped[str] = mapped_column(String(10), index=True)
    day: Mapped[date] = mapped_column(Date)
    working: Mapped[bool] = mapped_column(default=False)  # True: a make-up working day (调休)
    name: Mapped[str] = mapped_column(String(200), default="")

    @property
    def kind(self) -> str:
        return "workday" if self.working else "holiday"

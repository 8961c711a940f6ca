"""Storage and transport conditions: data-logger sensors (at a warehouse location, in a vehicle or with a
shipment), their readings (one narrow table, integers), and the excursions detected from them."""
from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Integer, SmallInteger, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.lots import Product, Shipment
from app.models.types import UTCDateTime, utcnow

QUANTITIES = ("temperature", "humidity")
PLACES = ("warehouse", "vehicle", "shipment")
EXCURSION_STATUSES = ("open", "released", "scrapped", "closed")
# Readings store their time as whole seconds since this instant (an int32 lasts until 2068) and their value in
# hundredths of the unit (centi-degrees Celsius, centi-%RH), so a reading is three integers.
READING_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


class Sensor(db.Model):
    """A data logger channel: what it measures, where it is, and how often it logs."""

    __tablename__ = "sensors"
    __table_args__ = (CheckConstraint("interval_seconds > 0", name="interval_positive"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(60), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    quantity: Mapped[str] = mapped_column(String(20), default="temperature")
    place: Mapped[str] = mapped_column(String(20), default="warehouse")
    # A warehouse or vehicle sensor watches the stock held at this location (StockLevel.location); a shipment
    # sensor travels with one shipment.
    location: Mapped[str] = mapped_column(String(120), default="", index=True)
    shipment_id: Mapped[int | None] = mapped_column(ForeignKey("shipments.id"), index=True)
    interval_seconds: Mapped[int] = mapped_column(default=300)
    shipment: Mapped[Shipment | None] = relationship()


class Reading(db.Model):
    """One logged value: (sensor, second since READING_EPOCH) is the key, the value is in hundredths."""

    __tablename__ = "readings"
    __table_args__ = ({"sqlite_with_rowid": False},)
    sensor_id: Mapped[int] = mapped_column(ForeignKey("sensors.id"), primary_key=True)
    at: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    value: Mapped[int] = mapped_column(SmallInteger)


class Excursion(db.Model):
    """A period a sensor's readings left one product's storage range for longer than its tolerance."""

    __tablename__ = "excursions"
    id: Mapped[int] = mapped_column(primary_key=True)
    sensor_id: Mapped[int] = mapped_column(ForeignKey("sensors.id"), index=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), index=True)
    quantity: Mapped[str] = mapped_column(String(20))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime] = mapped_column(UTCDateTime())
    minutes_out: Mapped[float] = mapped_column(default=0)
    minutes_unknown: Mapped[float] = mapped_column(default=0)  # data gaps counted as out of range
    max_value: Mapped[int] = mapped_column(Integer)  # hundredths, as readings
    min_value: Mapped[int] = mapped_column(Integer)
    mkt: Mapped[int | None] = mapped_column(Integer)  # mean kinetic temperature of the excursion, centi-degrees C
    mkt_30_days: Mapped[int | None] = mapped_column(Integer)  # over the 30 days ending with the excursion
    range_min: Mapped[int | None] = mapped_column(Integer)  # the range and tolerance applied, as they were
    range_max: Mapped[int | None] = mapped_column(Integer)
    tolerance_minutes: Mapped[int] = mapped_column(default=30)
    window_hours: Mapped[int] = mapped_column(default=24)
    lots: Mapped[list] = mapped_column(JSON, default=list)  # lot numbers held (or found) at detection
    status: Mapped[str] = mapped_column(String(20), default="open")
    decisions: Mapped[list] = mapped_column(JSON, default=list)  # per lot: release / scrap, from the signed gate
    note: Mapped[str] = mapped_column(Text, default="")
    instance_id: Mapped[int | None] = mapped_column(ForeignKey("process_instances.id"), index=True)
    detected_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sensor: Mapped[Sensor] = relationship()
    product: Mapped[Product] = relationship()

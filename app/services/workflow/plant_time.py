"""The plant's clock: times are stored in UTC and shown in the plant's time zone, with the zone's name."""
from __future__ import annotations

from datetime import UTC, date, datetime, time, tzinfo
from zoneinfo import ZoneInfo

from flask import current_app

from app.models.types import utcnow

__all__ = ["format_moment", "local_date", "utcnow", "zone"]


def zone() -> ZoneInfo:
    """Return the plant's time zone (config PLANT_TIME_ZONE, env QUALIFLOW_TIME_ZONE)."""
    return ZoneInfo(current_app.config["PLANT_TIME_ZONE"])


def format_moment(moment: datetime, tz: tzinfo) -> str:
    """Say a moment as the plant's clock shows it: 2026-12-07 17:00 CST."""
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z")


def local_date(moment: datetime, tz: tzinfo) -> date:
    """Return the plant's calendar date at a moment (09:00 UTC is already tomorrow in Shanghai after 16:00 UTC)."""
    return moment.astimezone(tz).date()


def end_of_day(day: date, tz: tzinfo) -> datetime:
    """Return the last second of a local calendar day, in UTC: what "by day N" means for a deadline."""
    return datetime.combine(day, time(23, 59, 59), tzinfo=tz).astimezone(UTC)

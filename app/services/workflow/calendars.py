"""Holiday calendars per jurisdiction, kept by admins and audited: which days count as working days for
deadlines (FDA deadlines on the US calendar, NMPA ones on the CN calendar) and for scripts."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, tzinfo

from flask import current_app
from sqlalchemy import bindparam, extract, select

from app.engine import add_working_days, working_days_between
from app.exceptions import FormInvalid, PermissionDenied
from app.extensions import db
from app.models import CalendarDay, User
from app.services.evidence import audit
from app.services.workflow import plant_time
from app.services.workflow.transaction import atomic

KINDS = ("holiday", "workday")


@dataclass(frozen=True)
class WorkCalendar:
    """Monday to Friday minus holidays, plus make-up working days (调休), counted on the plant's local dates."""

    jurisdiction: str
    tz: tzinfo
    holidays: frozenset[date] = frozenset()
    workdays: frozenset[date] = frozenset()

    def add_working_days(self, start: datetime, days: int) -> datetime:
        return add_working_days(start, days, self.holidays, self.workdays, self.tz)

    def working_days_between(self, start: datetime, end: datetime) -> int:
        return working_days_between(start, end, self.holidays, self.workdays, self.tz)

    def end_of_working_day(self, start: datetime, days: int) -> datetime:
        """Return the local end of the days-th working day after start's local date, in UTC."""
        return plant_time.end_of_day(plant_time.local_date(self.add_working_days(start, days), self.tz), self.tz)


_DAYS = select(CalendarDay.day, CalendarDay.working).where(CalendarDay.jurisdiction == bindparam("jurisdiction"))


def work_calendar(jurisdiction: str | None = None) -> WorkCalendar:
    """Return a jurisdiction's calendar (default: the plant's); one with no day in the database uses config HOLIDAYS."""
    jurisdiction = (jurisdiction or current_app.config["PLANT_CALENDAR"]).upper()
    # Read by every use case that runs the engine: plain rows on the session's connection (no flush, no ORM).
    days = db.session.connection().execute(_DAYS, {"jurisdiction": jurisdiction}).all()
    if not days:
        return WorkCalendar(jurisdiction, plant_time.zone(), frozenset(current_app.config["HOLIDAYS"]))
    return WorkCalendar(jurisdiction, plant_time.zone(), frozenset(d.day for d in days if not d.working),
                        frozenset(d.day for d in days if d.working))


def list_days(jurisdiction: str | None = None, year: int | None = None) -> list[CalendarDay]:
    query = select(CalendarDay).order_by(CalendarDay.jurisdiction, CalendarDay.day)
    if jurisdiction:
        query = query.where(CalendarDay.jurisdiction == jurisdiction.upper())
    if year:
        query = query.where(extract("year", CalendarDay.day) == year)
    return list(db.session.scalars(query))


def jurisdictions() -> list[str]:
    return list(db.session.scalars(select(CalendarDay.jurisdiction).distinct().order_by(CalendarDay.jurisdiction)))


def _require_admin(actor: User | None) -> None:
    if actor is not None and not actor.has_role("admin"):
        raise PermissionDenied("Only administrators edit holiday calendars.")


def _checked(jurisdiction: str, day: date | str, kind: str) -> tuple[str, date]:
    errors = {}
    code = (jurisdiction or "").strip().upper()
    if not code.isalpha() or not 2 <= len(code) <= 10:
        errors["jurisdiction"] = ["a jurisdiction code of letters, such as CN, US or EU"]
    if kind not in KINDS:
        errors["kind"] = ["holiday or workday"]
    if isinstance(day, str):
        try:
            day = date.fromisoformat(day.strip())
        except ValueError:
            errors["day"] = ["a date such as 2026-10-01"]
    if errors:
        raise FormInvalid(errors)
    return code, day


def _set(actor: User | None, jurisdiction: str, day: date | str, kind: str, name: str) -> CalendarDay:
    code, day = _checked(jurisdiction, day, kind)
    row = db.session.scalar(select(CalendarDay).where(CalendarDay.jurisdiction == code, CalendarDay.day == day))
    old = {"kind": row.kind, "name": row.name} if row is not None else None
    if row is None:
        row = CalendarDay(jurisdiction=code, day=day)
        db.session.add(row)
    row.working, row.name = kind == "workday", name.strip()[:200]
    audit.record(actor, "calendar.day_set", "calendar_day", f"{code}:{day.isoformat()}", old=old,
                 new={"kind": kind, "name": row.name})
    return row


def set_day(actor: User | None, jurisdiction: str, day: date | str, kind: str, name: str = "") -> CalendarDay:
    """Make a day a holiday or a make-up working day of a jurisdiction (admins; None is the command line)."""
    _require_admin(actor)
    with atomic():
        return _set(actor, jurisdiction, day, kind, name)


def remove_day(actor: User | None, jurisdiction: str, day: date | str) -> bool:
    """Make a day ordinary again (weekday worked, weekend off); return whether it was listed."""
    _require_admin(actor)
    code, day = _checked(jurisdiction, day, "holiday")
    with atomic():
        row = db.session.scalar(select(CalendarDay).where(CalendarDay.jurisdiction == code, CalendarDay.day == day))
        if row is None:
            return False
        audit.record(actor, "calendar.day_removed", "calendar_day", f"{code}:{day.isoformat()}",
                     old={"kind": row.kind, "name": row.name})
        db.session.delete(row)
    return True


def import_days(actor: User | None, rows: Iterable[dict[str, str]]) -> int:
    """Set many days at once (jurisdiction, date, kind, name), all or none; return how many."""
    _require_admin(actor)
    count = 0
    with atomic():
        for row in rows:
            _set(actor, row.get("jurisdiction", ""), row.get("date", ""), (row.get("kind") or "holiday").strip(),
                 row.get("name", ""))
            count += 1
    return count

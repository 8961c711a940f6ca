"""Small page helpers every blueprint uses: the page language as forms spell it, durations and countdowns."""
from __future__ import annotations

from datetime import datetime

from flask_babel import get_locale
from flask_babel import gettext as _


def ui_lang() -> str:
    """Return the page language as forms and documents spell it ("en" or "zh-CN")."""
    return "zh-CN" if str(get_locale()).startswith("zh") else "en"


def as_datetime(value: datetime | str) -> datetime:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def time_span(seconds: float) -> str:
    """Say a duration in its two largest units, whole minutes: "2 d 3 h", "5 h 10 min", "7 min"."""
    minutes = int(abs(seconds) // 60)
    days, hours, minutes = minutes // 1440, minutes % 1440 // 60, minutes % 60
    if days:
        parts = [_("%(n)s d", n=days)] + ([_("%(n)s h", n=hours)] if hours else [])
    elif hours:
        parts = [_("%(n)s h", n=hours)] + ([_("%(n)s min", n=minutes)] if minutes else [])
    else:
        parts = [_("%(n)s min", n=minutes)]
    return " ".join(parts)


def countdown(due: datetime | str, now: datetime) -> str:
    """Say how long until a due time, or how long it is overdue ("in 2 d 3 h", "5 h overdue")."""
    seconds = (as_datetime(due) - now).total_seconds()
    span = time_span(seconds)
    return _("in %(time)s", time=span) if seconds >= 0 else _("%(time)s overdue", time=span)

"""Plant time on pages and the holiday calendars admins keep (page, command line, audit trail)."""
from __future__ import annotations

from datetime import date

import pytest

from app.exceptions import PermissionDenied
from app.extensions import db
from app.models import AuditEvent, CalendarDay, OutboxMessage
from app.services.workflow import calendars
from tests.conftest import T0, login


def test_pages_show_the_plants_local_time_with_its_zone(app, client, seeded):
    app.config["PLANT_TIME_ZONE"] = "Asia/Shanghai"
    db.session.add(OutboxMessage(recipients="a@example.com", subject="s", body="b", next_attempt_at=T0))
    db.session.commit()
    login(client, "admin")
    page = client.get("/admin/outbox").get_data(as_text=True)
    assert "2026-11-23 17:00 CST" in page and "09:00 UTC" not in page


def test_an_admin_sets_and_removes_a_holiday_and_both_are_audited(client, seeded):
    login(client, "admin")
    response = client.post("/admin/calendars", data={"jurisdiction": "cn", "day": "2026-10-10", "kind": "workday",
                                                     "name": "国庆节调休"})
    assert response.status_code == 302
    assert calendars.work_calendar("CN").workdays == {date(2026, 10, 10)}
    assert "2026-10-10" in client.get("/admin/calendars?jurisdiction=CN").get_data(as_text=True)
    client.post("/admin/calendars/remove", data={"jurisdiction": "CN", "day": "2026-10-10"})
    assert db.session.scalar(db.select(CalendarDay)) is None
    trail = [(e.action, e.object_id, e.actor_name) for e in db.session.scalars(
        db.select(AuditEvent).where(AuditEvent.action.like("calendar.%")).order_by(AuditEvent.id))]
    assert trail == [("calendar.day_set", "CN:2026-10-10", "Ada Admin"),
                     ("calendar.day_removed", "CN:2026-10-10", "Ada Admin")]


@pytest.mark.parametrize(("method", "path"), [("get", "/admin/calendars"), ("post", "/admin/calendars"),
                                              ("post", "/admin/calendars/remove")])
def test_only_admins_edit_calendars(client, seeded, method, path):
    login(client, "qa")
    response = getattr(client, method)(path, data={"jurisdiction": "CN", "day": "2026-10-10", "kind": "holiday"})
    assert response.status_code == 403
    assert db.session.scalar(db.select(CalendarDay)) is None


def test_the_service_refuses_a_non_admin(seeded, user):
    with pytest.raises(PermissionDenied):
        calendars.set_day(user("qa"), "CN", "2026-10-01", "holiday")


def test_holidays_import_and_list_on_the_command_line(runner, seeded, tmp_path):
    source = tmp_path / "us.csv"
    source.write_text("jurisdiction,date,kind,name\nUS,2026-11-26,holiday,Thanksgiving Day\n"
                      "CN,2026-10-10,workday,国庆节调休\n", encoding="utf-8")
    result = runner.invoke(args=["holidays", "import", str(source)])
    assert result.exit_code == 0, result.output
    assert "Set 2 calendar day(s)" in result.output
    listed = runner.invoke(args=["holidays", "list", "--jurisdiction", "us"]).output
    assert listed == "US\t2026-11-26\tholiday\tThanksgiving Day\n"
    assert calendars.work_calendar("US").holidays == {date(2026, 11, 26)}
    bad = tmp_path / "bad.csv"
    bad.write_text("jurisdiction,date,kind,name\nUS,26/11/2026,holiday,x\n", encoding="utf-8")
    assert runner.invoke(args=["holidays", "import", str(bad)]).exit_code == 1


def test_a_calendar_without_days_falls_back_to_config_holidays(app, seeded):
    app.config["HOLIDAYS"] = (date(2026, 12, 1),)
    assert calendars.work_calendar("EU").holidays == {date(2026, 12, 1)}

"""The consignee-notification deadline is met when every notice reached its consignee (the mail server accepted
it, the consignee acknowledged, or a check found it acted on a paper notice), not when the notices are queued."""
from __future__ import annotations

from datetime import timedelta

from app.extensions import db
from app.models import Deadline, OutboxMessage
from app.services.procedures import dashboards, recalls
from app.services.workflow import notifications
from tests.conftest import T0, login
from tests.integration import recall_steps as steps

HOUR = timedelta(hours=1)


def _notice_deadline(instance_id: int) -> Deadline:
    return db.session.scalar(db.select(Deadline).where(Deadline.instance_id == instance_id,
                                                       Deadline.key == "consignee_notice"))


def _undelivered(instance_id: int) -> list[str]:
    return sorted(c.customer.code for c in recalls.recall_view(instance_id).undelivered)


def test_the_notice_deadline_waits_for_every_delivery(client, plant, user, monkeypatch):
    steps.mail_server(monkeypatch, refused=("us1@example.com",))
    instance = steps.decide(user, T0)
    steps.step(instance.id, "prepare_notices", steps.NOTICES, user, T0 + HOUR)
    assert _notice_deadline(instance.id).met_at is None  # queued is not delivered
    assert _undelivered(instance.id) == ["D1", "H1", "H2", "US1"]

    notifications.send_due(T0 + 2 * HOUR)
    db.session.expire_all()
    assert _undelivered(instance.id) == ["H2", "US1"]  # H2 has no e-mail address; US1's server refused
    assert _notice_deadline(instance.id).status(T0 + 25 * HOUR) == "overdue"
    login(client, "qa")
    page = client.get(f"/recalls/{instance.id}?lang=en").get_data(as_text=True)
    listed = page.split('data-testid="undelivered"', 1)[1].split("</div>", 1)[0]
    assert "H2" in listed and "US1" in listed and "D1" not in listed
    assert "Notices not delivered yet: 2" in listed and "no e-mail address" in listed
    assert "e-mail failed (Refused by the mail server: us1@example.com: 550 mailbox unavailable)" in listed
    board = client.get("/recalls/?lang=en").get_data(as_text=True)
    board = board.split('data-testid="undelivered-notices"', 1)[1].split("</section>", 1)[0]
    assert "Notices not delivered: 2" in board and "US1" in board and "D1" not in board
    assert 'data-state="failed"' in board and 'data-state="no_email"' in board
    assert sorted((n["code"], n["state"]) for n in dashboards.recall_dashboard().as_dict()["recalls"][0]
                  ["undelivered"]) == [("H2", "no_email"), ("US1", "failed")]

    consignees = {c.customer.code: c for c in recalls.recall_view(instance.id).consignees}
    recalls.record_check(instance.id, consignees["H2"].id, method="phone", effective=True, note="",
                         actor=user("qa"), now=T0 + 3 * HOUR)  # H2 got the notice by post and acted on it
    assert _notice_deadline(instance.id).met_at is None
    token = db.session.get(OutboxMessage, consignees["US1"].outbox_message_id).body.split("/ack/")[1].split()[0]
    recalls.acknowledge(token, {"received": True, "contact": "Pat Doe"}, T0 + 4 * HOUR)  # after a phone call
    deadline = _notice_deadline(instance.id)
    assert (deadline.met_at, deadline.status(T0 + 25 * HOUR)) == (T0 + 4 * HOUR, "met")
    assert _undelivered(instance.id) == []

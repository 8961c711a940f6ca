"""What a consignee reads is in its language: the notices form asks for each text (reason, instructions, contact)
in every language the recall's consignees read, and each notice carries only its own language's text. Notices
still undelivered when the notification deadline passes are escalated to QA management, naming each consignee."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest

from app.exceptions import FormInvalid
from app.extensions import db
from app.models import Deadline, OutboxMessage, ProcessInstance
from app.services.procedures import recalls
from app.services.workflow import notifications, timers
from tests.conftest import T0
from tests.integration import recall_steps as steps
from tests.integration.document_checks import docx_text

HOUR, MINUTE = timedelta(hours=1), timedelta(minutes=1)
CHINESE = re.compile(r"[\u4e00-\u9fff]")
ENGLISH_ONLY = {key: value for key, value in steps.NOTICES.items() if not key.endswith("_zh")}


def test_the_form_asks_for_each_language_the_consignees_read(plant, user):
    instance = steps.decide(user, T0)  # D1, H1, H2 in China read Chinese; US1 reads English
    with pytest.raises(FormInvalid) as missing:
        steps.step(instance.id, "prepare_notices", ENGLISH_ONLY, user, T0 + HOUR)
    assert sorted(missing.value.errors) == ["instructions_zh", "notice_contact_zh", "reason_zh"]
    assert "D1, H1, H2" in missing.value.errors["reason_zh"][0]
    with pytest.raises(FormInvalid) as chinese:
        steps.step(instance.id, "prepare_notices", {**steps.NOTICES, "instructions_en": "停止使用 and return."}, user,
                   T0 + HOUR)
    assert list(chinese.value.errors) == ["instructions_en"]

    steps.step(instance.id, "prepare_notices", steps.NOTICES, user, T0 + HOUR)
    notices = {c.customer.code: docx_text(c.notice.content) for c in recalls.recall_view(instance.id).consignees}
    assert steps.NOTICES["reason_en"] in notices["US1"] and steps.NOTICES["notice_contact_en"] in notices["US1"]
    english_texts = "\n".join(line for line in notices["US1"].splitlines()
                              if not line.startswith(("国械", "Registration")))  # the registration no. is as issued
    assert not CHINESE.search(english_texts)
    for code in ("D1", "H1", "H2"):
        assert steps.NOTICES["instructions_zh"] in notices[code]
        assert steps.NOTICES["instructions_en"] not in notices[code]


@pytest.mark.parametrize("refused", [True, False])
def test_notices_undelivered_at_the_deadline_are_escalated(plant, user, monkeypatch, refused):
    """Class I: the consignees are to be notified within a day. US1's mail server refuses the notice and H2 has
    no e-mail address: at the deadline QA management gets a task and an e-mail naming both. When every notice
    was delivered, the deadline check ends quietly."""
    steps.mail_server(monkeypatch, refused=("us1@example.com",) if refused else ())
    instance = steps.decide(user, T0)
    steps.step(instance.id, "prepare_notices", steps.NOTICES, user, T0 + HOUR)
    if refused:
        notifications.send_due(T0 + 2 * HOUR)
    else:
        steps.deliver_notices(instance.id, user, T0 + 2 * HOUR, monkeypatch)
    deadline = db.session.scalar(db.select(Deadline).where(Deadline.instance_id == instance.id,
                                                           Deadline.key == "consignee_notice"))
    timers.fire_due_timers(now=deadline.due_at + MINUTE)

    escalation = steps.ready(instance.id, "escalation_undelivered")
    mail = db.session.scalar(db.select(OutboxMessage).where(
        OutboxMessage.instance_id == instance.id, OutboxMessage.subject.like("Recall notices undelivered%")))
    if not refused:
        assert escalation is None and mail is None and deadline.escalated_at is None
        return
    assert escalation is not None and escalation.group_name == "qa_management"
    db.session.expire_all()
    listed = db.session.get(ProcessInstance, instance.id).data["undelivered_notices"]["undelivered"]
    assert [(row["code"], row["reason"]) for row in listed] == [
        ("US1", "the mail server refused the e-mail (Refused by the mail server: us1@example.com: 550 mailbox "
                "unavailable)"), ("H2", "no e-mail address")]
    assert "US1 Boston Medical Supply" in mail.body and "H2 Hangzhou Clinic" in mail.body
    assert deadline.escalated_at == deadline.due_at + MINUTE
    steps.step(instance.id, "escalation_undelivered", {"action": "Phoned US1 and H2; notices sent by courier."},
               user, deadline.due_at + HOUR)

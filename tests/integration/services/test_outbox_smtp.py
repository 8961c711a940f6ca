"""The outbox sender against a real SMTP server (aiosmtpd): delivery, retries with a capped backoff for a period,
giving up, resending, permanent refusals, recovery, attached documents."""
from __future__ import annotations

import re
import socket
from datetime import timedelta
from email import message_from_bytes
from email.message import Message
from email.utils import parsedate_to_datetime

import pytest
from aiosmtpd.controller import Controller

from app.extensions import db
from app.models import AuditEvent, Document, OutboxMessage, User
from app.models.evidence import DOCX_MIMETYPE
from app.services.workflow.notifications import send_due
from tests.conftest import T0, login
from tests.integration.services.scenarios import close_capa

CLOSED_NOTICE_TO = [f"{name}@qualiflow.example" for name in ("admin", "head", "owner", "qa", "releaser")]


class Mailbox:
    """aiosmtpd handler that keeps every envelope it accepts."""

    def __init__(self) -> None:
        self.envelopes = []

    async def handle_DATA(self, server, session, envelope) -> str:
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    def messages(self) -> list[Message]:
        return [message_from_bytes(envelope.content) for envelope in self.envelopes]


class SmtpServer:
    """A real SMTP server on a fixed local port that a test can stop and start again."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.mailbox = Mailbox()
        self._controller: Controller | None = None

    def start(self) -> None:
        self._controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def smtp(app):
    """A stopped SMTP server the app is configured to send to."""
    server = SmtpServer(_free_port())
    app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=server.port)
    yield server
    server.stop()


@pytest.fixture
def notice(user) -> OutboxMessage:
    """The 'CAPA closed' e-mail a closed CAPA queued at T0 (its readers all set to English: one message, not one
    per language)."""
    db.session.execute(db.update(User).values(language="en"))
    db.session.commit()
    instance = close_capa(user, T0)
    [message] = db.session.scalars(db.select(OutboxMessage)).all()
    assert (message.status, message.instance_id, message.next_attempt_at) == ("queued", instance.id, T0)
    return message


@pytest.fixture
def queued(app) -> OutboxMessage:
    """A message queued at T0 on an unseeded database (cheaper than closing a CAPA)."""
    message = OutboxMessage(recipients="qa@qualiflow.example", subject="Recall notice", body="Please return",
                            next_attempt_at=T0)
    db.session.add(message)
    db.session.commit()
    return message


def test_queued_notice_is_delivered_to_its_recipients(smtp, notice):
    smtp.start()

    report = send_due(T0)

    assert (report.sent, report.retried, report.failed) == (1, 0, 0)
    [envelope] = smtp.mailbox.envelopes
    assert sorted(envelope.rcpt_tos) == CLOSED_NOTICE_TO
    [email] = smtp.mailbox.messages()
    assert email["Subject"] == "CAPA closed: Burr on hub"
    assert f"/instances/{notice.instance_id}" in email.get_payload(decode=True).decode()
    db.session.refresh(notice)
    assert (notice.status, notice.attempts, notice.sent_at, notice.last_error) == ("sent", 1, T0, "")
    assert send_due(T0 + timedelta(hours=1)).sent == 0
    assert len(smtp.mailbox.envelopes) == 1


def test_an_email_carries_its_date_on_the_plants_clock_and_a_unique_message_id(app, smtp, notice):
    app.config["PLANT_TIME_ZONE"] = "Asia/Shanghai"
    smtp.start()

    send_due(T0)
    send_due(T0)  # nothing more is due

    [email] = smtp.mailbox.messages()
    assert email["Date"] == "Mon, 23 Nov 2026 17:00:00 +0800"
    assert parsedate_to_datetime(email["Date"]) == T0
    assert re.fullmatch(rf"<\d+\.\d+\.\d+\.outbox-{notice.id}@127\.0\.0\.1>", email["Message-ID"])


def test_smtp_down_keeps_the_notice_for_a_later_retry(smtp, notice):
    report = send_due(T0)

    assert (report.sent, report.retried, report.failed) == (0, 1, 0)
    db.session.refresh(notice)
    assert (notice.status, notice.attempts, notice.sent_at) == ("queued", 1, None)
    assert notice.next_attempt_at == T0 + timedelta(minutes=1)
    assert "Connection" in notice.last_error
    assert send_due(T0 + timedelta(seconds=30)).retried == 0  # not due yet: no attempt is made
    db.session.refresh(notice)
    assert notice.attempts == 1


def _retry_until(notice: OutboxMessage, now, stop) -> tuple[list[timedelta], object]:
    """Let the sender retry against a server that is down until stop or until it gives up (an explicit clock, no
    sleeping); return the waits it chose and the time of its last attempt."""
    delays = []
    while now < stop:
        report = send_due(now)
        db.session.refresh(notice)
        if report.failed:
            break
        assert report.retried == 1
        delays.append(notice.next_attempt_at - now)
        now = notice.next_attempt_at
    return delays, now


def test_a_long_outage_is_retried_at_a_capped_interval_until_the_server_is_back(smtp, queued):
    notice = queued
    delays, now = _retry_until(notice, T0, T0 + timedelta(hours=5))  # the old limit gave up after about 2 h

    minutes = [int(delay / timedelta(minutes=1)) for delay in delays]
    assert minutes == [1, 2, 4, 8, 16, 32] + [60] * (len(minutes) - 6) and len(minutes) >= 9
    assert (notice.status, notice.failing_since) == ("queued", T0)
    smtp.start()
    assert send_due(now).sent == 1
    db.session.refresh(notice)
    assert (notice.status, notice.sent_at, notice.failing_since, notice.last_error) == ("sent", now, None, "")
    assert len(smtp.mailbox.envelopes) == 1


def test_an_outage_longer_than_the_retry_period_fails_the_notice_until_an_admin_resends_it(app, runner, smtp,
                                                                                          queued):
    notice = queued
    app.config["OUTBOX_RETRY_DAYS"] = 0.125  # 3 h
    delays, now = _retry_until(notice, T0, T0 + timedelta(days=1))

    assert notice.status == "failed" and T0 + timedelta(hours=3) <= now < T0 + timedelta(hours=4)
    assert notice.last_error.startswith(f"Given up after {notice.attempts} attempts since 2026-11-23T09:00:00")
    smtp.start()
    assert send_due(now + timedelta(days=1)).sent == 0  # failed stays failed
    result = runner.invoke(args=["outbox", "retry", "--all-failed"])
    assert result.exit_code == 0 and result.output == f"1 message(s) queued again: {notice.id}\n"
    db.session.expire_all()
    assert send_due().sent == 1
    db.session.refresh(notice)
    assert (notice.status, notice.attempts) == ("sent", 1)
    event = db.session.scalar(db.select(AuditEvent).where(AuditEvent.action == "outbox.resent"))
    assert (event.object_id, event.old["status"], event.new["status"]) == (str(notice.id), "failed", "queued")
    result = runner.invoke(args=["outbox", "retry", "--id", str(notice.id)])
    assert result.exit_code == 1 and f"Already sent, not sent again: {notice.id}." in result.output


class Refusing(Mailbox):
    """An SMTP server that answers one command with a fixed reply."""

    def __init__(self, command: str, reply: str) -> None:
        super().__init__()
        self.command, self.reply = command, reply

    async def handle_MAIL(self, server, session, envelope, address, options) -> str:
        if self.command == "MAIL":
            return self.reply
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, options) -> str:
        if self.command == "RCPT" and address == "qa@qualiflow.example":
            return self.reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope) -> str:
        return self.reply if self.command == "DATA" else await super().handle_DATA(server, session, envelope)


@pytest.mark.parametrize(("command", "reply", "status", "error"), [
    ("RCPT", "550 5.1.1 No such user", "failed",
     "Refused by the mail server: qa@qualiflow.example: 550 5.1.1 No such user"),
    ("DATA", "554 5.6.0 Message rejected", "failed", "Message refused by the mail server: 554 5.6.0 Message rejected"),
    ("MAIL", "553 5.7.1 Sender not allowed", "failed",
     "Sender qualiflow@localhost refused by the mail server: 553 5.7.1 Sender not allowed"),
    ("DATA", "451 4.3.0 Try again later", "queued", "SMTPDataError: (451, b'4.3.0 Try again later')"),
])
def test_a_permanent_refusal_fails_at_once_with_the_servers_reply(smtp, queued, command, reply, status, error):
    message = queued
    smtp.mailbox = Refusing(command, reply)
    smtp.start()

    send_due(T0)

    db.session.refresh(message)
    assert (message.status, message.attempts, message.last_error) == (status, 1, error)
    assert smtp.mailbox.envelopes == []


def test_recipients_refused_among_others_who_took_it_are_noted_on_the_sent_message(app, smtp):
    message = OutboxMessage(recipients="qa@qualiflow.example, head@qualiflow.example", subject="s", body="b",
                            next_attempt_at=T0)
    db.session.add(message)
    db.session.commit()
    smtp.mailbox = Refusing("RCPT", "550 5.1.1 No such user")
    smtp.start()

    assert send_due(T0).sent == 1

    db.session.refresh(message)
    assert message.status == "sent"
    assert message.last_error == "Refused by the mail server: qa@qualiflow.example: 550 5.1.1 No such user"
    assert smtp.mailbox.envelopes[0].rcpt_tos == ["head@qualiflow.example"]


def test_restarted_server_receives_the_due_retry_exactly_once(user, smtp, notice):
    smtp.start()
    assert send_due(T0).sent == 1
    smtp.stop()
    second = close_capa(user, T0 + timedelta(hours=1))
    retry = db.session.scalar(db.select(OutboxMessage).where(OutboxMessage.instance_id == second.id))
    assert send_due(T0 + timedelta(hours=1)).retried == 1

    smtp.start()
    assert send_due(T0 + timedelta(hours=1, seconds=30)).sent == 0  # back up, but the retry is not due yet
    assert send_due(T0 + timedelta(hours=1, minutes=1)).sent == 1
    assert send_due(T0 + timedelta(hours=2)).sent == 0

    assert [email["Subject"] for email in smtp.mailbox.messages()] == ["CAPA closed: Burr on hub"] * 2
    assert [f"/instances/{second.id}" in email.get_payload(decode=True).decode()
            for email in smtp.mailbox.messages()] == [False, True]
    db.session.refresh(retry)
    assert (retry.status, retry.attempts, retry.sent_at) == ("sent", 2, T0 + timedelta(hours=1, minutes=1))


def test_a_message_with_a_document_carries_it_as_a_docx_attachment(smtp, notice):
    report = db.session.scalar(db.select(Document).where(Document.instance_id == notice.instance_id))
    notice.attachment_document_id = report.id
    db.session.commit()
    smtp.start()

    assert send_due(T0).sent == 1

    [email] = smtp.mailbox.messages()
    [body, attachment] = email.get_payload()
    assert f"/instances/{notice.instance_id}" in body.get_payload(decode=True).decode()
    assert attachment.get_content_type() == DOCX_MIMETYPE
    assert attachment.get_filename() == report.filename
    assert attachment.get_payload(decode=True) == report.content


def test_an_admin_resends_a_failed_message_from_the_outbox_page(client, seeded):
    failed = OutboxMessage(recipients="qa@qualiflow.example", subject="Recall notice", body="b", status="failed",
                           attempts=9, last_error="Refused by the mail server: qa@qualiflow.example: 550 No such user")
    sent = OutboxMessage(recipients="qa@qualiflow.example", subject="Done", body="b", status="sent", attempts=1)
    db.session.add_all([failed, sent])
    db.session.commit()
    login(client, "qa")
    assert client.post("/admin/outbox/resend", data={"all_failed": "1"}).status_code == 403
    client.post("/logout")
    login(client, "admin")

    page = client.get("/admin/outbox?status=failed&lang=en").get_data(as_text=True)
    assert "550 No such user" in page and page.count('name="id"') == 1
    page = client.post("/admin/outbox/resend", data={"id": str(sent.id)}, follow_redirects=True).get_data(as_text=True)
    assert f"Already sent, not sent again: {sent.id}." in page
    page = client.post("/admin/outbox/resend", data={"id": str(failed.id), "status": "failed"},
                       follow_redirects=True).get_data(as_text=True)

    assert "1 message(s) queued again" in page
    db.session.refresh(failed)
    assert (failed.status, failed.attempts, failed.failing_since) == ("queued", 0, None)
    event = db.session.scalar(db.select(AuditEvent).where(AuditEvent.action == "outbox.resent"))
    assert (event.actor_name, event.old["attempts"]) == ("Ada Admin", 9)

"""The outbox sender against a real SMTP server (aiosmtpd): delivery, retries with backoff, giving up, recovery,
attached documents."""
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
from app.models import Document, OutboxMessage
from app.models.evidence import DOCX_MIMETYPE
from app.services.workflow.notifications import send_due
from tests.conftest import T0
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
    """The 'CAPA closed' e-mail a closed CAPA queued at T0."""
    instance = close_capa(user, T0)
    [message] = db.session.scalars(db.select(OutboxMessage)).all()
    assert (message.status, message.instance_id, message.next_attempt_at) == ("queued", instance.id, T0)
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


def test_notice_fails_after_the_last_attempt_with_growing_backoff(app, smtp, notice):
    app.config["OUTBOX_MAX_ATTEMPTS"] = 4
    now, delays = T0, []
    for _ in range(3):
        assert send_due(now).retried == 1
        db.session.refresh(notice)
        delays.append(notice.next_attempt_at - now)
        now = notice.next_attempt_at
    assert delays == [timedelta(minutes=1), timedelta(minutes=2), timedelta(minutes=4)]

    assert send_due(now).failed == 1
    db.session.refresh(notice)
    assert (notice.status, notice.attempts) == ("failed", 4)
    smtp.start()
    assert send_due(now + timedelta(days=1)).sent == 0
    assert smtp.mailbox.envelopes == []


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

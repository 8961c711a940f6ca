"""The outbox sender: deliver queued e-mail (with its document attached, if any) over SMTP with retries and
exponential backoff."""
from __future__ import annotations

import smtplib
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from urllib.parse import urlsplit

from flask import current_app
from sqlalchemy import select

from app.extensions import db
from app.models import Document, OutboxMessage
from app.models.evidence import DOCX_MIMETYPE
from app.models.types import utcnow
from app.services.workflow import plant_time, registry


@dataclass
class SendReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0


def _deliver(message: OutboxMessage, now: datetime) -> None:
    config = current_app.config
    email = EmailMessage()
    email["From"] = config["SMTP_SENDER"]
    email["To"] = message.recipients
    email["Subject"] = message.subject
    email["Date"] = format_datetime(now.astimezone(plant_time.zone()))  # the plant's clock, with its offset
    # Unique per sending attempt, yet it names the outbox row, so a reply or bounce can be traced back to it.
    email["Message-ID"] = make_msgid(f"outbox-{message.id}", urlsplit(config["BASE_URL"]).hostname or "qualiflow")
    email.set_content(message.body)
    if message.attachment_document_id is not None:
        document = db.session.get(Document, message.attachment_document_id)
        maintype, subtype = DOCX_MIMETYPE.split("/")
        email.add_attachment(document.content, maintype=maintype, subtype=subtype, filename=document.filename)
    with smtplib.SMTP(config["SMTP_HOST"], config["SMTP_PORT"], timeout=10) as smtp:
        smtp.send_message(email)


def send_due(now: datetime | None = None, limit: int = 100) -> SendReport:
    """Send queued messages that are due; each message is its own transaction so one failure loses nothing."""
    now = now or utcnow()
    report = SendReport()
    max_attempts = current_app.config["OUTBOX_MAX_ATTEMPTS"]
    ids = list(db.session.scalars(select(OutboxMessage.id).where(
        OutboxMessage.status == "queued", OutboxMessage.next_attempt_at <= now)
        .order_by(OutboxMessage.next_attempt_at).limit(limit)))
    db.session.rollback()
    for message_id in ids:
        message = db.session.scalar(select(OutboxMessage).where(
            OutboxMessage.id == message_id, OutboxMessage.status == "queued").with_for_update(skip_locked=True))
        if message is None:  # another sender took it
            db.session.rollback()
            continue
        message.attempts += 1
        try:
            _deliver(message, now)
        except (OSError, smtplib.SMTPException) as err:
            message.last_error = f"{err.__class__.__name__}: {err}"[:2000]
            if message.attempts >= max_attempts:
                message.status = "failed"
                report.failed += 1
            else:
                message.next_attempt_at = now + timedelta(minutes=2 ** (message.attempts - 1))
                report.retried += 1
        else:
            message.status, message.sent_at, message.last_error = "sent", now, ""
            for listener in registry.DELIVERY_LISTENERS:
                listener(message, now)
            report.sent += 1
        db.session.commit()
    return report


def list_outbox(status: str | None = None, page: int = 1, per_page: int = 20):
    query = select(OutboxMessage).order_by(OutboxMessage.id.desc())
    if status:
        query = query.where(OutboxMessage.status == status)
    return db.paginate(query, page=page, per_page=per_page, error_out=False)

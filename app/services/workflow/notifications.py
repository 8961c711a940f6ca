"""The outbox sender: deliver queued e-mail (with its document attached, if any) over SMTP, retrying a mail server
that is down with a capped exponential backoff for a configured period; an address the server refuses for good
fails at once. Admins resend failed messages."""
from __future__ import annotations

import smtplib
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from urllib.parse import urlsplit

from flask import current_app
from flask_babel import gettext
from sqlalchemy import select

from app.exceptions import NotFound, ValidationFailed
from app.extensions import db
from app.models import Document, OutboxMessage, User
from app.models.evidence import DOCX_MIMETYPE
from app.models.types import utcnow
from app.services.evidence import audit
from app.services.workflow import plant_time, registry
from app.services.workflow.transaction import atomic


@dataclass
class SendReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0


def _deliver(message: OutboxMessage, now: datetime) -> dict:
    """Hand the message to the SMTP server; return the recipients it refused (the others took it)."""
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
        return smtp.send_message(email)


def _reply(code: int, text: bytes | str) -> str:
    return f"{code} {text.decode(errors='replace') if isinstance(text, bytes) else text}".strip()


def refused_for_good(err: Exception) -> str | None:
    """Return why the mail server refused the message for good (a 5xx reply to the sender, every recipient or the
    content), or None when it may take it later (down, busy, a 4xx reply)."""
    if isinstance(err, smtplib.SMTPRecipientsRefused):
        if err.recipients and all(code >= 500 for code, _ in err.recipients.values()):
            return "Refused by the mail server: " + "; ".join(
                f"{address}: {_reply(code, text)}" for address, (code, text) in err.recipients.items())
    elif isinstance(err, smtplib.SMTPSenderRefused):
        if err.smtp_code >= 500:
            return f"Sender {err.sender} refused by the mail server: {_reply(err.smtp_code, err.smtp_error)}"
    elif isinstance(err, smtplib.SMTPDataError) and err.smtp_code >= 500:
        return f"Message refused by the mail server: {_reply(err.smtp_code, err.smtp_error)}"
    return None


def retry_delay(attempts: int) -> timedelta:
    """The wait after the attempts-th failed attempt in a row: 1, 2, 4 ... minutes, capped."""
    cap = current_app.config["OUTBOX_RETRY_MAX_MINUTES"]
    return timedelta(minutes=min(cap, 2 ** min(attempts - 1, 30)))


def send_due(now: datetime | None = None, limit: int = 100) -> SendReport:
    """Send queued messages that are due; each message is its own transaction so one failure loses nothing.

    A message the server cannot take now is retried (retry_delay) until OUTBOX_RETRY_DAYS have passed since the
    first failed attempt of the run, then it is failed with the last error; an address the server refuses with a
    5xx is failed at once with the server's reply."""
    now = now or utcnow()
    report = SendReport()
    retry_period = timedelta(days=current_app.config["OUTBOX_RETRY_DAYS"])
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
            refused = _deliver(message, now)
        except (OSError, smtplib.SMTPException) as err:
            permanent = refused_for_good(err)
            message.last_error = (permanent or f"{err.__class__.__name__}: {err}")[:2000]
            message.failing_since = message.failing_since or now
            if permanent is None and now - message.failing_since < retry_period:
                message.next_attempt_at = now + retry_delay(message.attempts)
                report.retried += 1
            else:
                if permanent is None:
                    message.last_error = (f"Given up after {message.attempts} attempts since "
                                          f"{message.failing_since.isoformat()}: {message.last_error}")[:2000]
                message.status = "failed"
                report.failed += 1
        else:
            # Recipients refused while others took it: the message went out; the refusals are kept to be seen.
            message.last_error = ("Refused by the mail server: " + "; ".join(
                f"{address}: {_reply(code, text)}" for address, (code, text) in refused.items()))[:2000] \
                if refused else ""
            message.status, message.sent_at, message.failing_since = "sent", now, None
            for listener in registry.DELIVERY_LISTENERS:
                listener(message, now)
            report.sent += 1
        db.session.commit()
    return report


def resend(ids: list[int] | None = None, *, all_failed: bool = False, actor: User | None = None,
           now: datetime | None = None) -> list[int]:
    """Queue messages again to be sent on the sender's next pass: the given failed or queued ones, or every failed
    one; each resend is audited. Return the ids queued again. One transaction: all of them or none."""
    now = now or utcnow()
    query = select(OutboxMessage).with_for_update()
    if all_failed:
        query = query.where(OutboxMessage.status == "failed")
    elif ids:
        query = query.where(OutboxMessage.id.in_(ids))
    else:
        raise ValidationFailed("Name the messages to send again, or all failed ones.")
    with atomic():
        messages = list(db.session.scalars(query.order_by(OutboxMessage.id)))
        missing = sorted(set(ids or ()) - {m.id for m in messages})
        if missing:
            raise NotFound(gettext("No outbox message %(ids)s.", ids=", ".join(map(str, missing))))
        sent = [m.id for m in messages if m.status == "sent"]
        if sent:
            raise ValidationFailed(gettext("Already sent, not sent again: %(ids)s.", ids=", ".join(map(str, sent))))
        for message in messages:
            audit.record(actor, "outbox.resent", "outbox_message", message.id, instance_id=message.instance_id,
                         at=now, old={"status": message.status, "attempts": message.attempts,
                                      "last_error": message.last_error},
                         new={"status": "queued", "recipients": message.recipients})
            message.status, message.attempts, message.next_attempt_at = "queued", 0, now
            message.failing_since = None
    return [m.id for m in messages]


def list_outbox(status: str | None = None, page: int = 1, per_page: int = 20):
    query = select(OutboxMessage).order_by(OutboxMessage.id.desc())
    if status:
        query = query.where(OutboxMessage.status == status)
    return db.paginate(query, page=page, per_page=per_page, error_out=False)

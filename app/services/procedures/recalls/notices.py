"""Notices to consignees in their language with single-use acknowledgment links, reminders, acknowledgments,
and delivery: a notice counts when the mail server accepted it; undelivered notices escalate."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app.exceptions import Conflict, FormInvalid
from app.extensions import db
from app.models import (
    Customer,
    Deadline,
    OutboxMessage,
    ProcessInstance,
    RecallConsignee,
)
from app.models.types import INT_MAX, utcnow
from app.services.evidence import audit
from app.services.evidence.document_rendering import store_document
from app.services.procedures.recalls.base import NOTICE_TEMPLATES, _above_lot, _msg, _text, delivered
from app.services.procedures.recalls.status import meet_notice_deadline, recall_view
from app.services.procedures.recalls.views import _consignee_dict, document_context
from app.services.workflow import response_links
from app.services.workflow.transaction import atomic


@dataclass(frozen=True)
class NoticeOptions:
    """What the person preparing the notices decided, and where the files and links come from."""

    templates_dir: Path
    base_url: str
    ack_days: int = 30
    forward_request: bool = False
    instructions: str = ""  # one text for every consignee: only a recall started on an earlier procedure version
    contact: str = ""
    company: dict[str, str] = field(default_factory=dict)
    # The free text a consignee reads, per language ("en", "zh-CN") and NOTICE_TEXTS name.
    texts: dict[str, dict[str, str]] = field(default_factory=dict)

    def text(self, language: str, name: str) -> str:
        """Return the notice text `name` written in a consignee's language (the earlier single text if none)."""
        written = str((self.texts.get(language) or {}).get(name) or "").strip()
        return written or {"instructions": self.instructions, "contact": self.contact}.get(name, "")


# Free text a notice carries, with the notice form's field (suffixed per language) and its minimum length.
NOTICE_TEXTS = {"reason": ("reason", 10), "instructions": ("instructions", 10), "contact": ("notice_contact", 3)}


LANGUAGE_SUFFIX = {"en": "en", "zh-CN": "zh"}


_CHINESE = re.compile(r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]")


def consignee_languages(instance_id: int) -> dict[str, list[str]]:
    """Return the languages a recall's consignees read their notice in, each with the consignees' codes."""
    languages: dict[str, list[str]] = {}
    for language, code in db.session.execute(
            select(RecallConsignee.language, Customer.code).join(Customer, Customer.id == RecallConsignee.customer_id)
            .where(RecallConsignee.instance_id == instance_id).order_by(Customer.code)):
        languages.setdefault(language if language in LANGUAGE_SUFFIX else "en", []).append(code)
    return languages


def check_notice_languages(instance: ProcessInstance | None, data: dict[str, Any], lang: str,
                           ) -> dict[str, list[str]]:
    """Form check for the notices: every text in each language the recall's consignees read, and no Chinese in
    an English text (an English notice never carries Chinese)."""
    errors: dict[str, list[str]] = {}
    for form_field, _ in NOTICE_TEXTS.values():
        if _CHINESE.search(str(data.get(f"{form_field}_en") or "")):
            errors[f"{form_field}_en"] = [_msg(lang, "chinese_in_english")]
    if instance is None:
        return errors
    for language, codes in consignee_languages(instance.id).items():
        suffix = LANGUAGE_SUFFIX[language]
        readers = ", ".join(codes[:5]) + (" …" if len(codes) > 5 else "")
        for form_field, minimum in NOTICE_TEXTS.values():
            key = f"{form_field}_{suffix}"
            text = str(data.get(key) or "").strip()
            if key in errors:
                continue
            if not text:
                errors[key] = [_msg(lang, "text_needed", consignees=readers,
                                    language=_text(lang, f"language_{language}"))]
            elif len(text) < minimum:
                errors[key] = [_msg(lang, "text_too_short", n=minimum)]
    return errors


def _new_link(consignee: RecallConsignee, options: NoticeOptions, now: datetime) -> str:
    token = response_links.issue(consignee, now + timedelta(days=options.ack_days))
    return f"{options.base_url.rstrip('/')}/ack/{token}"


def _notice_mail(consignee: RecallConsignee, product: str, link: str, expires: date, reminder: bool) -> tuple[str, str]:
    name = consignee.customer.name
    if consignee.language == "zh-CN":
        subject = ("提醒：" if reminder else "紧急：") + f"医疗器械召回通知 - {product}"
        body = (f"{name}：\n\n" + ("您尚未确认收到我们的召回通知。" if reminder else "")
                + f"我们正在召回 {product} 的部分批次，您单位曾收到受影响的产品。请立即停止使用和销售，"
                  f"隔离库存，并按附件《召回通知》办理。\n\n请在 {expires.isoformat()} 前通过以下链接确认收到并填写"
                  f"库存和退回数量（链接仅可使用一次）：\n{link}\n")
    else:
        subject = ("Reminder: " if reminder else "Urgent: ") + f"medical device recall - {product}"
        body = (f"Dear {name},\n\n" + ("We have not yet received your acknowledgment of our recall notice. "
                                       if reminder else "")
                + f"We are recalling lots of {product} that you received. Stop using and distributing them, "
                  f"quarantine your stock and follow the attached recall notice.\n\nPlease confirm receipt and "
                  f"report stock on hand and quantities returned by {expires.isoformat()} at this single-use "
                  f"link:\n{link}\n")
    return subject, body


def notice_kind(consignee: RecallConsignee) -> str:
    """Name each consignee's notice as its own document (a gate signs every one), by customer code when it
    can name a file."""
    code = consignee.customer.code
    return f"recall_notice_{code}" if re.fullmatch(r"\w+", code, re.ASCII) else f"recall_notice_{consignee.id}"


def send_notices(instance: ProcessInstance, options: NoticeOptions, now: datetime, *,
                 data: dict[str, Any] | None = None, task_spiff_id: str = "", element_id: str = "") -> dict[str, int]:
    """Render one notice per consignee (template by consignee type and language), queue it with its
    acknowledgment link; consignees already notified are skipped, so a retry sends nothing twice."""
    view = recall_view(instance.id)
    queued = without_email = 0
    for consignee in view.consignees:
        if consignee.notified_at is not None:
            continue
        link = _new_link(consignee, options, now)
        context = document_context(instance, now, consignee.language, data=data, view=view, company=options.company)
        context["generated_at"] = now.isoformat(timespec="seconds")  # the notice's date
        context["consignee"] = _consignee_dict(consignee, consignee.language, with_lines=True)
        # Free text in the consignee's language only (the form asked for every language the consignees read).
        recall = context["recall"]
        context["notice"] = {"ack_url": link, "ack_expires_on": consignee.token_expires_at.date().isoformat(),
                             "forward_request": options.forward_request and consignee.customer.kind == "distributor",
                             "reason": (options.text(consignee.language, "reason") or recall.get("hazard")
                                        or recall.get("description")),
                             "instructions": options.text(consignee.language, "instructions"),
                             "contact": options.text(consignee.language, "contact")}
        kind = consignee.customer.kind if consignee.customer.kind in NOTICE_TEMPLATES else "end_user"
        document = store_document(instance, templates_dir=options.templates_dir, template=NOTICE_TEMPLATES[kind],
                                  kind=notice_kind(consignee), language=consignee.language, context=context, now=now,
                                  task_spiff_id=task_spiff_id or None, element_id=element_id or None)
        consignee.notice_document_id = document.id
        consignee.notified_at = now
        if consignee.customer.email:
            subject, body = _notice_mail(consignee, context["recall"]["product"]["name"], link,
                                         consignee.token_expires_at.date(), reminder=False)
            consignee.message = OutboxMessage(
                idempotency_key=f"recall-notice:{instance.id}:{consignee.id}", recipients=consignee.customer.email,
                subject=subject, body=body, instance_id=instance.id, created_at=now, next_attempt_at=now,
                attachment_document_id=document.id)
            queued += 1
        else:
            without_email += 1
        audit.record(None, "recall.notice_queued", "recall_consignee", consignee.id, instance_id=instance.id,
                     at=now, new={"customer": consignee.customer.code, "document": document.filename,
                                  "language": consignee.language, "email": consignee.customer.email or None,
                                  "expires_at": consignee.token_expires_at.isoformat()})
    db.session.flush()
    return {"queued": queued, "without_email": without_email, "consignees": len(view.consignees)}


def send_reminders(instance: ProcessInstance, options: NoticeOptions, after_days: int, now: datetime,
                   run_key: str) -> int:
    """Remind consignees who have not acknowledged within after_days of their notice (or last reminder).

    Each reminder carries a new link (only hashes are stored, so the old one cannot be resent); it replaces
    the earlier link. run_key makes a retried timer run queue nothing twice.
    """
    view = recall_view(instance.id)
    due = now - timedelta(days=after_days)
    sent = 0
    for consignee in view.consignees:
        last = consignee.last_reminded_at or consignee.notified_at
        if (consignee.acknowledged_at is not None or last is None or last > due or not consignee.customer.email
                or db.session.scalar(select(OutboxMessage.id).where(
                    OutboxMessage.idempotency_key == f"{run_key}:{consignee.id}"))):
            continue
        link = _new_link(consignee, options, now)
        subject, body = _notice_mail(consignee, view.product_name, link, consignee.token_expires_at.date(),
                                     reminder=True)
        db.session.add(OutboxMessage(
            idempotency_key=f"{run_key}:{consignee.id}", recipients=consignee.customer.email, subject=subject,
            body=body, instance_id=instance.id, created_at=now, next_attempt_at=now,
            attachment_document_id=consignee.notice_document_id))
        consignee.reminders += 1
        consignee.last_reminded_at = now
        audit.record(None, "recall.reminder_queued", "recall_consignee", consignee.id, instance_id=instance.id,
                     at=now, new={"customer": consignee.customer.code, "reminder": consignee.reminders})
        sent += 1
    return sent


def consignee_for_token(token: str, now: datetime | None = None) -> RecallConsignee:
    """Return the consignee a link belongs to; forged links are 404, used ones 409, expired ones 410
    (the latter two in the consignee's language)."""
    return response_links.find(RecallConsignee, token, answered_at="acknowledged_at", now=now or utcnow(),
                               message=_msg, options=[selectinload(RecallConsignee.lines)])


def link_language(token: str) -> str | None:
    """Return the language of the consignee a link was sent to (also once used or expired), None if forged."""
    return response_links.language(RecallConsignee, token)


def _int(value: Any, name: str, errors: dict[str, list[str]], lang: str) -> int | None:
    if value in (None, ""):
        return None
    try:
        number = int(str(value).strip())
    except ValueError:
        errors.setdefault(name, []).append(_msg(lang, "whole_number"))
        return None
    if number < 0:
        errors.setdefault(name, []).append(_msg(lang, "not_negative"))
    elif number > INT_MAX:
        errors.setdefault(name, []).append(_msg(lang, "too_large", limit=INT_MAX))
        return None
    return number


def acknowledge(token: str, answers: dict[str, Any], now: datetime | None = None) -> RecallConsignee:
    """Record a consignee's answer from the public page: received, stock on hand, returned/destroyed per lot."""
    now = now or utcnow()
    with atomic():
        consignee = consignee_for_token(token, now)
        db.session.refresh(consignee, with_for_update=True)  # a second submit of the same link waits, then fails
        if consignee.acknowledged_at is not None:
            raise Conflict(_msg(consignee.language, "link_used"))
        errors: dict[str, list[str]] = {}
        lang = consignee.language
        received = answers.get("received")
        if received not in (True, False):
            errors["received"] = [_msg(lang, "say_received")]
        on_hand = _int(answers.get("on_hand"), "on_hand", errors, lang)
        quantities = {}
        for line in consignee.lines:
            returned = _int(answers.get(f"returned_{line.id}"), f"returned_{line.id}", errors, lang) or 0
            destroyed = _int(answers.get(f"destroyed_{line.id}"), f"destroyed_{line.id}", errors, lang) or 0
            if returned + destroyed > line.quantity_shipped:
                errors.setdefault(f"returned_{line.id}", []).append(_msg(
                    lang, "above_shipped", total=returned + destroyed, shipped=line.quantity_shipped,
                    lot=line.product_lot.lot_number))
            elif problem := _above_lot(line, returned + destroyed, lang):
                errors.setdefault(f"returned_{line.id}", []).append(problem)
            quantities[line.id] = (returned, destroyed)
        contact = str(answers.get("contact") or "").strip()
        if not contact:
            errors["contact"] = [_msg(lang, "contact")]
        if errors:
            raise FormInvalid(errors)
        consignee.acknowledged_at = now
        consignee.ack_received, consignee.ack_on_hand = received, on_hand
        consignee.ack_contact, consignee.ack_comment = contact[:200], str(answers.get("comment") or "")[:4000]
        consignee.ack_forwarded = answers.get("forwarded") if consignee.customer.kind == "distributor" else None
        consignee.token_expires_at = now  # single use: the link stops working now
        for line in consignee.lines:
            line.quantity_returned, line.quantity_destroyed = quantities[line.id]
        audit.record(None, "recall.acknowledged", "recall_consignee", consignee.id,
                     instance_id=consignee.instance_id, at=now, actor_name=f"consignee {consignee.customer.code}",
                     new={"received": received, "on_hand": on_hand, "contact": contact,
                          "returned": {line.product_lot.lot_number: quantities[line.id][0] for line in consignee.lines},
                          "destroyed": {line.product_lot.lot_number: quantities[line.id][1]
                                        for line in consignee.lines}})
        meet_notice_deadline(consignee.instance_id, now)
    return consignee


def undelivered_reason(consignee: RecallConsignee, lang: str) -> str:
    """Say why a consignee's notice has not reached it, in lang (the states the recall workspace shows), with
    the mail server's last answer."""
    message = consignee.message
    if consignee.notified_at is None:
        return _text(lang, "undelivered_not_sent")
    if message is None:
        return _text(lang, "undelivered_no_email")
    state = "failed" if message.status == "failed" else "retrying" if message.attempts else "queued"
    return _text(lang, f"undelivered_{state}") + (f" ({message.last_error})" if message.last_error else "")


def escalate_undelivered(instance_id: int, key: str, now: datetime) -> list[RecallConsignee]:
    """At the consignee-notification deadline: return the consignees whose notice has not reached them (none
    when the deadline is met); when there are any, the deadline is marked escalated and the list audited."""
    deadline = db.session.scalar(select(Deadline).where(Deadline.instance_id == instance_id, Deadline.key == key))
    if deadline is None or deadline.met_at is not None:
        return []
    missing = [c for c in recall_view(instance_id).consignees if not delivered(c)]
    if missing:  # a late preparation may have escalated the deadline already: this escalation names who is missing
        deadline.escalated_at = deadline.escalated_at or now
        audit.record(None, "deadline.escalated", "deadline", key, instance_id=instance_id, at=now,
                     new={"due_at": deadline.due_at.isoformat(), "undelivered": [c.customer.code for c in missing]})
    return missing


def notice_delivered(message: OutboxMessage, now: datetime) -> None:
    """Record that the mail server accepted a recall notice's e-mail (the outbox calls this when it sends one)."""
    consignee = db.session.scalar(select(RecallConsignee).where(RecallConsignee.outbox_message_id == message.id))
    if consignee is None:
        return
    audit.record(None, "recall.notice_delivered", "recall_consignee", consignee.id, instance_id=consignee.instance_id,
                 at=now, new={"customer": consignee.customer.code, "email": message.recipients})
    meet_notice_deadline(consignee.instance_id, now)

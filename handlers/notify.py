"""notify.email: queue an e-mail in the outbox, sent later with retries by the outbox sender; in each recipient's
language: users whose language is zh-CN get subject_zh/body_zh (when the diagram gives them), everyone else, and
plain addresses, the English subject and body - one message per language."""
from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate
from sqlalchemy import select

from app.models import Group, OutboxMessage, User
from app.services.studio import diagrams
from app.services.workflow import titles
from handlers.base import HandlerContext, HandlerError


class EmailParams(Schema):
    to = fields.List(fields.Str(), required=True, validate=validate.Length(min=1),
                     metadata={"description": "addresses, 'group:NAME', 'user:NAME' or 'initiator'"})
    subject = fields.Str(required=True, validate=validate.Length(min=1, max=300))
    body = fields.Str(required=True)
    subject_zh = fields.Str(load_default="", validate=validate.Length(max=300),
                            metadata={"description": "the subject for recipients who read Chinese (default: subject)"})
    body_zh = fields.Str(load_default="", metadata={"description": "the body for them (default: body)"})


def _users(users) -> list[tuple[str, str]]:
    return [(u.email, u.language or "en") for u in users if u.email]


def _resolve(ctx: HandlerContext, recipient: str) -> list[tuple[str, str]]:
    """The (address, language) pairs a recipient stands for; a plain address reads English."""
    if recipient == "initiator":
        user = ctx.instance.started_by
        return _users([user] if user else [])
    if recipient.startswith("group:"):
        group = ctx.session.scalar(select(Group).where(Group.name == recipient[6:]))
        if group is None:
            raise HandlerError(f"unknown group {recipient[6:]!r}")
        return _users(ctx.session.scalars(select(User).where(User.groups.contains(group), User.active.is_(True))))
    if recipient.startswith("user:"):
        user = ctx.session.scalar(select(User).where(User.username == recipient[5:]))
        if user is None:
            raise HandlerError(f"unknown user {recipient[5:]!r}")
        return _users([user])
    if "@" not in recipient:
        raise HandlerError(f"not an e-mail address, group or user: {recipient!r}")
    return [(recipient, "en")]


def queue_email(ctx: HandlerContext, params: dict[str, Any]) -> dict[str, Any]:
    """Queue one message per language to the resolved recipients (a user listed twice gets one); a retry of the
    same task queues nothing new."""
    existing = list(ctx.session.scalars(select(OutboxMessage).where(
        OutboxMessage.idempotency_key.in_([ctx.idempotency_key, f"{ctx.idempotency_key}:zh-CN"]))
        .order_by(OutboxMessage.id)))
    if existing:
        return {"message_id": existing[0].id, "message_ids": [m.id for m in existing],
                "recipients": sorted(a for m in existing for a in m.recipients.split(","))}
    languages: dict[str, str] = {}
    for r in params["to"]:
        for address, language in _resolve(ctx, r):
            languages.setdefault(address, language)
    if not languages:
        raise HandlerError(f"no recipient with an e-mail address in {', '.join(params['to'])}")
    link = f"{ctx.base_url}/instances/{ctx.instance.id}"
    chinese = sorted(a for a, language in languages.items() if language == "zh-CN")
    english = sorted(a for a in languages if a not in chinese)
    messages = []
    subject_zh, body_zh = params.get("subject_zh") or params["subject"], params.get("body_zh") or params["body"]
    if chinese:  # the instance's stored (English) title, as the diagram put it in, reads in Chinese
        names = diagrams.procedure_titles_zh()
        subject_zh = titles.in_language(subject_zh, ctx.instance.title, "zh-CN", names)
        body_zh = titles.in_language(body_zh, ctx.instance.title, "zh-CN", names)
    for recipients, subject, body, key in (
            (english, params["subject"], params["body"], ctx.idempotency_key),
            (chinese, subject_zh, body_zh, f"{ctx.idempotency_key}:zh-CN" if english else ctx.idempotency_key)):
        if recipients:
            messages.append(OutboxMessage(
                idempotency_key=key, recipients=",".join(recipients), subject=subject,
                body=f"{body}\n\n{link}\n", instance_id=ctx.instance.id, created_at=ctx.now, next_attempt_at=ctx.now))
    ctx.session.add_all(messages)
    ctx.session.flush()
    return {"message_id": messages[0].id, "message_ids": [m.id for m in messages], "recipients": sorted(languages)}

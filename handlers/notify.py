"""notify.email: queue an e-mail in the outbox, sent later with retries by the outbox sender."""
from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate
from sqlalchemy import select

from app.models import Group, OutboxMessage, User
from handlers.base import HandlerContext, HandlerError


class EmailParams(Schema):
    to = fields.List(fields.Str(), required=True, validate=validate.Length(min=1),
                     metadata={"description": "addresses, 'group:NAME', 'user:NAME' or 'initiator'"})
    subject = fields.Str(required=True, validate=validate.Length(min=1, max=300))
    body = fields.Str(required=True)


def _resolve(ctx: HandlerContext, recipient: str) -> list[str]:
    if recipient == "initiator":
        user = ctx.instance.started_by
        return [user.email] if user and user.email else []
    if recipient.startswith("group:"):
        group = ctx.session.scalar(select(Group).where(Group.name == recipient[6:]))
        if group is None:
            raise HandlerError(f"unknown group {recipient[6:]!r}")
        users = ctx.session.scalars(select(User).where(User.groups.contains(group), User.active.is_(True)))
        return [u.email for u in users if u.email]
    if recipient.startswith("user:"):
        user = ctx.session.scalar(select(User).where(User.username == recipient[5:]))
        if user is None:
            raise HandlerError(f"unknown user {recipient[5:]!r}")
        return [user.email] if user.email else []
    if "@" not in recipient:
        raise HandlerError(f"not an e-mail address, group or user: {recipient!r}")
    return [recipient]


def queue_email(ctx: HandlerContext, params: dict[str, Any]) -> dict[str, Any]:
    """Queue one message to every resolved recipient; a retry of the same task queues nothing new."""
    existing = ctx.session.scalar(select(OutboxMessage).where(OutboxMessage.idempotency_key == ctx.idempotency_key))
    if existing is not None:
        return {"message_id": existing.id, "recipients": existing.recipients.split(",")}
    recipients = sorted({address for r in params["to"] for address in _resolve(ctx, r)})
    if not recipients:
        raise HandlerError(f"no recipient with an e-mail address in {', '.join(params['to'])}")
    link = f"{ctx.base_url}/instances/{ctx.instance.id}"
    message = OutboxMessage(
        idempotency_key=ctx.idempotency_key, recipients=",".join(recipients), subject=params["subject"],
        body=f"{params['body']}\n\n{link}\n", instance_id=ctx.instance.id, created_at=ctx.now,
        next_attempt_at=ctx.now)
    ctx.session.add(message)
    ctx.session.flush()
    return {"message_id": message.id, "recipients": recipients}

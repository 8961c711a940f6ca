"""deadlines.*: start an instance's regulatory deadlines from durations the diagram gives, and escalate missed ones."""
from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from app.engine import parse_duration
from app.services.workflow import deadlines, escalations
from handlers.base import HandlerContext
from handlers.notify import EmailParams, queue_email

KEY = validate.Regexp(r"^[a-z][a-z0-9_]*$", error="lower-case letters, digits and underscores")


class DeadlineItem(Schema):
    key = fields.Str(required=True, validate=KEY)
    label = fields.Str(required=True, validate=validate.Length(min=1, max=200))
    label_zh = fields.Str(load_default="", validate=validate.Length(max=200))
    met_by = fields.Str(required=True, metadata={"description": "the element whose completion meets the deadline"})
    due_in = fields.Str(load_default=None, metadata={"description": "ISO 8601 duration from now: P3D, PT24H"})
    working_days = fields.Int(load_default=None, validate=validate.Range(min=0, max=365))
    calendar = fields.Str(load_default=None, validate=validate.Regexp(r"^[A-Z]{2,10}$"), metadata={
        "description": "holiday calendar of working days: US for FDA, CN for NMPA; default the plant's"})
    when = fields.Bool(load_default=True, metadata={"description": "False leaves the deadline out"})

    @validates_schema
    def _one_duration(self, data: dict, **_: Any) -> None:
        if (data.get("due_in") is None) == (data.get("working_days") is None):
            raise ValidationError("give either due_in or working_days")
        if data.get("due_in") is not None:
            try:
                parse_duration(data["due_in"])
            except ValueError as err:
                raise ValidationError(str(err), "due_in") from err


class StartParams(Schema):
    deadlines = fields.List(fields.Nested(DeadlineItem), required=True, validate=validate.Length(min=1))


def start(ctx: HandlerContext, params: dict[str, Any]) -> dict[str, str]:
    """Create the deadlines counted from now (working days skip weekends and the holidays of their calendar);
    return {key: due time (ISO)} for the diagram's timers."""
    specs = [deadlines.DeadlineSpec(key=item["key"], label=item["label"], label_zh=item["label_zh"],
                                    met_by=item["met_by"], due_in=item["due_in"], working_days=item["working_days"],
                                    calendar=item["calendar"])
             for item in params["deadlines"] if item["when"]]
    rows = deadlines.start_deadlines(ctx.instance.id, specs, ctx.now)
    return {row.key: row.due_at.isoformat() for row in rows}


class EscalateParams(EmailParams):
    key = fields.Str(required=True, validate=KEY)


def escalate(ctx: HandlerContext, params: dict[str, Any]) -> dict[str, Any]:
    """Mark a missed deadline escalated and e-mail the escalation; a deadline met meanwhile sends nothing."""
    deadline = deadlines.escalate(ctx.instance.id, params["key"], ctx.now)
    if deadline is None:
        return {"key": params["key"], "escalated": False}
    note = escalations.escalation_note(deadline, ctx.now)  # the step, its due time, how late, who holds it
    sent = queue_email(ctx, {"to": params["to"], "subject": params["subject"], "subject_zh": params["subject_zh"],
                             "body": f"{params['body']}\n\n{note['en']}",
                             "body_zh": f"{params['body_zh'] or params['body']}\n\n{note['zh-CN']}"})
    return {"key": params["key"], "escalated": True, "due_at": deadline.due_at.isoformat(), **sent}

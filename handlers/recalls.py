"""recall.*: the recall procedure's steps - affected list, recalling the lots, notices, reminders, documents, sample."""
from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate
from sqlalchemy import func, select

from app.exceptions import QualiflowError
from app.models import Document
from app.services.procedures import recalls
from handlers.base import HandlerContext, HandlerError
from handlers.deadlines import KEY
from handlers.documents import NAME, render_evidence
from handlers.notify import EmailParams, queue_email


class ScopeParams(Schema):
    product_lots = fields.Raw(load_default="", metadata={"description": "product lot numbers"})
    material_lots = fields.Raw(load_default="", metadata={"description": "material lot numbers"})
    sterilization_batches = fields.Raw(load_default="", metadata={"description": "sterilization batch numbers"})
    serials = fields.Raw(load_default="", metadata={"description": "serial numbers or ranges SN0001-SN0050"})
    udi = fields.Str(load_default="", metadata={"description": "a scanned UDI / GS1 element string"})


def find_affected(ctx: HandlerContext, params: dict[str, Any]) -> dict[str, Any]:
    """Trace the trigger's scope forward and store the affected lots, consignees and quantities with the recall.

    A parameter left out of the diagram is read from the trigger form's field of the same name.
    """
    scope = recalls.resolve_scope({name: params[name] or ctx.data.get(name, "") for name in ScopeParams().fields})
    if scope.errors:
        raise HandlerError(" ".join(m for messages in scope.errors.values() for m in messages))
    forward = scope.trace()
    if not forward.product_lots:
        raise HandlerError("no product lot is affected: the affected list would be empty")
    recalls.build_affected(ctx.instance.id, forward)
    return recalls.affected_summary(ctx.instance.id)


class RecallLotsParams(Schema):
    reason = fields.Str(required=True, validate=validate.Length(min=1, max=2000))


def recall_lots(ctx: HandlerContext, params: dict[str, Any]) -> dict[str, Any]:
    """Set every affected lot to recalled (blocked from shipment); the time is the recall decision's."""
    try:
        decision = recalls.recall_lots(ctx.instance, params["reason"], ctx.now)
    except QualiflowError as err:
        raise HandlerError(err.message) from err
    return {**decision, **recalls.affected_summary(ctx.instance.id)}


def _notice_options(ctx: HandlerContext, params: dict[str, Any]) -> recalls.NoticeOptions:
    texts = {language: {name: params.get(f"{name}_{suffix}") or "" for name in recalls.NOTICE_TEXTS}
             for language, suffix in recalls.LANGUAGE_SUFFIX.items()}
    return recalls.NoticeOptions(
        templates_dir=ctx.templates_dir, base_url=ctx.base_url, ack_days=params.get("ack_days", 30),
        forward_request=bool(params.get("forward_request")), instructions=params.get("instructions") or "",
        contact=params.get("contact") or "", company=ctx.company, texts=texts)


class NoticeParams(Schema):
    ack_days = fields.Int(load_default=30, validate=validate.Range(min=1, max=365),
                          metadata={"description": "days the acknowledgment link stays valid"})
    forward_request = fields.Bool(load_default=False, metadata={"description": "ask distributors to forward"})
    # What a consignee reads is in its language: each text per language (zh: consignees in China, en: elsewhere).
    reason_zh = fields.Str(load_default="", validate=validate.Length(max=4000))
    reason_en = fields.Str(load_default="", validate=validate.Length(max=4000))
    instructions_zh = fields.Str(load_default="", validate=validate.Length(max=4000))
    instructions_en = fields.Str(load_default="", validate=validate.Length(max=4000))
    contact_zh = fields.Str(load_default="", validate=validate.Length(max=300))
    contact_en = fields.Str(load_default="", validate=validate.Length(max=300))
    instructions = fields.Str(load_default="", validate=validate.Length(max=4000), metadata={
        "description": "one text for every consignee (earlier procedure versions; the per-language text wins)"})
    contact = fields.Str(load_default="", validate=validate.Length(max=300), metadata={
        "description": "one contact for every consignee (earlier procedure versions)"})


def send_notices(ctx: HandlerContext, params: dict[str, Any]) -> dict[str, Any]:
    """Render and queue one notice per consignee with a single-use acknowledgment link."""
    return recalls.send_notices(ctx.instance, _notice_options(ctx, params), ctx.now, data=ctx.data,
                                task_spiff_id=ctx.spiff_id, element_id=ctx.element_id)


class ReminderParams(NoticeParams):
    after_days = fields.Int(required=True, validate=validate.Range(min=1, max=365),
                            metadata={"description": "remind consignees silent this many days after a notice"})


def send_reminders(ctx: HandlerContext, params: dict[str, Any]) -> dict[str, Any]:
    """Remind consignees who have not acknowledged; one reminder per consignee per timer run."""
    sent = recalls.send_reminders(ctx.instance, _notice_options(ctx, params), params["after_days"], ctx.now,
                                  run_key=f"recall-reminder:{ctx.idempotency_key}")
    return {"reminded": sent}


class UndeliveredParams(EmailParams):
    key = fields.Str(load_default="consignee_notice", validate=KEY,
                     metadata={"description": "the consignee-notification deadline"})


def escalate_undelivered(ctx: HandlerContext, params: dict[str, Any]) -> dict[str, Any]:
    """At the notification deadline, escalate the notices not yet delivered: the deadline is marked escalated
    and the e-mail lists each undelivered consignee and why; nothing when every notice was delivered."""
    missing = recalls.escalate_undelivered(ctx.instance.id, params["key"], ctx.now)
    if not missing:
        return {"escalated": False, "undelivered": []}
    lang = ctx.instance.language
    rows = [{"code": c.customer.code, "name": c.customer.name, "email": c.customer.email or "",
             "reason": recalls.undelivered_reason(c, lang)} for c in missing]

    def listing(language: str) -> str:  # each reader's e-mail gives the reasons in their language
        return "\n".join(f"- {c.customer.code} {c.customer.name} {c.customer.email or ''}: "
                         f"{recalls.undelivered_reason(c, language)}" for c in missing)
    sent = queue_email(ctx, {"to": params["to"], "subject": params["subject"],
                             "body": f"{params['body']}\n\n{listing('en')}", "subject_zh": params["subject_zh"],
                             "body_zh": f"{params['body_zh'] or params['body']}\n\n{listing('zh-CN')}"})
    return {"escalated": True, "undelivered": rows, **sent}


class RecallRenderParams(Schema):
    template = fields.Str(required=True, validate=NAME)
    kind = fields.Str(load_default=None, validate=NAME)
    language = fields.Str(load_default=None, validate=validate.OneOf(["en", "zh-CN"]))


def render(ctx: HandlerContext, params: dict[str, Any]) -> dict[str, Any]:
    """Render a recall document with the affected list, consignees, quantities, deadlines and effectiveness."""
    language = params["language"] or ctx.instance.language
    kind = params["kind"] or params["template"]
    report_no = 1 + (ctx.session.scalar(select(func.count(Document.id)).where(
        Document.instance_id == ctx.instance.id, Document.kind == kind)) or 0)
    context = recalls.document_context(ctx.instance, ctx.now, language, data=ctx.data, company=ctx.company,
                                       report_no=report_no)
    return render_evidence(ctx, params, context)


class SampleParams(Schema):
    level = fields.Str(required=True, validate=validate.OneOf(recalls.LEVELS))
    b_percent = fields.Int(load_default=50, validate=validate.Range(min=10, max=100))


def draw_sample(ctx: HandlerContext, params: dict[str, Any]) -> dict[str, Any]:
    """Draw the effectiveness-check sample from the consignee list at the planned level."""
    chosen = recalls.draw_sample(ctx.instance.id, params["level"], params["b_percent"], ctx.now)
    return {"level": params["level"], "sample_size": len(chosen),
            "sample": sorted(c.customer.code for c in chosen)}

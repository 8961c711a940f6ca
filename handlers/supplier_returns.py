"""supplier_return.*: the supplier return's steps - quarantine, SCAR rounds and reminders, verification, the
return record with its note, the supplier's status and the closing SCAR record."""
from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

from app.engine import parse_duration
from app.exceptions import QualiflowError
from app.models.lots import SUPPLIER_STATUSES
from app.models.suppliers import VERIFICATION_RESULTS
from app.services.procedures import supplier_returns
from handlers.base import HandlerContext, HandlerError
from handlers.documents import NAME, render_evidence

STEP = validate.Regexp(r"^[A-Za-z_][A-Za-z0-9_]*$", error="a BPMN element id")


def _duration(value: str) -> None:
    try:
        parse_duration(value)
    except ValueError as err:
        raise ValidationError(str(err)) from err


def _carry_out(function, *args: Any) -> dict[str, Any]:
    """Run a service step; a refusal stops the instance with an incident naming it."""
    try:
        return function(*args)
    except QualiflowError as err:
        raise HandlerError(err.message) from err


class QuarantineParams(Schema):
    material_lots = fields.Raw(required=True,
                               metadata={"description": "material lot numbers (list or comma-separated)"})
    reason = fields.Str(required=True, validate=validate.Length(min=1, max=2000))


def quarantine(ctx: HandlerContext, params: dict[str, Any]) -> dict[str, Any]:
    """Quarantine the nonconforming material lots (audited) and link them to the return."""
    return _carry_out(supplier_returns.quarantine, ctx.instance, params["material_lots"], params["reason"], ctx.now)


def _options(ctx: HandlerContext, params: dict[str, Any]) -> supplier_returns.ScarOptions:
    return supplier_returns.ScarOptions(templates_dir=ctx.templates_dir, base_url=ctx.base_url,
                                        link_days=params["link_days"], company=ctx.company)


class ScarParams(Schema):
    response_due_in = fields.Str(required=True, validate=_duration,
                                 metadata={"description": "ISO 8601 duration the supplier has to answer: P14D"})
    link_days = fields.Int(load_default=30, validate=validate.Range(min=1, max=365),
                           metadata={"description": "days the response link stays valid (at least until due + 7 d)"})


def send_scar(ctx: HandlerContext, params: dict[str, Any]) -> dict[str, Any]:
    """Render the SCAR in the supplier's language and e-mail it with a single-use response link (next round)."""
    return _carry_out(lambda: supplier_returns.send_scar(
        ctx.instance, _options(ctx, params), params["response_due_in"], ctx.now, data=ctx.data,
        task_spiff_id=ctx.spiff_id, element_id=ctx.element_id))


class ReminderParams(Schema):
    after_days = fields.Int(required=True, validate=validate.Range(min=1, max=365),
                            metadata={"description": "remind when the supplier is silent this many days"})
    link_days = fields.Int(load_default=30, validate=validate.Range(min=1, max=365))


def send_reminders(ctx: HandlerContext, params: dict[str, Any]) -> dict[str, Any]:
    """Remind a silent supplier with a new link; once per timer run."""
    sent = supplier_returns.send_reminders(ctx.instance, _options(ctx, params), params["after_days"], ctx.now,
                                           run_key=f"scar-reminder:{ctx.idempotency_key}")
    return {"reminded": sent}


class VerificationParams(Schema):
    result = fields.Str(required=True, validate=validate.OneOf(VERIFICATION_RESULTS))
    note = fields.Str(load_default="", validate=validate.Length(max=4000))
    step = fields.Str(required=True, validate=STEP, metadata={"description": "the user task that verified"})


def record_verification(ctx: HandlerContext, params: dict[str, Any]) -> dict[str, Any]:
    """Record our verification of the supplier's answer to the current round."""
    return _carry_out(supplier_returns.record_verification, ctx.instance, params["result"], params["note"],
                      params["step"], ctx.now)


class ShipmentParams(Schema):
    step = fields.Str(required=True, validate=STEP, metadata={"description": "the user task that shipped"})
    template = fields.Str(load_default="supplier_return_note", validate=NAME)


def record_shipment(ctx: HandlerContext, params: dict[str, Any]) -> dict[str, Any]:
    """Write the GSP return record of each lot and render the return note."""
    rows = _carry_out(supplier_returns.record_shipment, ctx.instance, ctx.data, params["step"], ctx.now)
    language = ctx.instance.language
    context = supplier_returns.document_context(ctx.instance, language, ctx.now, data=ctx.data, company=ctx.company)
    document = render_evidence(ctx, {"template": params["template"], "kind": "supplier_return_note",
                                     "language": language}, context)
    for row in rows:
        row.document_id = document["document_id"]
    return {"lots": [row.lot_number for row in rows], "document": document}


class SupplierStatusParams(Schema):
    status = fields.Str(required=True, validate=validate.OneOf(SUPPLIER_STATUSES))
    reason = fields.Str(required=True, validate=validate.Length(min=1, max=2000))
    step = fields.Str(required=True, validate=STEP, metadata={"description": "the user task that decided"})


def set_supplier_status(ctx: HandlerContext, params: dict[str, Any]) -> dict[str, Any]:
    """Set the supplier's approved-supplier status as decided (suspended: no new material lots accepted)."""
    return _carry_out(supplier_returns.update_supplier_status, ctx.instance, params["status"], params["reason"],
                      params["step"], ctx.now)


class RenderParams(Schema):
    template = fields.Str(required=True, validate=NAME)
    kind = fields.Str(load_default=None, validate=NAME)
    language = fields.Str(load_default=None, validate=validate.OneOf(["en", "zh-CN"]))


def render(ctx: HandlerContext, params: dict[str, Any]) -> dict[str, Any]:
    """Render a supplier return document with the lots, every SCAR round's answer and verification, and the
    return record."""
    language = params["language"] or ctx.instance.language
    context = supplier_returns.document_context(ctx.instance, language, ctx.now, data=ctx.data, company=ctx.company)
    return render_evidence(ctx, params, context)

"""marshmallow schemas of the supplier return API: a return with its SCAR rounds and return records, starting
one, and the supplier's public SCAR response."""
from __future__ import annotations

from typing import Any

from marshmallow import fields, pre_dump, validate

from app.api.base import Schema
from app.api.recall_schemas import DeadlineSchema
from app.services.workflow import plant_time


class ReturnSupplierSchema(Schema):
    code = fields.Str()
    name = fields.Str()
    status = fields.Str(metadata={"description": "approved, conditional or suspended (no new lots accepted)"})
    contact_name = fields.Str()
    email = fields.Str()
    language = fields.Str()


class ReturnLotSchema(Schema):
    id = fields.Int()
    material = fields.Str()
    lot_number = fields.Str()
    received_on = fields.Date(allow_none=True)
    expiry_on = fields.Date(allow_none=True)
    status = fields.Str()


class ScarRoundSchema(Schema):
    round = fields.Int()
    number = fields.Str(metadata={"example": "SCAR-000012-1"})
    language = fields.Str()
    email = fields.Str(metadata={"description": "where it was sent; empty when the supplier has no address"})
    email_status = fields.Function(lambda s: s.message.status if s.message else None, allow_none=True,
                                   metadata={"type": "string", "description": "queued, sent or failed; null when "
                                                                              "none was queued"})
    document_id = fields.Int(allow_none=True)
    sent_at = fields.DateTime()
    response_due_at = fields.DateTime()
    reminders = fields.Int()
    last_reminded_at = fields.DateTime(allow_none=True)
    responded_at = fields.DateTime(allow_none=True)
    responder_name = fields.Str()
    responder_title = fields.Str()
    containment = fields.Str()
    root_cause = fields.Str()
    corrective_action = fields.Str()
    preventive_action = fields.Str()
    completion_date = fields.Date(allow_none=True)
    response_note = fields.Str()
    verification_result = fields.Str(metadata={"description": "'', accepted or rejected"})
    verification_note = fields.Str()
    verified_by = fields.Function(lambda s: s.verified_by.full_name if s.verified_by else None, allow_none=True,
                                  metadata={"type": "string"})
    verified_at = fields.DateTime(allow_none=True)


class ReturnRecordSchema(Schema):
    """The GSP record of one lot shipped back."""

    material = fields.Str()
    specification = fields.Str()
    lot_number = fields.Str()
    quantity = fields.Float()
    unit = fields.Str()
    expiry_on = fields.Date(allow_none=True)
    reason = fields.Str()
    authorisation_no = fields.Str()
    returned_on = fields.Date()
    carrier = fields.Str()
    tracking_no = fields.Str()
    recipient = fields.Str()
    document_id = fields.Int(allow_none=True)


class SupplierReturnSchema(Schema):
    id = fields.Int(attribute="instance.id")
    number = fields.Str(metadata={"example": "SR-000012"})
    title = fields.Str(attribute="instance.title")
    status = fields.Str(attribute="instance.status")
    supplier = fields.Nested(ReturnSupplierSchema, allow_none=True)
    lots = fields.List(fields.Nested(ReturnLotSchema))
    scars = fields.List(fields.Nested(ScarRoundSchema), metadata={"description": "one per round"})
    returns = fields.List(fields.Nested(ReturnRecordSchema))
    deadlines = fields.List(fields.Nested(DeadlineSchema), metadata={"description": "the supplier's response, "
                                                                                    "per round"})

    @pre_dump
    def read_now(self, view, **_: Any) -> dict[str, Any]:
        now = plant_time.utcnow()
        return {"instance": view.instance, "number": view.number, "supplier": view.supplier, "lots": view.lots,
                "scars": view.scars, "returns": view.returns, "deadlines": [(d, now) for d in view.deadlines]}


class StartReturnSchema(Schema):
    material_lot_id = fields.Int(required=True, metadata={"description": "a nonconforming material lot's id"})


class ScarLotSchema(Schema):
    material = fields.Str()
    lot_number = fields.Str()
    received_on = fields.Date(allow_none=True)


class ScarFormSchema(Schema):
    """What the link's supplier is asked to answer, dumped from {"scar", "lots"}."""

    number = fields.Str(attribute="scar.number")
    supplier = fields.Str(attribute="scar.supplier.name")
    language = fields.Str(attribute="scar.language")
    response_due_at = fields.DateTime(attribute="scar.response_due_at")
    expires_at = fields.DateTime(attribute="scar.token_expires_at", allow_none=True)
    lots = fields.List(fields.Nested(ScarLotSchema), metadata={"description": "the material lots found nonconforming"})


def _answer(description: str, maximum: int = 4000) -> fields.Str:
    return fields.Str(load_default="", validate=validate.Length(max=maximum), metadata={"description": description})


class ScarAnswerSchema(Schema):
    # Required answers are the service's to check (the same messages, in the supplier's language, as the page).
    responder_name = _answer("who answers (required)", 200)
    responder_title = _answer("their position", 200)
    containment = _answer("containment of stock at the supplier and in transit (required)")
    root_cause = _answer("root cause (required)")
    corrective_action = _answer("corrective action (required)")
    preventive_action = _answer("preventive action")
    completion_date = _answer("planned completion, YYYY-MM-DD", 10)
    response_note = _answer("comment")


class ScarAnsweredSchema(Schema):
    number = fields.Str()
    responded_at = fields.DateTime()

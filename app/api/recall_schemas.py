"""marshmallow schemas of the recall API: the dashboard, a recall's view, its edits and the public acknowledgment."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from marshmallow import ValidationError, fields, pre_dump, validate, validates, validates_schema

from app.api.base import ErrorSchema, Schema, refused_rows
from app.services.lots.imports import EXTENSIONS
from app.services.procedures import recalls
from app.services.workflow import deadlines, plant_time

# --- the dashboard ----------------------------------------------------------------------------------------------------


class DashboardRegionSchema(Schema):
    region = fields.Str()
    consignees = fields.Int()
    notified = fields.Int()
    acknowledged = fields.Int()
    ack_rate = fields.Float(allow_none=True, metadata={"description": "acknowledged / notified, null if none notified"})
    quantity_shipped = fields.Int()
    quantity_recovered = fields.Int(metadata={"description": "returned plus destroyed in the field"})
    recovered_rate = fields.Float(allow_none=True)


class UndeliveredNoticeSchema(Schema):
    consignee_id = fields.Int()
    code = fields.Str()
    name = fields.Str()
    state = fields.Str(metadata={"description": "no_email (post or fax), queued, retrying (the mail server did not "
                                                "take it yet; the outbox keeps trying) or failed (refused or given "
                                                "up: an administrator resends it)"})
    attempts = fields.Int()
    error = fields.Str(metadata={"description": "the mail server's last answer, or why the outbox gave up"})
    outbox_message_id = fields.Int(allow_none=True)


class OpenRecallSchema(Schema):
    id = fields.Int()
    title = fields.Str()
    status = fields.Str()
    recall_class = fields.Str(metadata={"description": "I, II, III or empty before the assessment"})
    consignees = fields.Int()
    notified = fields.Int()
    acknowledged = fields.Int()
    quantity_shipped = fields.Int()
    notification = fields.Str(metadata={"description": "consignee-notification deadline: pending, overdue, met, "
                                                       "met_late, or empty before the decision"})
    notification_due_at = fields.Str(allow_none=True)
    undelivered = fields.List(fields.Nested(UndeliveredNoticeSchema),
                              metadata={"description": "notified consignees whose notice has not reached them"})


class RecallDashboardSchema(Schema):
    open_total = fields.Int()
    open_by_class = fields.Dict(keys=fields.Str(), values=fields.Int(),
                                metadata={"description": "open recalls by class I, II, III and unassessed"})
    notification = fields.Dict(keys=fields.Str(), values=fields.Int(),
                               metadata={"description": "open recalls by consignee-notification deadline status"})
    notified = fields.Int()
    acknowledged = fields.Int()
    ack_rate = fields.Float(allow_none=True)
    quantity_shipped = fields.Int()
    quantity_recovered = fields.Int()
    recovered_rate = fields.Float(allow_none=True)
    regions = fields.List(fields.Nested(DashboardRegionSchema))
    recalls = fields.List(fields.Nested(OpenRecallSchema), metadata={"description": "the open recalls, newest first"})
    undelivered = fields.Int(metadata={"description": "notices of open recalls not delivered yet"})


# --- one recall -------------------------------------------------------------------------------------------------------

class QuantitiesSchema(Schema):
    quantity_shipped = fields.Int()
    quantity_returned = fields.Int(metadata={"description": "returned to the manufacturer"})
    quantity_destroyed = fields.Int(metadata={"description": "destroyed in the field"})


class RecallLotSchema(QuantitiesSchema):
    """An affected lot with the quantities of every consignee summed; shipped is what left the manufacturer
    (a distributor's onward shipments are counted once, where the units are)."""

    id = fields.Int(attribute="lot.id")
    lot_number = fields.Str(attribute="lot.lot_number")
    product = fields.Str(attribute="lot.product.name")
    status = fields.Str(attribute="lot.status")
    quantity = fields.Int(attribute="lot.quantity", metadata={"description": "the lot's size"})
    expiry_on = fields.Date(attribute="lot.expiry_on", allow_none=True)


class RecallLineSchema(QuantitiesSchema):
    """One affected lot at one consignee: shipped is what it received."""

    id = fields.Int()
    quantity_forwarded = fields.Int(metadata={"description": "of those, passed on to other consignees"})
    lot_number = fields.Str(attribute="product_lot.lot_number")
    product = fields.Str(attribute="product_lot.product.name")


class RecallConsigneeSchema(Schema):
    id = fields.Int(metadata={"description": "the consignee_id of POST /recalls/{id}/checks"})
    code = fields.Str(attribute="customer.code")
    name = fields.Str(attribute="customer.name")
    kind = fields.Str(attribute="customer.kind", metadata={"description": "distributor, hospital or end_user"})
    region = fields.Str(attribute="customer.region")
    country = fields.Str(attribute="customer.country")
    contact = fields.Str(attribute="customer.contact")
    email = fields.Str(attribute="customer.email", allow_none=True)
    language = fields.Str()
    notified_at = fields.DateTime(allow_none=True)
    notice_document_id = fields.Int(allow_none=True, metadata={"description": "GET /documents/{id}"})
    email_status = fields.Function(lambda c: c.message.status if c.message else None, metadata={
        "type": "string", "nullable": True,
        "description": "the notice e-mail: queued, sent or failed; null when none was queued (no address, not yet)"})
    email_attempts = fields.Function(lambda c: c.message.attempts if c.message else None,
                                     metadata={"type": "integer", "nullable": True})
    delivered = fields.Function(recalls.delivered, metadata={
        "type": "boolean", "description": "the notice reached the consignee: e-mail accepted by the mail server, "
                                         "acknowledged, or an effective check (the notification deadline waits "
                                         "for every consignee)"})
    acknowledged_at = fields.DateTime(allow_none=True)
    ack_received = fields.Bool(allow_none=True)
    ack_on_hand = fields.Int(allow_none=True)
    ack_contact = fields.Str()
    ack_comment = fields.Str()
    ack_forwarded = fields.Bool(allow_none=True, metadata={"description": "distributors: forwarded to customers"})
    reminders = fields.Int()
    last_reminded_at = fields.DateTime(allow_none=True)
    in_sample = fields.Bool(metadata={"description": "drawn for the effectiveness check"})
    checked_at = fields.DateTime(allow_none=True)
    check_method = fields.Str()
    check_effective = fields.Bool(allow_none=True)
    check_note = fields.Str()
    checked_by = fields.Function(lambda c: c.checked_by.username if c.checked_by else None,
                                 metadata={"type": "string", "nullable": True})
    lines = fields.List(fields.Nested(RecallLineSchema))


class DeadlineSchema(Schema):
    """A deadline read at one instant, dumped from a (deadline, now) pair."""

    key = fields.Str(attribute="deadline.key", metadata={"example": "consignee_notice"})
    label = fields.Str(attribute="deadline.label")
    label_zh = fields.Str(attribute="deadline.label_zh")
    basis = fields.Str(attribute="deadline.basis", metadata={"description": "P3D, PT24H or 'N working days'"})
    met_by = fields.Str(attribute="deadline.met_by", metadata={"description": "the step whose completion meets it"})
    started_at = fields.DateTime(attribute="deadline.started_at", metadata={"description": "the recall decision"})
    due_at = fields.DateTime(attribute="deadline.due_at")
    met_at = fields.DateTime(attribute="deadline.met_at", allow_none=True)
    escalated_at = fields.DateTime(attribute="deadline.escalated_at", allow_none=True)
    status = fields.Str(metadata={"description": "now: pending, overdue, met or met_late"})
    seconds_remaining = fields.Int(allow_none=True, metadata={"description": "until due, negative when overdue; "
                                                                             "null when met"})

    @pre_dump
    def read_at(self, row: tuple[deadlines.Deadline, datetime], **_: Any) -> dict[str, Any]:
        deadline, now = row
        remaining = None if deadline.met_at else int((deadline.due_at - now).total_seconds())
        return {"deadline": deadline, "status": deadline.status(now), "seconds_remaining": remaining}


class RecallTotalsSchema(Schema):
    lots = fields.Int()
    consignees = fields.Int()
    quantity_shipped = fields.Int()
    quantity_returned = fields.Int()
    quantity_destroyed = fields.Int()
    quantity_recovered = fields.Int(metadata={"description": "returned plus destroyed"})
    recovered_pct = fields.Str(metadata={"description": "returned plus destroyed of shipped, '12.5%' or '-'"})
    notified = fields.Int()
    delivered = fields.Int(metadata={"description": "notices the mail server accepted, or acknowledged"})
    acknowledged = fields.Int()
    ack_rate = fields.Str(metadata={"description": "acknowledged of notified, '50.0%' or '-'"})
    contacted = fields.Int(metadata={"description": "consignees whose effectiveness check is recorded"})
    contacted_pct = fields.Str(metadata={"description": "contacted of all consignees, '50.0%' or '-'"})


class RecallRegionSchema(Schema):
    region = fields.Str()
    consignees = fields.Int()
    notified = fields.Int()
    acknowledged = fields.Int()
    quantity_shipped = fields.Int()
    quantity_returned = fields.Int(metadata={"description": "returned plus destroyed"})


class EffectivenessSchema(Schema):
    level = fields.Str(metadata={"description": "A-E, empty before the plan"})
    population = fields.Int()
    sample_size = fields.Int()
    checked = fields.Int()
    effective = fields.Int()
    met = fields.Bool()


class ThresholdSchema(Schema):
    """One effectiveness threshold of the recall's class (config RECALL_EFFECTIVENESS) against the recall."""

    name = fields.Str(metadata={"description": "level, contacted, acknowledged or recovered"})
    required = fields.Str(metadata={"description": "the least level (A strictest) or share, 'A' or '90%'"})
    actual = fields.Str(metadata={"description": "the recall's planned level or share, '-' when none"})
    met = fields.Bool()


class RecallSchema(Schema):
    id = fields.Int()
    title = fields.Str()
    status = fields.Str(metadata={"description": "the instance: running, incident, completed, cancelled"})
    recall_class = fields.Str(metadata={"description": "I, II, III or empty before the assessment"})
    markets = fields.List(fields.Str(), metadata={"description": "countries, after the decision"})
    lots = fields.List(fields.Nested(RecallLotSchema))
    consignees = fields.List(fields.Nested(RecallConsigneeSchema))
    deadlines = fields.List(fields.Nested(DeadlineSchema), metadata={"description": "by due time"})
    totals = fields.Nested(RecallTotalsSchema)
    regions = fields.List(fields.Nested(RecallRegionSchema))
    effectiveness = fields.Nested(EffectivenessSchema)
    thresholds = fields.List(fields.Nested(ThresholdSchema), metadata={
        "description": "closing below one needs a justification signed at the final approval"})

    @pre_dump
    def read_at_one_instant(self, view: recalls.RecallView, **_: Any) -> dict[str, Any]:
        """Read the view's figures once, and every deadline's status at the same instant."""
        now = plant_time.utcnow()
        data = view.instance.data or {}
        return {"id": view.instance.id, "title": view.instance.title, "status": view.instance.status,
                "recall_class": str(data.get("recall_class") or ""), "markets": data.get("markets") or [],
                "lots": view.lots, "consignees": view.consignees, "deadlines": [(d, now) for d in view.deadlines],
                "totals": view.totals, "regions": view.regions, "effectiveness": view.effectiveness.as_dict(),
                "thresholds": view.thresholds}


# --- changing a recall ------------------------------------------------------------------------------------------------

class StartRecallSchema(Schema):
    lot_id = fields.Int(load_default=None, metadata={"description": "a product lot's id"})
    capa_instance_id = fields.Int(load_default=None, metadata={"description": "a CAPA instance's id"})

    @validates_schema
    def one_source(self, data: dict[str, Any], **_: Any) -> None:
        if (data["lot_id"] is None) == (data["capa_instance_id"] is None):
            raise ValidationError("Give either lot_id or capa_instance_id.", "lot_id")




def _lot_numbers(description: str) -> fields.List:
    return fields.List(fields.Str(validate=validate.Length(min=1, max=100)), load_default=list,
                       validate=validate.Length(max=500), metadata={"description": description})


class EditAffectedSchema(Schema):
    # Lot numbers and the reason are the service's to check, with the recall page's messages.
    add = _lot_numbers("product lot numbers to add; their consignees join the list")
    remove = _lot_numbers("product lot numbers to remove; at least one lot must stay")
    reason = fields.Str(load_default="", validate=validate.Length(max=2000))


class ReturnSchema(Schema):
    customer = fields.Str(required=True, validate=validate.Length(min=1, max=100), metadata={"example": "D1"})
    lot = fields.Str(required=True, validate=validate.Length(min=1, max=100), metadata={"example": "L1"})
    returned = fields.Int(required=True, validate=validate.Range(min=0),
                          metadata={"description": "total returned so far (not an increment)"})
    destroyed = fields.Int(load_default=0, validate=validate.Range(min=0),
                           metadata={"description": "total destroyed in the field so far"})


class ReturnLineSchema(RecallLineSchema):
    customer = fields.Str(attribute="consignee.customer.code")


class ReturnsUploadSchema(Schema):
    file = fields.Raw(required=True, metadata={"type": "string", "format": "binary",
                                               "description": "a .csv or .xlsx file with the columns customer, "
                                                              "lot, returned and (optional) destroyed"})

    @validates("file")
    def csv_or_xlsx(self, upload: Any, **_: Any) -> None:
        name = str(getattr(upload, "filename", "") or "").lower()
        if not name.endswith(EXTENSIONS):
            raise ValidationError("Upload a .csv or .xlsx file.")


class ReturnsImportedSchema(Schema):
    imported = fields.Int(metadata={"description": "rows imported"})


class ReturnsRefusedSchema(ErrorSchema):
    errors = refused_rows("the first 200 row errors, each {line, column, message}")


class CheckSchema(Schema):
    consignee_id = fields.Int(required=True)
    method = fields.Str(required=True, validate=validate.OneOf(recalls.CHECK_METHODS))
    effective = fields.Bool(required=True)
    note = fields.Str(load_default="", validate=validate.Length(max=4000),
                      metadata={"description": "required when not effective"})


# --- the public acknowledgment ----------------------------------------------------------------------------------------

class AckLineSchema(Schema):
    lot = fields.Str(attribute="product_lot.lot_number")
    product = fields.Str(attribute="product_lot.product.name")
    shipped = fields.Int(attribute="quantity_shipped")


class AckFormSchema(Schema):
    """What the link's consignee is asked about."""

    name = fields.Str(attribute="customer.name")
    kind = fields.Str(attribute="customer.kind")
    language = fields.Str()
    ask_forwarded = fields.Function(lambda c: c.customer.kind == "distributor", metadata={
        "type": "boolean", "description": "distributors say whether they forwarded the notice"})
    expires_at = fields.DateTime(attribute="token_expires_at", allow_none=True)
    lines = fields.List(fields.Nested(AckLineSchema))


class AckAnswerLineSchema(Schema):
    lot = fields.Str(required=True, validate=validate.Length(min=1, max=100))
    returned = fields.Int(load_default=0, metadata={"description": "units returned to the manufacturer"})
    destroyed = fields.Int(load_default=0, metadata={"description": "units destroyed on site"})


class AcknowledgeSchema(Schema):
    # Required answers and quantity rules are the service's to check (the same messages as the public page).
    received = fields.Bool(load_default=None, metadata={"description": "the notice was received (required)"})
    on_hand = fields.Int(load_default=None, metadata={"description": "units still in stock"})
    contact = fields.Str(load_default="", validate=validate.Length(max=200),
                         metadata={"description": "name and phone or e-mail (required)"})
    comment = fields.Str(load_default="", validate=validate.Length(max=4000))
    forwarded = fields.Bool(load_default=None, metadata={"description": "distributors only"})
    lines = fields.List(fields.Nested(AckAnswerLineSchema), load_default=list,
                        metadata={"description": "lots not listed count as 0 returned, 0 destroyed"})


class AckLineResultSchema(AckLineSchema):
    returned = fields.Int(attribute="quantity_returned")
    destroyed = fields.Int(attribute="quantity_destroyed")


class AcknowledgedSchema(Schema):
    name = fields.Str(attribute="customer.name")
    acknowledged_at = fields.DateTime()
    received = fields.Bool(attribute="ack_received")
    on_hand = fields.Int(attribute="ack_on_hand", allow_none=True)
    lines = fields.List(fields.Nested(AckLineResultSchema))

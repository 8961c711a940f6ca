"""The /api/v1 sterilization batch endpoints: list and read batches, record one (the import rules of the kind
`sterilization_batches`: 422 per field, nothing saved), enter the biological indicator result, and QA's e-signed
release or failure (the signer's password in the body). Thin: parse, call a service, answer."""
from __future__ import annotations

from flask_smorest import Blueprint
from marshmallow import fields, validate

from app.api.auth import api_user, authenticate_request
from app.api.base import Schema
from app.api.lot_schemas import page_schema, record_schema
from app.services.lots import imports, sterilization

blp = Blueprint("sterilization_api", __name__, url_prefix="/api/v1",
                description="Sterilization batch records: method, cycle parameters, load, BI and dosimeter results, "
                            "e-signed release")
blp.before_request(authenticate_request)


class SterilizationQuerySchema(Schema):
    q = fields.Str(load_default="", validate=validate.Length(max=100),
                   metadata={"description": "batch number, sterilizer or a lot number of the load"})
    status = fields.Str(load_default="", validate=validate.OneOf(["", *sterilization.BATCH_STATUSES]))
    method = fields.Str(load_default="", validate=validate.OneOf(["", *sterilization.STERILIZATION_METHODS]))
    page = fields.Int(load_default=1, validate=validate.Range(min=1))
    per_page = fields.Int(load_default=20, validate=validate.Range(min=1, max=100))


class SterilizationBatchSchema(Schema):
    id = fields.Int()
    batch_number = fields.Str()
    method = fields.Str(metadata={"description": "eo (ISO 11135), gamma or ebeam (ISO 11137), steam (ISO 17665)"})
    sterilizer = fields.Str()
    processed_on = fields.Date()
    parameters = fields.Dict(metadata={"description": "the cycle parameters (radiation: the dosimeter results)"})
    limits = fields.Dict(metadata={"description": "the validated limits applied, {name: [min, max]}"})
    bi_result = fields.Str(allow_none=True, metadata={"description": "pending, pass, fail; null: no BI (radiation)"})
    status = fields.Str(metadata={"description": "pending, released or failed"})
    failure_reasons = fields.Function(lambda b: [{**reason, "text": sterilization.failure_text(reason)}
                                                 for reason in b.failure_reasons or []])
    capa_instance_id = fields.Int(allow_none=True)
    created_at = fields.DateTime()
    decided_at = fields.DateTime(allow_none=True)
    decision_reason = fields.Str()
    signed_name = fields.Str()
    signed_meaning = fields.Str()
    signed_hash = fields.Str()


class SterilizationLotSchema(Schema):
    lot_number = fields.Str(attribute="lot.lot_number")
    lot_id = fields.Int(attribute="lot.id")
    product = fields.Str(attribute="lot.product.name")
    status = fields.Str(attribute="lot.status")
    quantity = fields.Int(allow_none=True)
    current = fields.Bool(metadata={"description": "the lot still names this batch (false: resterilized since)"})


class SterilizationBatchDetailSchema(Schema):
    batch = fields.Nested(SterilizationBatchSchema)
    lots = fields.List(fields.Nested(SterilizationLotSchema))
    release_problems = fields.List(fields.Str(), metadata={"description": "what keeps a pending batch from release"})


class SterilizationBiResultSchema(Schema):
    result = fields.Str(required=True, validate=validate.OneOf(("pass", "fail")))
    note = fields.Str(load_default="", validate=validate.Length(max=2000))


class SterilizationDecisionSchema(Schema):
    decision = fields.Str(required=True, validate=validate.OneOf(tuple(sterilization.DECISIONS)))
    reason = fields.Str(load_default="", validate=validate.Length(max=2000),
                        metadata={"description": "required to fail the batch"})
    password = fields.Str(required=True, load_only=True, validate=validate.Length(min=1, max=1000),
                          metadata={"description": "the signer's password (re-authentication for the e-signature)"})


@blp.route("/sterilization-batches")
@blp.arguments(SterilizationQuerySchema, location="query")
@blp.response(200, page_schema(SterilizationBatchSchema))
def list_batches(query: dict):
    """List sterilization batches, newest first, filtered by a search, a status and a method."""
    page = sterilization.list_batches(q=query["q"], status=query["status"], method=query["method"],
                                      page=query["page"], per_page=query["per_page"])
    return {"items": page.items, "page": page.page, "pages": page.pages, "total": page.total}


@blp.route("/sterilization-batches", methods=["POST"])
@blp.doc(description="Checked with the rules of a file import of the kind `sterilization_batches`: 422 with `errors` "
                     "per column when refused, nothing saved. `load` is `LOT:QUANTITY; LOT` or a list of "
                     "{lot, quantity}. A batch whose parameters leave the validated limits or whose BI is `fail` is "
                     "recorded failed: its lots are put on hold and a CAPA is opened.")
@blp.arguments(record_schema(sterilization.BATCH_KIND))
@blp.response(201, SterilizationBatchDetailSchema)
def create_batch(data: dict):
    """Record a sterilization batch with its load."""
    return sterilization.batch_page(imports.create_record(sterilization.BATCH_KIND.name, data, api_user()))


@blp.route("/sterilization-batches/<int:batch_id>")
@blp.response(200, SterilizationBatchDetailSchema)
def get_batch(batch_id: int):
    """Get a sterilization batch with its lots and their status."""
    return sterilization.batch_page(batch_id)


@blp.route("/sterilization-batches/<int:batch_id>/bi-result", methods=["POST"])
@blp.arguments(SterilizationBiResultSchema)
@blp.response(200, SterilizationBatchDetailSchema)
@blp.alt_response(409, description="the batch is not pending, or its method uses no biological indicator")
def bi_result(body: dict, batch_id: int):
    """Record the biological indicator's result; `fail` fails the batch (holds, CAPA)."""
    sterilization.record_bi_result(batch_id, body["result"], api_user(), note=body["note"])
    return sterilization.batch_page(batch_id)


@blp.route("/sterilization-batches/<int:batch_id>/decision", methods=["POST"])
@blp.arguments(SterilizationDecisionSchema)
@blp.response(200, SterilizationBatchDetailSchema)
@blp.alt_response(401, description="the password is wrong (counted; the account may lock)")
@blp.alt_response(403, description="not a QA releaser")
@blp.alt_response(409, description="the batch is not pending, or cannot be released yet (BI pending)")
def decide(body: dict, batch_id: int):
    """Release or fail a pending batch with the signer's electronic signature (QA releaser, password)."""
    sterilization.decide(batch_id, body["decision"], body["reason"], api_user(), body["password"])
    return sterilization.batch_page(batch_id)

"""The /api/v1 supplier quality endpoints: the approved-supplier list with scores, one supplier's score history,
scoring on demand and starting a supplier review. Thin: parse, call a service, answer."""
from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint
from marshmallow import fields, validate

from app.api.auth import api_user, authenticate_request
from app.api.base import Schema
from app.services.procedures import supplier_quality

blp = Blueprint("supplier_quality_api", __name__, url_prefix="/api/v1",
                description="Supplier quality: approved-supplier list, scores over a rolling window, reviews")
blp.before_request(authenticate_request)

BANDS = supplier_quality.SCORE_BANDS
STATUSES = supplier_quality.SUPPLIER_STATUSES


class SupplierFiguresSchema(Schema):
    inspections = fields.Int(metadata={"description": "incoming inspections of the supplier's lots in the window"})
    failed = fields.Int()
    nonconforming_pct = fields.Float(allow_none=True, metadata={"description": "failed / inspections x 100"})
    scars = fields.Int(metadata={"description": "corrective action requests sent (first rounds)"})
    late_responses = fields.Int(metadata={"description": "SCAR rounds due in the window answered late or not yet"})
    returns = fields.Int(metadata={"description": "material lots returned to the supplier"})
    window_start = fields.Str(metadata={"description": "first plant day of the window"})
    window_end = fields.Str()
    deductions = fields.Dict(keys=fields.Str(), values=fields.Float(),
                             metadata={"description": "the points each figure cost"})


class SupplierEvaluationSchema(Schema):
    id = fields.Int()
    evaluated_at = fields.DateTime()
    window_days = fields.Int()
    score = fields.Float(allow_none=True, metadata={"description": "0-100; null: not enough data"})
    band = fields.Str(metadata={"description": "good, alert, limit or no_data"})
    trigger = fields.Str(metadata={"description": "scheduled or on_demand"})
    figures = fields.Nested(SupplierFiguresSchema)
    review_instance_id = fields.Function(lambda e: _review_instance(e.review_id), allow_none=True,
                                         metadata={"type": "integer"})


def _review_instance(review_id: int | None) -> int | None:
    return supplier_quality.review_instance_id(review_id)


class SupplierReviewSchema(Schema):
    instance_id = fields.Int()
    trigger = fields.Str(metadata={"description": "alert, limit or manual"})
    score = fields.Float(allow_none=True)
    band = fields.Str()
    proposed_status = fields.Str()
    status_before = fields.Str()
    decided_status = fields.Str(metadata={"description": "empty until the signed decision"})
    started_at = fields.DateTime()
    closed_at = fields.DateTime(allow_none=True)


class AslRowSchema(Schema):
    id = fields.Int(attribute="supplier.id")
    code = fields.Str(attribute="supplier.code")
    name = fields.Str(attribute="supplier.name")
    status = fields.Str(attribute="supplier.status",
                        metadata={"description": "approved, conditional or suspended (no new lots, none released)"})
    score = fields.Float(allow_none=True)
    band = fields.Str()
    trend = fields.Float(allow_none=True, metadata={"description": "score change against 30 days before"})
    evaluated_at = fields.DateTime(allow_none=True)
    figures = fields.Nested(SupplierFiguresSchema)
    open_review_instance_id = fields.Function(lambda r: r.review.instance_id if r.review else None, allow_none=True,
                                              metadata={"type": "integer"})


class AslPageSchema(Schema):
    items = fields.List(fields.Nested(AslRowSchema))
    page = fields.Int()
    pages = fields.Int()
    total = fields.Int()


class AslQuerySchema(Schema):
    q = fields.Str(load_default="", validate=validate.Length(max=100), metadata={"description": "code or name"})
    status = fields.Str(load_default="", validate=validate.OneOf(("", *STATUSES)))
    band = fields.Str(load_default="", validate=validate.OneOf(("", *BANDS)))
    page = fields.Int(load_default=1, validate=validate.Range(min=1, max=100_000))
    per_page = fields.Int(load_default=20, validate=validate.Range(min=1, max=100))


class HistoryQuerySchema(Schema):
    days = fields.Int(load_default=365, validate=validate.Range(min=1, max=3660))


class SupplierQualitySchema(Schema):
    row = fields.Nested(AslRowSchema)
    history = fields.List(fields.Nested(SupplierEvaluationSchema), metadata={"description": "oldest first"})
    reviews = fields.List(fields.Nested(SupplierReviewSchema))
    alert_threshold = fields.Float()
    limit_threshold = fields.Float()
    window_days = fields.Int()


class SupplierEvaluatedSchema(Schema):
    evaluation = fields.Nested(SupplierEvaluationSchema)
    review_started = fields.Bool()
    review_instance_id = fields.Int(allow_none=True)


class SuppliersEvaluatedSchema(Schema):
    scored = fields.Int()
    reviews_started = fields.List(fields.Int(), metadata={"description": "instance ids of the reviews started"})


class SupplierReviewRequestSchema(Schema):
    proposed_status = fields.Str(required=True, validate=validate.OneOf(STATUSES))
    reason = fields.Str(required=True, validate=validate.Length(min=5, max=2000))


@blp.route("/supplier-quality")
@blp.arguments(AslQuerySchema, location="query")
@blp.response(200, AslPageSchema)
def asl(query: dict[str, Any]):
    """List the approved suppliers with their scores.

    One page, filtered by code or name `q`, `status` and score `band`; each supplier's status, latest score and
    band, trend, figures and open review."""
    page = supplier_quality.approved_supplier_list(query["q"], query["status"], query["band"], query["page"],
                                                   query["per_page"])
    return {"items": page.items, "page": page.page, "pages": page.pages, "total": page.total}


@blp.route("/supplier-quality/<int:supplier_id>")
@blp.arguments(HistoryQuerySchema, location="query")
@blp.response(200, SupplierQualitySchema)
@blp.alt_response(404, description="no supplier with this id")
def supplier(query: dict[str, Any], supplier_id: int):
    """Get a supplier's quality: its latest score, the evaluations of the last `days` days and its reviews."""
    rule = supplier_quality.settings()
    return {"row": supplier_quality.supplier_row(supplier_id),
            "history": supplier_quality.history(supplier_id, query["days"]),
            "reviews": [review for review, _instance in supplier_quality.reviews(supplier_id)],
            "alert_threshold": rule.alert, "limit_threshold": rule.limit, "window_days": rule.window_days}


@blp.route("/supplier-quality/<int:supplier_id>/evaluate", methods=["POST"])
@blp.response(201, SupplierEvaluatedSchema)
@blp.alt_response(403, description="only quality assurance scores on demand")
@blp.alt_response(404, description="no supplier with this id")
def evaluate(supplier_id: int):
    """Score a supplier now.

    Records the evaluation; below the alert threshold it starts the supplier review (once per crossing, never a
    second open one) or feeds the open one."""
    outcome = supplier_quality.evaluate_supplier(supplier_id, api_user())
    return {"evaluation": outcome.evaluation, "review_started": outcome.started,
            "review_instance_id": outcome.review.instance_id if outcome.review else None}


@blp.route("/supplier-quality/evaluate", methods=["POST"])
@blp.response(201, SuppliersEvaluatedSchema)
@blp.alt_response(403, description="only quality assurance scores on demand")
def evaluate_all():
    """Score every supplier now (as the scheduled job does)."""
    outcomes = supplier_quality.evaluate_all(actor=api_user(), trigger="on_demand")
    return {"scored": len(outcomes), "reviews_started": [o.review.instance_id for o in outcomes if o.started]}


@blp.route("/supplier-quality/<int:supplier_id>/reviews", methods=["POST"])
@blp.arguments(SupplierReviewRequestSchema)
@blp.response(201, SupplierReviewSchema)
@blp.alt_response(403, description="only quality assurance starts a review")
@blp.alt_response(404, description="no supplier with this id")
@blp.alt_response(409, description="the supplier is under review already")
def request_review(args: dict[str, Any], supplier_id: int):
    """Start a supplier review by hand, with a proposed status and a reason.

    The status changes only when the head of QA e-signs the review's decision."""
    return supplier_quality.request_review(supplier_id, api_user(), args["proposed_status"], args["reason"])

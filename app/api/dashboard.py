"""The /api/v1 quality dashboard: the figures the /dashboard page shows, for a period of plant calendar days."""
from __future__ import annotations

from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from app.api.auth import authenticate_request
from app.services.procedures import dashboards

blp = Blueprint("dashboard_api", __name__, url_prefix="/api/v1",
                description="The quality dashboard's figures over a period")
blp.before_request(authenticate_request)

DAY = {"description": "a plant calendar day, YYYY-MM-DD", "example": "2026-12-01"}


class PeriodQuerySchema(Schema):
    start = fields.Str(data_key="from", load_default="", validate=validate.Length(max=20), metadata={
        **DAY, "description": "the first day (default: 89 days before today, plant time)"})
    end = fields.Str(data_key="to", load_default="", validate=validate.Length(max=20), metadata={
        **DAY, "description": "the last day, included (default: today, plant time)"})


class PeriodSchema(Schema):
    start = fields.Str(data_key="from", metadata=DAY)
    end = fields.Str(data_key="to", metadata=DAY)


class RecallCountSchema(Schema):
    recall_class = fields.Str(data_key="class", metadata={"description": "I, II, III or unassessed"})
    status = fields.Str(metadata={"description": "running, incident, completed or cancelled"})
    count = fields.Int()


class DeadlineCountSchema(Schema):
    key = fields.Str(metadata={"description": "the deadline (consignee_notice, regulator_report, ...)"})
    state = fields.Str(metadata={"description": "met, met_late, overdue or pending"})
    count = fields.Int()


def _counts(description: str) -> fields.Dict:
    return fields.Dict(keys=fields.Str(), values=fields.Int(), metadata={"description": description})


class QualityDashboardSchema(Schema):
    period = fields.Nested(PeriodSchema)
    recalls = fields.List(fields.Nested(RecallCountSchema),
                          metadata={"description": "recalls started in the period, by class and status"})
    deadlines = fields.List(fields.Nested(DeadlineCountSchema),
                            metadata={"description": "the notification deadlines of those recalls, by state"})
    deadlines_met_rate = fields.Float(allow_none=True, metadata={
        "description": "met on time out of met, met late and overdue (null when none is decided)"})
    undelivered = _counts("notices of open recalls started in the period not delivered, by no_email, queued, "
                          "retrying, failed")
    capa_aging = _counts("open CAPAs started in the period by days since opened: 0-30, 31-60, 61-90, 90+")
    capa_overdue_actions = fields.Int(metadata={"description": "their action steps past the due time"})
    changes_open_by_risk = _counts("open change controls started in the period by high, medium, low, unassessed")
    supplier_returns_open = _counts("open supplier returns started in the period by running, incident")
    overdue_steps_by_group = _counts("every open step past its due time now, by group ('' = assigned to a person)")
    lots_by_status = _counts("every product lot now, by status")
    near_expiry = fields.Int(metadata={"description": "product lots in stock expiring within the warning days"})
    stock_expiry_by_warehouse = fields.List(fields.Dict(), metadata={
        "description": "per warehouse (null: locations of no warehouse): near_expiry_lots, near_expiry_quantity, "
                       "expired_lots, expired_quantity (as GET /api/v1/stock/expiry)"})


@blp.route("/dashboard")
@blp.arguments(PeriodQuerySchema, location="query")
@blp.response(200, QualityDashboardSchema)
@blp.alt_response(400, description="a day that is not YYYY-MM-DD, an end before the start, a period over ten years")
def quality_dashboard(args: dict):
    """Get the quality dashboard's figures.

    Procedure figures count the instances started in the period (plant calendar days, both included; by default
    the last 90 days); lots and overdue steps are counted as they stand now. The same figures as /dashboard."""
    period = dashboards.parse_period(args["start"], args["end"])
    board = dashboards.quality_dashboard(period).as_dict()
    board["period"] = {"start": period.start.isoformat(), "end": period.end.isoformat()}
    board["recalls"] = [{"recall_class": row["class"], "status": row["status"], "count": row["count"]}
                        for row in board["recalls"]]
    return board

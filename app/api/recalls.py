"""The /api/v1 recall endpoints: the dashboard, a recall's lots, consignees and deadlines, its affected list,
returns and effectiveness checks; and the consignees' public acknowledgment. Thin: parse, call a service, answer."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from flask_smorest import Blueprint

from app.api.auth import api_user, authenticate_request
from app.api.recall_schemas import (
    AckFormSchema,
    AcknowledgedSchema,
    AcknowledgeSchema,
    CheckSchema,
    EditAffectedSchema,
    RecallConsigneeSchema,
    RecallDashboardSchema,
    RecallSchema,
    ReturnLineSchema,
    ReturnSchema,
    ReturnsImportedSchema,
    ReturnsRefusedSchema,
    ReturnsUploadSchema,
    StartRecallSchema,
)
from app.api.schemas import InstanceStartedSchema
from app.exceptions import FormInvalid
from app.services.procedures import dashboards, recalls

blp = Blueprint("recalls_api", __name__, url_prefix="/api/v1",
                description="Recalls: the dashboard, affected lots and consignees, deadlines, returns and checks")
# Authenticate before any argument parsing, so anonymous callers learn nothing about the API's input rules.
blp.before_request(authenticate_request)

# The link in a recall notice is the consignee's only credential: these endpoints take no token.
ack_blp = Blueprint("acknowledgments_api", __name__, url_prefix="/api/v1",
                    description="Public: a consignee acknowledges a recall notice with its single-use link")

@blp.route("/recalls")
@blp.response(200, RecallDashboardSchema)
def dashboard():
    """List the open recalls with the dashboard figures.

    Open recalls by class, by the status of their consignee-notification deadline, acknowledgment and recovery
    rates, and the figures by region."""
    return dashboards.recall_dashboard().as_dict()


@blp.route("/recalls/<int:instance_id>")
@blp.response(200, RecallSchema)
@blp.alt_response(404, description="no recall with this id")
def get_recall(instance_id: int):
    """Get a recall with its lots, consignees and deadlines.

    Lots with the quantities shipped, returned and destroyed; consignees with their notice (and its e-mail),
    acknowledgment, reminders, sample membership and check; the deadlines with their status now; totals, regions
    and the effectiveness sample. 404 when the instance is not a recall."""
    return recalls.recall_view(instance_id)


@blp.route("/recalls/start", methods=["POST"])
@blp.arguments(StartRecallSchema)
@blp.response(201, InstanceStartedSchema)
@blp.alt_response(404, description="no such product lot or CAPA instance")
def start_recall(args: dict[str, Any]):
    """Start a recall from a product lot or a CAPA.

    The trigger task's form is filled from the lot or the CAPA's lots; answers the instance and that task's id."""
    return recalls.start_recall(api_user(), lot_id=args["lot_id"], capa_instance_id=args["capa_instance_id"])


@blp.route("/recalls/<int:instance_id>/affected", methods=["POST"])
@blp.arguments(EditAffectedSchema)
@blp.response(200, RecallSchema)
@blp.alt_response(422, description="unknown lots, no reason, or no lot would remain; nothing changed")
@blp.alt_response(409, description="the notices are out: the affected list is frozen")
def edit_affected(args: dict[str, Any], instance_id: int):
    """Add or remove affected product lots.

    QA, with a reason, before the notices go out; the consignees and their quantities follow. Refused when no lot
    would remain."""
    return recalls.edit_affected(instance_id, add=args["add"], remove=args["remove"], reason=args["reason"],
                                 actor=api_user())


@blp.route("/recalls/<int:instance_id>/returns", methods=["POST"])
@blp.arguments(ReturnSchema)
@blp.response(200, ReturnLineSchema)
@blp.alt_response(422, description="the lot was not shipped to the customer, or more than shipped; nothing changed")
def record_return(args: dict[str, Any], instance_id: int):
    """Record the returns of one lot at one consignee.

    QA; the quantities are totals so far, not increments; returned plus destroyed cannot exceed what was shipped."""
    return recalls.record_return(instance_id, args["customer"], args["lot"], args["returned"], args["destroyed"],
                                 api_user())


@blp.route("/recalls/<int:instance_id>/returns/import", methods=["POST"])
@blp.arguments(ReturnsUploadSchema, location="files")
@blp.response(201, ReturnsImportedSchema)
@blp.alt_response(422, schema=ReturnsRefusedSchema, description="some rows are invalid; nothing was imported")
def import_returns(args: dict[str, Any], instance_id: int):
    """Import returns from a CSV or XLSX file.

    Columns customer, lot, returned and (optional) destroyed; all rows or none: a refused file answers 422 with
    every row error."""
    upload = args["file"]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"returns{Path(upload.filename).suffix.lower()}"
        upload.save(path)
        return {"imported": recalls.import_returns(instance_id, path, api_user())}


@blp.route("/recalls/<int:instance_id>/checks", methods=["POST"])
@blp.arguments(CheckSchema)
@blp.response(200, RecallConsigneeSchema)
@blp.alt_response(404, description="no such consignee in this recall")
def record_check(args: dict[str, Any], instance_id: int):
    """Record the effectiveness check of one consignee.

    QA: how the consignee was contacted and whether it acted on the notice; a note is needed when it did not."""
    return recalls.record_check(instance_id, args["consignee_id"], method=args["method"], effective=args["effective"],
                                note=args["note"], actor=api_user())


# --- the public acknowledgment ----------------------------------------------------------------------------------------

LINK_ERRORS = ((404, "a forged or replaced link"), (409, "the link was already used"), (410, "the link expired"))


def _link_errors(view):
    for status, description in LINK_ERRORS:
        view = ack_blp.alt_response(status, description=description)(view)
    return ack_blp.doc(security=[])(view)


@ack_blp.route("/acknowledgments/<token>")
@ack_blp.response(200, AckFormSchema)
@_link_errors
def get_acknowledgment(token: str):
    """Get what a link's consignee is asked to acknowledge.

    No authentication: the single-use link is the credential. Answers the consignee's name and language, the
    lots shipped to it and when the link expires."""
    return recalls.consignee_for_token(token)


def _answers(consignee: recalls.RecallConsignee, args: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Turn the answer's lines (by lot number) into the service's per-line keys; return them with each key's
    place in the request, so refusals name the field the caller sent."""
    line_ids = {line.product_lot.lot_number: line.id for line in consignee.lines}
    answers = {name: args[name] for name in ("received", "on_hand", "contact", "comment", "forwarded")}
    places: dict[str, str] = {}
    errors: dict[str, list[str]] = {}
    for index, line in enumerate(args["lines"]):
        line_id = line_ids.get(line["lot"])
        if line_id is None:
            errors[f"lines.{index}.lot"] = [f"Lot {line['lot']} was not shipped to you in this recall."]
        elif f"returned_{line_id}" in answers:
            errors[f"lines.{index}.lot"] = [f"Lot {line['lot']} is listed twice."]
        else:
            for name in ("returned", "destroyed"):
                answers[f"{name}_{line_id}"] = line[name]
                places[f"{name}_{line_id}"] = f"lines.{index}.{name}"
    if errors:
        raise FormInvalid(errors)
    return answers, places


@ack_blp.route("/acknowledgments/<token>", methods=["POST"])
@ack_blp.arguments(AcknowledgeSchema)
@ack_blp.response(200, AcknowledgedSchema)
@ack_blp.alt_response(422, description="an answer is missing or a quantity is above what was shipped; "
                                       "nothing was saved and the link still works")
@_link_errors
def acknowledge(args: dict[str, Any], token: str):
    """Acknowledge a recall notice.

    No authentication: the single-use link is the credential. Received, stock on hand, contact, and per lot the
    units returned and destroyed; the link stops working once this succeeds."""
    answers, places = _answers(recalls.consignee_for_token(token), args)
    try:
        return recalls.acknowledge(token, answers)
    except FormInvalid as err:
        raise FormInvalid({places.get(key, key): messages for key, messages in err.errors.items()}) from err

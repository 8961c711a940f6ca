"""The /api/v1 supplier return endpoints: a return with its SCAR rounds and return records, starting one from a
material lot, and the supplier's public SCAR response. Thin: parse, call a service, answer."""
from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from app.api.auth import api_user, authenticate_request
from app.api.schemas import InstanceStartedSchema
from app.api.supplier_return_schemas import (
    ScarAnsweredSchema,
    ScarAnswerSchema,
    ScarFormSchema,
    StartReturnSchema,
    SupplierReturnSchema,
)
from app.services.procedures import supplier_returns

blp = Blueprint("supplier_returns_api", __name__, url_prefix="/api/v1",
                description="Supplier returns: lots, SCAR rounds with the supplier's answers, return records")
blp.before_request(authenticate_request)

# The link in a SCAR e-mail is the supplier's only credential: these endpoints take no token.
scar_blp = Blueprint("scar_responses_api", __name__, url_prefix="/api/v1",
                     description="Public: a supplier answers a corrective action request with its single-use link")


@blp.route("/supplier-returns/<int:instance_id>")
@blp.response(200, SupplierReturnSchema)
@blp.alt_response(404, description="no supplier return with this id")
def get_return(instance_id: int):
    """Get a supplier return.

    Its supplier (and status), material lots, every SCAR round (sent, e-mail status, reminders, answer,
    verification), the GSP return records and the response deadlines."""
    return supplier_returns.return_view(instance_id)


@blp.route("/supplier-returns/start", methods=["POST"])
@blp.arguments(StartReturnSchema)
@blp.response(201, InstanceStartedSchema)
@blp.alt_response(404, description="no such material lot")
def start_return(args: dict[str, Any]):
    """Start a supplier return from a material lot.

    The identification form is filled from the lot (and its failed incoming inspection); answers the instance and
    that task's id."""
    return supplier_returns.start_return(api_user(), args["material_lot_id"])


LINK_ERRORS = ((404, "a forged or replaced link"), (409, "the link was already used"), (410, "the link expired"))


def _link_errors(view):
    for status, description in LINK_ERRORS:
        view = scar_blp.alt_response(status, description=description)(view)
    return scar_blp.doc(security=[])(view)


@scar_blp.route("/scar-responses/<token>")
@scar_blp.response(200, ScarFormSchema)
@_link_errors
def get_scar(token: str):
    """Get what a link's supplier is asked to answer.

    No authentication: the single-use link is the credential. Answers the SCAR number, the supplier, its language,
    the response due date, the lots and when the link expires."""
    scar = supplier_returns.scar_for_token(token)
    return {"scar": scar, "lots": supplier_returns.return_lots(scar.instance_id)}


@scar_blp.route("/scar-responses/<token>", methods=["POST"])
@scar_blp.arguments(ScarAnswerSchema)
@scar_blp.response(200, ScarAnsweredSchema)
@scar_blp.alt_response(422, description="an answer is missing or a date is invalid; nothing was saved and the link "
                                        "still works")
@_link_errors
def answer_scar(args: dict[str, Any], token: str):
    """Answer a corrective action request.

    No authentication: the single-use link is the credential. Containment, root cause, corrective and preventive
    actions, planned completion and who answers; the link stops working once this succeeds."""
    return supplier_returns.respond(token, args)

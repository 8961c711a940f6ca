"""The /api/v1/processes/<key>/versions endpoints: a version's document-control record, and QA's e-signed approval,
rejection and the author's withdrawal of a pending version. Thin: parse, call a service, answer."""
from __future__ import annotations

from flask import jsonify
from flask_smorest import Blueprint
from marshmallow import fields, validate

from app.api.auth import api_user, authenticate_request
from app.api.base import Schema
from app.services.workflow import procedure_control, processes

blp = Blueprint("procedure_control_api", __name__, url_prefix="/api/v1/processes",
                description="Controlled procedures: approve (e-signature), reject or withdraw a pending version")
blp.before_request(authenticate_request)


class ApproveSchema(Schema):
    password = fields.Str(required=True, validate=validate.Length(max=1000), metadata={
        "description": "the approver's password: the approval is an electronic signature (meaning \"approved\")"})
    effective_date = fields.Date(load_default=None, metadata={
        "description": "the plant date from which new instances start on this version: today (the default) or later"})


class ReasonSchema(Schema):
    reason = fields.Str(required=True, validate=validate.Length(max=procedure_control.REASON_MAX),
                        metadata={"description": "why (required)"})


def _answer(key: str, number: int):
    version = processes.get_version(key, number)
    return jsonify(process=key, version=number, **procedure_control.version_control(version))


@blp.route("/<key>/versions/<int:version>")
@blp.response(200, description="status (pending, scheduled, effective, superseded, rejected, withdrawn), author, "
                               "reason for change, effective date, approver and signature, or the decision's reason")
@blp.alt_response(404, description="no such process or version")
def version_control(key: str, version: int):
    """A version's document-control record."""
    return _answer(key, version)


@blp.route("/<key>/versions/<int:version>/approve", methods=["POST"])
@blp.arguments(ApproveSchema)
@blp.response(200, description="the approved version's record")
@blp.alt_response(401, description="wrong password: not approved (counted like a failed sign-in)")
@blp.alt_response(403, description="not in the QA approver group, or the version's author")
@blp.alt_response(404, description="no such process or version")
@blp.alt_response(409, description="not pending, a newer version already approved, or a called version not approved")
@blp.alt_response(422, description="an effective date in the past")
def approve(args, key: str, version: int):
    """Approve a pending version with an e-signature (QA, not its author)."""
    procedure_control.approve(api_user(), key, version, args["password"], args["effective_date"])
    return _answer(key, version)


@blp.route("/<key>/versions/<int:version>/reject", methods=["POST"])
@blp.arguments(ReasonSchema)
@blp.response(200, description="the rejected version's record")
@blp.alt_response(403, description="not in the QA approver group, or the version's author")
@blp.alt_response(404, description="no such process or version")
@blp.alt_response(409, description="not pending")
@blp.alt_response(422, description="no reason")
def reject(args, key: str, version: int):
    """Reject a pending version with a reason (QA, not its author); it is never used."""
    procedure_control.reject(api_user(), key, version, args["reason"])
    return _answer(key, version)


@blp.route("/<key>/versions/<int:version>/withdraw", methods=["POST"])
@blp.arguments(ReasonSchema)
@blp.response(200, description="the withdrawn version's record")
@blp.alt_response(403, description="not the version's author")
@blp.alt_response(404, description="no such process or version")
@blp.alt_response(409, description="not pending")
@blp.alt_response(422, description="no reason")
def withdraw(args, key: str, version: int):
    """Withdraw your own pending version with a reason; it is never used."""
    procedure_control.withdraw(api_user(), key, version, args["reason"])
    return _answer(key, version)

"""supplier_review.*: the supplier review's signed decision - set the approved-supplier status in the name of the
signer and start a supplier return (SCAR) for the lot named - and close the review."""
from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate

from app.exceptions import QualiflowError
from app.services.procedures import supplier_quality
from handlers.base import HandlerContext, HandlerError


class DecisionParams(Schema):
    status = fields.Str(required=True, validate=validate.OneOf(supplier_quality.SUPPLIER_STATUSES))
    reason = fields.Str(required=True, validate=validate.Length(min=1, max=2000))
    scar_lot = fields.Str(load_default="", validate=validate.Length(max=60))


def apply_decision(ctx: HandlerContext, params: dict[str, Any]) -> dict[str, Any]:
    """Set the supplier's status decided and e-signed in the review, and start the supplier return asked for."""
    try:
        return supplier_quality.apply_decision(ctx.instance, params["status"], params["reason"],
                                               params.get("scar_lot") or "", ctx.now)
    except QualiflowError as err:
        raise HandlerError(err.message) from err

"""stock.*: the scrap / destruction procedure's step - take the signed quantity off the location's stock, record the
destruction (method, witness, approver) and set the lot scrapped when none of it is left in stock."""
from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate
from sqlalchemy import select

from app.exceptions import QualiflowError
from app.models import Signature
from app.models.stock import SCRAP_METHODS
from app.services.lots import stock
from handlers.base import HandlerContext, HandlerError


class ScrapParams(Schema):
    lot_number = fields.Str(required=True, validate=validate.Length(min=1, max=60))
    location = fields.Str(required=True, validate=validate.Length(min=1, max=120))
    quantity = fields.Int(required=True, strict=True, validate=validate.Range(min=1, max=2**31 - 1))
    method = fields.Str(required=True, validate=validate.OneOf(SCRAP_METHODS))
    witness = fields.Str(required=True, validate=validate.Length(min=1, max=200))
    reason = fields.Str(load_default="", validate=validate.Length(max=2000))


def scrap(ctx: HandlerContext, params: dict[str, Any]) -> dict[str, Any]:
    """Destroy the approved quantity, in the name of the instance's last signer (the approval gate)."""
    signature = ctx.session.scalar(select(Signature).where(Signature.instance_id == ctx.instance.id)
                                   .order_by(Signature.id.desc()).limit(1))
    if signature is None:
        raise HandlerError("no signed approval precedes this step: nothing is destroyed without one")
    try:
        return stock.scrap_stock(ctx.instance, params, signature.printed_name, ctx.now, signature.user)
    except QualiflowError as err:
        raise HandlerError(err.message) from err

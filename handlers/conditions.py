"""excursion.*: the deviation / excursion assessment's steps - carry out the signed per-lot decisions (lift the
hold or scrap) and close the excursion, and open a CAPA about the excursion's lots."""
from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate

from app.exceptions import QualiflowError
from app.services.lots import conditions, lots, stock
from app.services.workflow import processes
from handlers.base import HandlerContext, HandlerError


class DecisionParams(Schema):
    decisions = fields.Raw(required=True, metadata={"description": "a list of {lot_number, decision: release|scrap}"})
    reason = fields.Str(required=True, validate=validate.Length(min=1, max=2000))


def apply_decisions(ctx: HandlerContext, params: dict[str, Any]) -> dict[str, Any]:
    """Lift the deviation's hold on the lots released, scrap the others, and close the excursion; for each lot
    scrapped with stock left, start the scrap / destruction procedure at every location holding it (in the name of
    the instance's starter), so the goods are destroyed on a signed record and taken off stock."""
    if not isinstance(params["decisions"], list):
        raise HandlerError("decisions must be a list of {lot_number, decision}")
    try:
        outcome = conditions.apply_decisions(ctx.instance, params["decisions"], params["reason"], ctx.now)
        destructions = []
        if outcome["scrapped"] and processes.is_deployed(stock.SCRAP_PROCESS) and ctx.instance.started_by:
            for number in outcome["scrapped"]:
                reason = f"Excursion #{outcome['excursion_id']}: decided scrap ({params['reason']})"
                destructions += [instance.id for instance in stock.start_scraps_for(
                    conditions.product_lot(number), ctx.instance.started_by, ctx.now, reason)]
        return {**outcome, "destruction_instances": destructions}
    except QualiflowError as err:
        raise HandlerError(err.message) from err


class CapaParams(Schema):
    description = fields.Str(required=True, validate=validate.Length(min=10, max=8000))


def open_capa(ctx: HandlerContext, params: dict[str, Any]) -> dict[str, Any]:
    """Start a CAPA about the excursion, linked to every lot it held, in the name of the instance's starter."""
    numbers = conditions.held_lot_numbers(ctx.instance.id)
    if not numbers:
        raise HandlerError("the excursion held no lot to open a CAPA about")
    if ctx.instance.started_by is None:
        raise HandlerError("this instance has no starter to raise the CAPA in the name of")
    held = [conditions.product_lot(number) for number in numbers]
    try:
        capa = lots.open_capa_for_lot(held[0], ctx.instance.started_by, params["description"], ctx.now,
                                      ctx.instance.id)
    except QualiflowError as err:
        raise HandlerError(err.message) from err
    lots.link_lots(capa.id, [lot.id for lot in held], "subject")
    return {"capa_instance_id": capa.id, "title": capa.title}

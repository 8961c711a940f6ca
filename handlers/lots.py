"""lots.*: service-task handlers over the lot data - affected list, status changes, release checks, backward trace."""
from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema
from sqlalchemy import select

from app.exceptions import QualiflowError
from app.models import MaterialLot, Product, ProductLot
from app.services.lots import lots, trace
from handlers.base import HandlerContext, HandlerError

SETTABLE = ("hold", "released", "recalled", "quarantine", "scrapped")


def _lot_numbers(**kwargs) -> fields.Raw:
    return fields.Raw(load_default=list, **kwargs)


def _product_lot_ids(ctx: HandlerContext, numbers: list[str]) -> list[int]:
    found = dict(ctx.session.execute(select(ProductLot.lot_number, ProductLot.id)
                                     .where(ProductLot.lot_number.in_(numbers))).all()) if numbers else {}
    missing = [n for n in numbers if n not in found]
    if missing:
        raise HandlerError(f"unknown product lot(s): {', '.join(missing)}")
    return [found[n] for n in numbers]


def _material_lot_ids(ctx: HandlerContext, numbers: list[str]) -> list[int]:
    rows = ctx.session.execute(select(MaterialLot.lot_number, MaterialLot.id)
                               .where(MaterialLot.lot_number.in_(numbers))) if numbers else []
    found: dict[str, list[int]] = {}
    for number, lot_id in rows:
        found.setdefault(number, []).append(lot_id)
    missing = [n for n in numbers if n not in found]
    if missing:
        raise HandlerError(f"unknown material lot(s): {', '.join(missing)}")
    return [lot_id for n in numbers for lot_id in found[n]]


class FindAffectedParams(Schema):
    material_lots = _lot_numbers(metadata={"description": "material lot numbers (list or comma-separated)"})
    product_lots = _lot_numbers(metadata={"description": "product lot numbers (list or comma-separated)"})
    sterilization_batches = _lot_numbers(metadata={"description": "sterilization batch numbers"})
    gtin = fields.Str(load_default=None, metadata={"description": "product UDI-DI, with a date range"})
    manufactured_from = fields.Date(load_default=None)
    manufactured_to = fields.Date(load_default=None)

    @validates_schema
    def _some_criterion(self, data: dict, **_: Any) -> None:
        if not any(data.get(k) for k in ("material_lots", "product_lots", "sterilization_batches", "gtin",
                                          "manufactured_from", "manufactured_to")):
            raise ValidationError("give material lots, product lots, sterilization batches or a date range")


def find_affected(ctx: HandlerContext, params: dict[str, Any]) -> dict[str, Any]:
    """Trace the given lots, batches or production period forward to affected lots, shipments and consignees."""
    product_id = None
    if params.get("gtin"):
        product_id = ctx.session.scalar(select(Product.id).where(Product.gtin == params["gtin"]))
        if product_id is None:
            raise HandlerError(f"unknown product {params['gtin']}")
    result = trace.find_affected(
        material_lot_ids=_material_lot_ids(ctx, lots.split_list(params["material_lots"])),
        product_lot_ids=_product_lot_ids(ctx, lots.split_list(params["product_lots"])),
        sterilization_batches=lots.split_list(params["sterilization_batches"]), product_id=product_id,
        manufactured_from=params.get("manufactured_from"), manufactured_to=params.get("manufactured_to"))
    if not result.product_lots:
        raise HandlerError("no lot matches: the affected list would be empty")
    lots.link_lots(ctx.instance.id, [lot.id for lot in result.product_lots], "affected")
    return result.as_dict()


class SetStatusParams(Schema):
    lots = fields.Raw(required=True, metadata={"description": "product lot numbers (list or comma-separated)"})
    status = fields.Str(required=True, validate=validate.OneOf(SETTABLE))
    reason = fields.Str(required=True, validate=validate.Length(min=1, max=2000))
    role = fields.Str(load_default=None, validate=validate.Length(min=1, max=40),
                      metadata={"description": "how the lots are linked to the instance (default: the status)"})


def set_status(ctx: HandlerContext, params: dict[str, Any]) -> dict[str, Any]:
    """Move product lots to a status with a reason, audited in the instance's transaction; already there is fine.

    The procedure is the authority here (its e-signed decision precedes this task), so the change is
    recorded as made by the system for the instance rather than checked against a user's role.
    """
    numbers = lots.split_list(params["lots"])
    if not numbers:
        raise HandlerError("no lots given")
    ids = _product_lot_ids(ctx, numbers)
    role = params["role"] or params["status"]
    changed = []
    for lot in ctx.session.scalars(select(ProductLot).where(ProductLot.id.in_(ids)).with_for_update()):
        try:
            if params["status"] == "hold":
                done = lots.hold_lot(ctx.instance.id, lot, params["reason"], role, ctx.now)
            else:
                done = lots.change_status(lot, params["status"], params["reason"], None, ctx.now,
                                          instance_id=ctx.instance.id)
        except QualiflowError as err:
            raise HandlerError(err.message) from err
        if done:
            changed.append(lot.lot_number)
    lots.link_lots(ctx.instance.id, ids, role)
    return {"status": params["status"], "changed": sorted(changed), "lots": numbers}


HOLD_ROLES = lots.HOLD_ROLES  # read here: inside the schema below, `lots` names its field


class LiftHoldParams(Schema):
    lots = fields.Raw(required=True, metadata={"description": "product lot numbers (list or comma-separated)"})
    reason = fields.Str(required=True, validate=validate.Length(min=1, max=2000))
    role = fields.Str(load_default="hold", validate=validate.OneOf(HOLD_ROLES),
                      metadata={"description": "the role the lots were held under (hold, containment)"})


def lift_hold(ctx: HandlerContext, params: dict[str, Any]) -> dict[str, Any]:
    """Lift the instance's hold: each lot returns to the status it had before the hold (a lot in quarantine
    stays there until its release), unless another open procedure still holds it."""
    numbers = lots.split_list(params["lots"])
    if not numbers:
        raise HandlerError("no lots given")
    ids = _product_lot_ids(ctx, numbers)
    results = []
    for lot in ctx.session.scalars(select(ProductLot).where(ProductLot.id.in_(ids))
                                   .order_by(ProductLot.lot_number).with_for_update()):
        try:
            results.append(lots.lift_hold(ctx.instance.id, lot, params["reason"], params["role"], ctx.now))
        except QualiflowError as err:
            raise HandlerError(err.message) from err
    return {"lots": results,
            "restored": [r["lot"] for r in results if r["outcome"] == "restored"],
            "still_held": [r["lot"] for r in results if r["outcome"] == "still_held"]}


class LotParams(Schema):
    lot = fields.Str(required=True, validate=validate.Length(min=1), metadata={"description": "product lot number"})


def release_checks(ctx: HandlerContext, params: dict[str, Any]) -> dict[str, Any]:
    """Check a product lot against the release conditions; the result lists every failed one."""
    lot = ctx.session.get(ProductLot, _product_lot_ids(ctx, [params["lot"]])[0])
    lots.link_lots(ctx.instance.id, [lot.id], "subject")
    return lots.release_checks(lot, ctx.now.date(), exclude_instance_id=ctx.instance.id).as_dict()


class OpenCapaParams(LotParams):
    description = fields.Str(required=True, validate=validate.Length(min=10, max=8000))


def open_capa(ctx: HandlerContext, params: dict[str, Any]) -> dict[str, Any]:
    """Start a CAPA about the lot, linked to it, raised in the name of whoever started this procedure."""
    lot = ctx.session.get(ProductLot, _product_lot_ids(ctx, [params["lot"]])[0])
    if ctx.instance.started_by is None:
        raise HandlerError("this instance has no starter to raise the CAPA in the name of")
    try:
        capa = lots.open_capa_for_lot(lot, ctx.instance.started_by, params["description"], ctx.now, ctx.instance.id)
    except QualiflowError as err:
        raise HandlerError(err.message) from err
    return {"capa_instance_id": capa.id, "title": capa.title}


def trace_backward(ctx: HandlerContext, params: dict[str, Any]) -> dict[str, Any]:
    """Trace a product lot back to its components, material lots, suppliers, sterilization batches and inspections."""
    return trace.backward(_product_lot_ids(ctx, [params["lot"]])).as_dict()

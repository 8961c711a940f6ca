"""The /api/v1 stock endpoints: stock by warehouse and location with status and expiry, near-expiry and expired
stock per warehouse, and shipments picked first-expiry-first-out (a proposal, the shipment itself, and the QA-signed
override of a refused lot). Thin: parse, call a service, answer."""
from __future__ import annotations

from flask_babel import get_locale
from flask_smorest import Blueprint
from marshmallow import fields, validate

from app.api.auth import api_user, authenticate_request
from app.api.base import Schema
from app.services.lots import ledger, stock
from app.services.workflow import plant_time

blp = Blueprint("stock_api", __name__, url_prefix="/api/v1",
                description="Stock by warehouse and location, FEFO shipments with their refusals and overrides")
blp.before_request(authenticate_request)


def _lang() -> str:
    return "zh-CN" if str(get_locale()).startswith("zh") else "en"


class StockQuerySchema(Schema):
    warehouse = fields.Str(load_default=None, validate=validate.Length(max=60),
                           metadata={"description": "warehouse code; an empty value lists locations of no warehouse"})
    location = fields.Str(load_default="", validate=validate.Length(max=120))
    expiry = fields.Str(load_default="", validate=validate.OneOf(["", *stock.EXPIRY_FILTERS]),
                        metadata={"description": "near (within the near-expiry days) or expired"})
    status = fields.Str(load_default="", validate=validate.Length(max=20))
    q = fields.Str(load_default="", validate=validate.Length(max=200),
                   metadata={"description": "lot number, product name or GTIN"})
    page = fields.Int(load_default=1, validate=validate.Range(min=1))
    per_page = fields.Int(load_default=50, validate=validate.Range(min=1, max=200))


class StockRowSchema(Schema):
    id = fields.Int()
    warehouse = fields.Str(allow_none=True)
    warehouse_name = fields.Str(allow_none=True)
    location = fields.Str()
    lot_number = fields.Str()
    product_lot_id = fields.Int()
    product = fields.Str()
    gtin = fields.Str(allow_none=True)
    status = fields.Str()
    quantity = fields.Int()
    expiry_on = fields.Date(allow_none=True)
    days_to_expiry = fields.Int(allow_none=True)


class StockLevelsPageSchema(Schema):
    items = fields.List(fields.Nested(StockRowSchema))
    page = fields.Int()
    pages = fields.Int()
    total = fields.Int()


class WarehouseExpirySchema(Schema):
    warehouse = fields.Str(allow_none=True, metadata={"description": "null: locations not registered to a warehouse"})
    name = fields.Str()
    near_expiry_lots = fields.Int()
    near_expiry_quantity = fields.Int()
    expired_lots = fields.Int()
    expired_quantity = fields.Int()


class ExpiryAnswerSchema(Schema):
    near_expiry_days = fields.Int()
    warehouses = fields.List(fields.Nested(WarehouseExpirySchema))


class WarehouseSchema(Schema):
    id = fields.Int()
    code = fields.Str()
    name = fields.Str()
    address = fields.Str()
    locations = fields.Int()
    quantity = fields.Int(metadata={"description": "units in stock at its locations"})


class MovementQuerySchema(Schema):
    lot = fields.Str(load_default="", validate=validate.Length(max=60),
                     metadata={"description": "a product lot's number (404 when there is none); empty: every lot"})
    location = fields.Str(load_default="", validate=validate.Length(max=120),
                          metadata={"description": "a location, as stock levels spell it; empty: every location"})
    page = fields.Int(load_default=1, validate=validate.Range(min=1))
    per_page = fields.Int(load_default=50, validate=validate.Range(min=1, max=200))


class MovementSchema(Schema):
    id = fields.Int()
    lot_number = fields.Str()
    product_lot_id = fields.Int()
    location = fields.Str()
    change = fields.Int(metadata={"description": "signed: + goods in, - goods out"})
    balance = fields.Int(metadata={"description": "the lot's quantity at the location after this change"})
    kind = fields.Str(metadata={"description": "opening (balance when the ledger began), import (stock file), entry "
                                               "(a stock record entered alone), demo, shipment, scrap"})
    order_id = fields.Int(allow_none=True, metadata={"description": "the shipment order (kind shipment)"})
    instance_id = fields.Int(allow_none=True, metadata={"description": "the scrap procedure's instance (kind scrap)"})
    import_job_id = fields.Int(allow_none=True, metadata={"description": "the import job (kind import)"})
    actor = fields.Str(metadata={"description": "who changed the stock (the approver's printed name for a scrap)"})
    at = fields.DateTime()


class MovementsPageSchema(Schema):
    items = fields.List(fields.Nested(MovementSchema))
    page = fields.Int()
    pages = fields.Int()
    total = fields.Int()


class ShipmentRequestSchema(Schema):
    # Values are checked by the service (422 with a message per field), so a hostile value never reaches the database.
    product = fields.Raw(required=True, metadata={"description": "the product's UDI-DI (GTIN)",
                                                  "example": "06901234567892"})
    customer = fields.Raw(required=True, metadata={"description": "the customer's code", "example": "HOSP-1"})
    quantity = fields.Raw(required=True, metadata={"description": "units to ship (> 0)", "example": 10})
    shipped_on = fields.Raw(load_default=None, metadata={"description": "YYYY-MM-DD (default: today, plant time)"})
    warehouse = fields.Raw(load_default=None, metadata={"description": "ship only from this warehouse (code)"})
    document_no = fields.Raw(load_default=None, metadata={"description": "the delivery note's number"})


class ShipRequestSchema(ShipmentRequestSchema):
    overrides = fields.List(fields.Str(validate=validate.Length(max=60)), load_default=list,
                            validate=validate.Length(max=100),
                            metadata={"description": "lot numbers refused for this customer's minimum shelf life that "
                                                     "QA ships anyway (needs reason and password)"})
    reason = fields.Str(load_default=None, validate=validate.Length(max=2000))
    password = fields.Str(load_default=None, validate=validate.Length(max=1000), load_only=True,
                          metadata={"description": "the QA signer's password (re-authentication)"})


class PickSchema(Schema):
    lot_number = fields.Str()
    location = fields.Str()
    quantity = fields.Int()
    expiry_on = fields.Str(allow_none=True)
    status = fields.Str()
    overridden = fields.Str(allow_none=True)


class RefusalSchema(Schema):
    lot_number = fields.Str()
    location = fields.Str()
    quantity = fields.Int()
    code = fields.Str(metadata={"description": "expired, hold, recalled, quarantine, not_shippable, shelf_life"})
    overridable = fields.Bool()
    message = fields.Str(metadata={"description": "in the request's language"})
    message_en = fields.Str()
    message_zh = fields.Str()


class ProposalSchema(Schema):
    product = fields.Str()
    product_name = fields.Str()
    customer = fields.Str()
    quantity = fields.Int()
    shipped_on = fields.Str()
    warehouse = fields.Str(allow_none=True)
    min_shelf_life_days = fields.Int()
    picked = fields.Int()
    short = fields.Int()
    complete = fields.Bool()
    picks = fields.List(fields.Nested(PickSchema))
    refused = fields.List(fields.Nested(RefusalSchema))
    message = fields.Str()


class OrderSchema(Schema):
    id = fields.Int()
    document_no = fields.Str()
    product = fields.Str(attribute="product.gtin")
    customer = fields.Str(attribute="customer.code")
    warehouse = fields.Function(lambda o: o.warehouse.code if o.warehouse else None, allow_none=True,
                                metadata={"type": "string"})
    quantity = fields.Int()
    shipped_on = fields.Date()
    min_shelf_life_days = fields.Int()
    lines = fields.List(fields.Nested(PickSchema))
    refused = fields.List(fields.Nested(RefusalSchema))
    override_lots = fields.List(fields.Str())
    override_reason = fields.Str(allow_none=True)
    override_printed_name = fields.Str(allow_none=True)
    override_meaning = fields.Str(allow_none=True)
    override_signed_at = fields.DateTime(allow_none=True)
    override_hash = fields.Str(allow_none=True)
    created_at = fields.DateTime()


def _request_values(body: dict) -> dict:
    return {name: body.get(name) for name in ShipmentRequestSchema().fields}


@blp.route("/stock/levels")
@blp.arguments(StockQuerySchema, location="query")
@blp.response(200, StockLevelsPageSchema)
def stock_levels(query: dict):
    """List stock by warehouse and location with each lot's status and expiry, soonest expiry first."""
    today = plant_time.local_date(plant_time.utcnow(), plant_time.zone())
    page = stock.list_stock(warehouse=query["warehouse"], location=query["location"], expiry=query["expiry"],
                            status=query["status"], q=query["q"], today=today, page=query["page"],
                            per_page=query["per_page"])
    return {"items": [row.as_dict(today) for row in page.items], "page": page.page, "pages": page.pages,
            "total": page.total}


@blp.route("/stock/movements")
@blp.arguments(MovementQuerySchema, location="query")
@blp.response(200, MovementsPageSchema)
@blp.alt_response(404, description="no product lot with this number")
def stock_movements(query: dict):
    """List the stock movement ledger, newest first: every change of a lot's quantity at a location (opening
    balance, import, shipment, scrap) with the balance it left, its reference (shipment order, scrap instance,
    import job), who and when. The changes of a lot at a location add up to its stock level."""
    lot = ledger.lot_by_number(query["lot"].strip()) if query["lot"].strip() else None
    page = ledger.movements(lot_id=lot.id if lot else None, location=query["location"].strip(), page=query["page"],
                            per_page=query["per_page"])
    return {"items": [ledger.as_dict(movement) for movement in page.items], "page": page.page,
            "pages": page.pages, "total": page.total}


@blp.route("/stock/expiry")
@blp.response(200, ExpiryAnswerSchema)
def stock_expiry():
    """Near-expiry and expired stock per warehouse (lots and units), as the dashboard shows it."""
    from flask import current_app
    days = current_app.config["LOT_NEAR_EXPIRY_DAYS"]
    today = plant_time.local_date(plant_time.utcnow(), plant_time.zone())
    return {"near_expiry_days": days,
            "warehouses": [row.as_dict() for row in stock.expiry_by_warehouse(today, days)]}


@blp.route("/warehouses")
@blp.response(200, WarehouseSchema(many=True))
def warehouses():
    """List the warehouses with their number of locations and units in stock (create them with POST
    /api/v1/warehouses and their locations with POST /api/v1/locations, or by file import)."""
    return [{"id": w.id, "code": w.code, "name": w.name, "address": w.address, "locations": count,
             "quantity": quantity} for w, count, quantity in stock.list_warehouses()]


@blp.route("/shipment-orders/proposal", methods=["POST"])
@blp.arguments(ShipRequestSchema)
@blp.response(200, ProposalSchema)
def propose(body: dict):
    """Propose the lots for a shipment, first expiry first out, with every lot refused and why (nothing is
    written). `overrides` shows the proposal with those shelf-life refusals overridden."""
    lang = _lang()
    return stock.propose(_request_values(body), lang, body["overrides"]).as_dict(lang)


@blp.route("/shipment-orders", methods=["POST"])
@blp.arguments(ShipRequestSchema)
@blp.response(201, OrderSchema)
@blp.alt_response(409, description="not enough stock may be shipped: the message names each refused lot and why")
def ship(body: dict):
    """Ship a product to a customer first-expiry-first-out: the lots are picked, the stock decremented and the
    shipments recorded in one transaction, or nothing is written. An override of shelf-life refusals needs the
    QA signer's `reason` and `password` (401 wrong password, 403 not QA)."""
    return stock.ship(_request_values(body), api_user(), overrides=body["overrides"], reason=body["reason"],
                      password=body["password"], lang=_lang())


@blp.route("/shipment-orders/<int:order_id>")
@blp.response(200, OrderSchema)
def get_order(order_id: int):
    """Get a shipment order: its lines, the lots it refused and why, and the override's signature."""
    return stock.get_order(order_id)

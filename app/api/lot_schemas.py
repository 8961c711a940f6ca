"""marshmallow schemas of the lot API: master-data records, lot pages, status changes, trace reports and imports."""
from __future__ import annotations

from marshmallow import INCLUDE, fields, post_load, validate

from app.api.base import ErrorSchema, Schema, refused_rows
from app.api.schemas import AuditSchema
from app.services.lots import conditions, import_rules, lots, stock  # noqa: F401 - conditions and stock register kinds

# URL and form spelling of the importable kinds: "product-lots" for import_rules.KINDS["product_lots"].
API_KINDS = {name.replace("_", "-"): name for name in import_rules.KINDS}


class ListQuerySchema(Schema):
    q = fields.Str(load_default="", validate=validate.Length(max=200),
                   metadata={"description": "search text (lot number, code, name, ...)"})
    status = fields.Str(load_default="", metadata={"description": "lot or supplier status"})
    page = fields.Int(load_default=1, validate=validate.Range(min=1))
    per_page = fields.Int(load_default=20, validate=validate.Range(min=1, max=100))


# --- records ----------------------------------------------------------------------------------------------------------

class ProductSchema(Schema):
    id = fields.Int()
    gtin = fields.Str(allow_none=True, metadata={"description": "UDI-DI"})
    name = fields.Str()
    model = fields.Str()
    specification = fields.Str()
    registration_no = fields.Str()
    registration_expiry = fields.Date(allow_none=True)
    device_class = fields.Str()
    sterile = fields.Bool()
    storage_temp_min = fields.Float(allow_none=True, metadata={"description": "storage range, degrees Celsius"})
    storage_temp_max = fields.Float(allow_none=True)
    storage_rh_min = fields.Float(allow_none=True, metadata={"description": "storage range, %RH"})
    storage_rh_max = fields.Float(allow_none=True)
    excursion_tolerance_minutes = fields.Int(metadata={"description": "minutes out of range tolerated, cumulative"})


class SupplierSchema(Schema):
    id = fields.Int()
    code = fields.Str()
    name = fields.Str()
    status = fields.Str()
    contact_name = fields.Str()
    email = fields.Str()
    language = fields.Str(metadata={"description": "language of its corrective action requests: zh-CN or en"})


class MaterialLotSchema(Schema):
    id = fields.Int()
    material = fields.Str()
    lot_number = fields.Str()
    supplier_code = fields.Str(attribute="supplier.code")
    supplier_name = fields.Str(attribute="supplier.name")
    supplier_status = fields.Str(attribute="supplier.status",
                                 metadata={"description": "approved, conditional or suspended"})
    received_on = fields.Date(allow_none=True)
    expiry_on = fields.Date(allow_none=True)
    status = fields.Str()


class SupplierWarningsMixin(Schema):
    warnings = fields.Function(lots.supplier_warnings, metadata={
        "type": "array", "items": {"type": "string"},
        "description": "what the supplier's status asks (a conditional supplier: tightened incoming inspection), "
                       "in the request's language; empty for an approved supplier"})


class MaterialLotCreatedSchema(MaterialLotSchema, SupplierWarningsMixin):
    """A material lot as answered when it is entered, with its supplier's warnings."""


class ProductLotSchema(Schema):
    id = fields.Int()
    lot_number = fields.Str()
    product_id = fields.Int()
    product_name = fields.Str(attribute="product.name")
    gtin = fields.Str(attribute="product.gtin", allow_none=True)
    quantity = fields.Int()
    manufactured_on = fields.Date(allow_none=True)
    expiry_on = fields.Date(allow_none=True)
    sterilization_batch = fields.Str(allow_none=True)
    status = fields.Str()
    batch_record_complete = fields.Bool()
    labels_checked = fields.Bool()


class CustomerSchema(Schema):
    id = fields.Int()
    code = fields.Str()
    name = fields.Str()
    kind = fields.Str()
    region = fields.Str()
    country = fields.Str()
    contact = fields.Str()
    email = fields.Str()
    parent_code = fields.Function(lambda c: c.parent.code if c.parent else None, allow_none=True,
                                  metadata={"type": "string"})
    min_shelf_life_days = fields.Int(allow_none=True, metadata={
        "description": "remaining shelf life a lot shipped to this customer needs (null: the site default)"})


class ShipmentSchema(Schema):
    id = fields.Int()
    product_lot_id = fields.Int()
    lot_number = fields.Str(attribute="product_lot.lot_number")
    customer_code = fields.Str(attribute="customer.code")
    customer_name = fields.Str(attribute="customer.name")
    region = fields.Str(attribute="customer.region")
    from_customer_code = fields.Function(lambda s: s.from_customer.code if s.from_customer else None, allow_none=True,
                                         metadata={"type": "string",
                                                   "description": "the distributor of an onward shipment"})
    quantity = fields.Int()
    shipped_on = fields.Date()
    document_no = fields.Str()


class InspectionSchema(Schema):
    id = fields.Int()
    stage = fields.Str()
    product_lot = fields.Function(lambda i: i.product_lot.lot_number if i.product_lot else None, allow_none=True,
                                  metadata={"type": "string"})
    material = fields.Function(lambda i: i.material_lot.material if i.material_lot else None, allow_none=True,
                               metadata={"type": "string"})
    material_lot = fields.Function(lambda i: i.material_lot.lot_number if i.material_lot else None, allow_none=True,
                                   metadata={"type": "string"})
    result = fields.Str()
    results = fields.Str()
    inspected_on = fields.Date()
    inspector = fields.Str()
    capa_instance_id = fields.Int(allow_none=True,
                                  metadata={"description": "the CAPA instance a failed final inspection opened"})


class InspectionCreatedSchema(InspectionSchema, SupplierWarningsMixin):
    """An inspection as answered when it is entered, with the warnings of its material lot's supplier."""


class StockSchema(Schema):
    id = fields.Int()
    product_lot_id = fields.Int()
    lot_number = fields.Str(attribute="product_lot.lot_number")
    location = fields.Str()
    quantity = fields.Int()


class CreatedSchema(Schema):
    id = fields.Int()


def page_schema(item: type[Schema]) -> type[Schema]:
    """Return the schema of one page of items: {items, page, pages, total}."""
    return Schema.from_dict({"items": fields.List(fields.Nested(item)), "page": fields.Int(), "pages": fields.Int(),
                             "total": fields.Int()}, name=item.__name__.replace("Schema", "PageSchema"))


class RecordSchema(Schema):
    """A record's columns as sent: the import rules in app/services/imports.py validate them (422 per field)."""

    class Meta:
        unknown = INCLUDE


def record_schema(kind: import_rules.Kind) -> type[Schema]:
    """Document a kind's columns (import_rules.KINDS) in the OpenAPI; every value passes through to the import rules."""
    columns = {column.name: fields.Raw(allow_none=True, metadata={
        "description": f"{column.label}{' (required)' if column.required else ''}",
        **({"default": column.default} if column.default not in (None, "") else {})}) for column in kind.columns}
    return RecordSchema.from_dict(columns, name=f"{kind.name.title().replace('_', '')}RecordSchema")


# --- lots -------------------------------------------------------------------------------------------------------------

class StatusChangeSchema(Schema):
    # Unknown statuses and missing reasons are the service's to refuse (400), like on the lot pages.
    status = fields.Str(required=True, metadata={"example": "hold"})
    reason = fields.Str(load_default="", validate=validate.Length(max=500))


class GenealogyEdgeSchema(Schema):
    id = fields.Int()
    product_lot_id = fields.Int()
    material_lot_id = fields.Int(allow_none=True)
    component_lot_id = fields.Int(allow_none=True)
    quantity = fields.Float()


class LotInstanceSchema(Schema):
    """An instance concerning a lot, from (instance, role) rows."""

    id = fields.Function(lambda row: row[0].id, metadata={"type": "integer"})
    process = fields.Function(lambda row: row[0].version.definition.key, metadata={"type": "string"})
    title = fields.Function(lambda row: row[0].title, metadata={"type": "string"})
    status = fields.Function(lambda row: row[0].status, metadata={"type": "string"})
    role = fields.Function(lambda row: row[1], metadata={"type": "string"})


class ProductLotDetailSchema(Schema):
    lot = fields.Nested(ProductLotSchema)
    inspections = fields.List(fields.Nested(InspectionSchema))
    stock = fields.List(fields.Nested(StockSchema))
    shipments = fields.List(fields.Nested(ShipmentSchema), metadata={"description": "the latest 200"})
    components = fields.List(fields.Nested(GenealogyEdgeSchema))
    used_in = fields.List(fields.Nested(GenealogyEdgeSchema))
    serial_count = fields.Int()
    instances = fields.List(fields.Nested(LotInstanceSchema))
    history = fields.List(fields.Nested(AuditSchema))


class MaterialLotDetailSchema(Schema):
    lot = fields.Nested(MaterialLotSchema)
    inspections = fields.List(fields.Nested(InspectionSchema))
    history = fields.List(fields.Nested(AuditSchema))


class ReleaseCheckSchema(Schema):
    code = fields.Str()
    passed = fields.Bool()
    detail = fields.Str()
    detail_zh = fields.Str(metadata={"description": "the detail in Chinese, where it names values"})


class ReleaseReportSchema(Schema):
    lot_number = fields.Str()
    releasable = fields.Bool()
    failed = fields.List(fields.Dict(), metadata={"description": "[{code, detail}] of the failed checks"})
    checks = fields.List(fields.Nested(ReleaseCheckSchema))


# --- trace ------------------------------------------------------------------------------------------------------------

class TraceQuerySchema(Schema):
    # Not required here: an empty search is the service's 400, like a malformed GS1 code.
    q = fields.Str(load_default="", validate=validate.Length(max=500),
                   metadata={"description": "lot number, serial, sterilization batch, document no., GTIN or UDI"})


class TraceExportQuerySchema(TraceQuerySchema):
    format = fields.Str(load_default="xlsx", validate=validate.OneOf(["xlsx", "csv"]))


class ScannedCodeSchema(Schema):
    text = fields.Str()
    gtin = fields.Str(allow_none=True)
    lot = fields.Str(allow_none=True)
    serial = fields.Str(allow_none=True)
    expiry = fields.Date(allow_none=True)
    production = fields.Date(allow_none=True)
    is_gs1 = fields.Bool()


class TraceMatchSchema(Schema):
    product_lots = fields.List(fields.Nested(ProductLotSchema))
    material_lots = fields.List(fields.Nested(MaterialLotSchema))
    shipments = fields.List(fields.Nested(ShipmentSchema))


class ConsigneeLineSchema(Schema):
    """A consignee reached by the trace, with what it received."""

    customer = fields.Nested(CustomerSchema)
    quantity = fields.Int()
    shipments = fields.Int(metadata={"description": "number of shipments"})


class ForwardTraceSchema(Schema):
    product_lots = fields.List(fields.Nested(ProductLotSchema))
    shipments = fields.List(fields.Nested(ShipmentSchema))


class BackwardTraceSchema(Schema):
    product_lots = fields.List(fields.Nested(ProductLotSchema))
    material_lots = fields.List(fields.Nested(MaterialLotSchema))
    suppliers = fields.List(fields.Nested(SupplierSchema))
    sterilization_batches = fields.List(fields.Str())
    inspections = fields.List(fields.Nested(InspectionSchema))


class SterilizationRecordSchema(Schema):
    """A sterilization batch record a product lot of the trace was in."""

    lot_id = fields.Int()
    lot_number = fields.Str()
    batch_id = fields.Int(metadata={"description": "GET /api/v1/sterilization-batches/{batch_id}"})
    batch_number = fields.Str()
    method = fields.Str(metadata={"description": "eo, gamma, ebeam or steam"})
    processed_on = fields.Str(metadata={"description": "the day of the cycle (YYYY-MM-DD)"})
    sterilizer = fields.Str()
    bi_result = fields.Str(allow_none=True, metadata={"description": "pending, pass or fail; null for radiation"})
    status = fields.Str(metadata={"description": "pending, released or failed"})
    current = fields.Bool(metadata={"description": "the batch the lot names now (false: resterilized since)"})


class TraceReportSchema(Schema):
    query = fields.Str()
    code = fields.Nested(ScannedCodeSchema, attribute="match.code")
    matched = fields.Nested(TraceMatchSchema, attribute="match")
    counts = fields.Dict(keys=fields.Str(), values=fields.Int())
    forward = fields.Nested(ForwardTraceSchema)
    consignees = fields.List(fields.Nested(ConsigneeLineSchema),
                             metadata={"description": "who received the forward-traced lots, with quantities"})
    backward = fields.Nested(BackwardTraceSchema, allow_none=True,
                             metadata={"description": "null when the search found no product lot or shipment"})
    sterilization_records = fields.List(fields.Nested(SterilizationRecordSchema), metadata={
        "description": "the sterilization batch records every product lot of the trace was in, oldest cycle first"})


# --- imports ----------------------------------------------------------------------------------------------------------

class ImportUploadSchema(Schema):
    """A multipart upload: the kind of records and the file (read together, see lots.UploadParser)."""

    kind = fields.Str(required=True, validate=validate.OneOf([*API_KINDS, *API_KINDS.values()]),
                      metadata={"example": "product-lots"})
    file = fields.Raw(required=True, metadata={"type": "string", "format": "binary",
                                               "description": "a .csv or .xlsx file with a header row"})

    @post_load
    def underscore_kind(self, data: dict, **_) -> dict:
        return {**data, "kind": API_KINDS.get(data["kind"], data["kind"])}


class RowErrorSchema(Schema):
    line = fields.Int()
    column = fields.Str()
    code = fields.Str()
    reason = fields.Str()


class ImportJobSchema(Schema):
    id = fields.Int()
    kind = fields.Str()
    filename = fields.Str()
    status = fields.Str(metadata={"description": "running, succeeded or failed"})
    read = fields.Int()
    expected = fields.Int()
    imported_rows = fields.Int()
    error_count = fields.Int()
    message = fields.Str()
    errors = fields.List(fields.Nested(RowErrorSchema))


class ImportRefusedSchema(ErrorSchema):
    errors = refused_rows("the first 1000 row errors, each {line, column, code, reason}")

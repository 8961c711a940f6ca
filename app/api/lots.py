"""The /api/v1 lot endpoints: master-data lists and records, lot status and release checks, trace and imports.
Thin: parse, call a service, answer."""
from __future__ import annotations

import io
import json
from collections.abc import Callable

from flask import Request, current_app, send_file
from flask_smorest import Blueprint
from marshmallow import Schema
from webargs.flaskparser import FlaskParser
from webargs.multidictproxy import MultiDictProxy
from werkzeug.datastructures import CombinedMultiDict
from werkzeug.utils import secure_filename

from app.api.auth import api_user, authenticate_request
from app.api.lot_schemas import (
    API_KINDS,
    CreatedSchema,
    CustomerSchema,
    ImportJobSchema,
    ImportRefusedSchema,
    ImportUploadSchema,
    InspectionCreatedSchema,
    InspectionSchema,
    ListQuerySchema,
    MaterialLotCreatedSchema,
    MaterialLotDetailSchema,
    MaterialLotSchema,
    ProductLotDetailSchema,
    ProductLotSchema,
    ProductSchema,
    ReleaseReportSchema,
    RowErrorSchema,
    ShipmentSchema,
    StatusChangeSchema,
    StockSchema,
    SupplierSchema,
    TraceExportQuerySchema,
    TraceQuerySchema,
    TraceReportSchema,
    page_schema,
    record_schema,
)
from app.api.schemas import InstanceStartedSchema
from app.exceptions import ImportRefused
from app.services.lots import import_rules, imports, lots, trace
from app.services.workflow import plant_time

blp = Blueprint("lots_api", __name__, url_prefix="/api/v1",
                description="Qualiflow lot data: master data, lot status and release, trace, imports")
# Authenticate before any argument parsing, so anonymous callers learn nothing about the API's input rules.
blp.before_request(authenticate_request)


class UploadParser(FlaskParser):
    """Read a multipart upload's form fields with its files: one schema, and one multipart body in the OpenAPI
    (flask-smorest documents only one of two `arguments` on form and files)."""

    def load_files(self, req: Request, schema: Schema) -> MultiDictProxy:
        req.max_content_length = current_app.config["IMPORT_MAX_BYTES"]  # the only upload here: lot data files
        return self._makeproxy(CombinedMultiDict([req.form, req.files]), schema)


blp.ARGUMENTS_PARSER = UploadParser()

XLSX_MIMETYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

# URL kind -> how one of its records is answered. The listable kinds are lots.LIST_MODELS; genealogy edges
# and serial numbers are only created here (they show on the product lot).
LISTED: dict[str, type[Schema]] = {
    "products": ProductSchema,
    "suppliers": SupplierSchema,
    "material-lots": MaterialLotSchema,
    "product-lots": ProductLotSchema,
    "customers": CustomerSchema,
    "shipments": ShipmentSchema,
    "inspections": InspectionSchema,
    "stock": StockSchema,
}
CREATE_ONLY = ("genealogy", "serials", "sensors", "warehouses", "locations")
# Lot kinds answer a created record with the whole lot; the others with its id.
LOT_KINDS = {"product_lots": "product", "material_lots": "material"}


def _columns_text(kind: import_rules.Kind) -> str:
    """Describe a kind's columns as a Markdown list for the OpenAPI description."""
    lines = []
    for column in kind.columns:
        required = " (required)" if column.required else ""
        default = f", default {json.dumps(column.default)}" if column.default not in (None, "") else ""
        lines.append(f"- `{column.name}`: {column.label}{required}{default}")
    return "\n".join(lines)


def _list_view(path: str, kind: str, schema: type[Schema]) -> Callable:
    @blp.doc(summary=f"List {import_rules.KINDS[kind].label.lower()}",
             description="One page, filtered by a search text `q` and (lots, suppliers) a `status`.")
    @blp.arguments(ListQuerySchema, location="query")
    @blp.response(200, page_schema(schema))
    def list_view(query: dict):
        """List records."""
        page = lots.list_records(kind, q=query["q"], status=query["status"], page=query["page"],
                                 per_page=query["per_page"])
        return {"items": page.items, "page": page.page, "pages": page.pages, "total": page.total}

    return blp.route(f"/{path}", endpoint=f"list_{kind}", methods=["GET"])(list_view)


# Kinds whose supplier's status matters when one is entered: answered with the supplier's warnings, and refused
# (409, nothing saved) for a suspended supplier - a new material lot, or a passing inspection of one of its lots.
SUPPLIER_CHECKED = {"material-lots": MaterialLotCreatedSchema, "inspections": InspectionCreatedSchema}
SUPPLIER_NOTE = (" A suspended supplier's new material lot, or a passing inspection of its material lot, is refused "
                 "with 409 (`message` names the supplier; a failed inspection is recorded); a conditional supplier's "
                 "record is answered with `warnings`. ")


def _create_view(path: str, kind: str) -> Callable:
    listed = path in LISTED
    answer = SUPPLIER_CHECKED.get(path) or (LISTED[path] if listed else CreatedSchema)

    @blp.doc(summary=f"Create one record of {import_rules.KINDS[kind].label.lower()}",
             description="Checked with the rules of a file import: 422 with `errors` per column when refused, "
                         "nothing saved. " + ("Answers the record. " if listed else "Answers its id. ")
                         + (SUPPLIER_NOTE if path in SUPPLIER_CHECKED else "")
                         + "Columns:\n\n" + _columns_text(import_rules.KINDS[kind]))
    @blp.arguments(record_schema(import_rules.KINDS[kind]))
    @blp.response(201, answer)
    def create_view(data: dict):
        """Create a record."""
        record_id = imports.create_record(kind, data, api_user())
        return lots.get_record(kind, record_id) if listed else {"id": record_id}

    return blp.route(f"/{path}", endpoint=f"create_{kind}", methods=["POST"])(create_view)


for _path, _schema in LISTED.items():
    _list_view(_path, API_KINDS[_path], _schema)
for _path in (*LISTED, *CREATE_ONLY):
    _create_view(_path, API_KINDS[_path])


# --- lots ------------------------------------------------------------------------------------------------------------

@blp.route("/product-lots/<int:lot_id>")
@blp.response(200, ProductLotDetailSchema)
def get_product_lot(lot_id: int):
    """Get a product lot with its inspections, stock, shipments, genealogy, instances and status history."""
    return lots.product_lot_page(lot_id)


@blp.route("/material-lots/<int:lot_id>")
@blp.response(200, MaterialLotDetailSchema)
def get_material_lot(lot_id: int):
    """Get a material lot with its inspections and status history."""
    lot, inspections, history = lots.material_lot_page(lot_id)
    return {"lot": lot, "inspections": inspections, "history": history}


@blp.route("/product-lots/<int:lot_id>/status", methods=["POST"])
@blp.arguments(StatusChangeSchema)
@blp.response(200, ProductLotSchema)
def set_product_lot_status(args: dict, lot_id: int):
    """Change a product lot's status with a reason (400 no reason, 403 not allowed, 409 forbidden move)."""
    return lots.set_status("product", lot_id, args["status"], args["reason"], api_user())


@blp.route("/material-lots/<int:lot_id>/status", methods=["POST"])
@blp.arguments(StatusChangeSchema)
@blp.response(200, MaterialLotSchema)
def set_material_lot_status(args: dict, lot_id: int):
    """Change a material lot's status with a reason (400 no reason, 403 not allowed, 409 forbidden move)."""
    return lots.set_status("material", lot_id, args["status"], args["reason"], api_user())


@blp.route("/product-lots/<int:lot_id>/release-checks")
@blp.response(200, ReleaseReportSchema)
def release_checks(lot_id: int):
    """Check a product lot against every release condition and list the ones it fails."""
    return lots.release_checks(lots.get_lot("product", lot_id), plant_time.utcnow().date()).as_dict()


@blp.route("/product-lots/<int:lot_id>/release", methods=["POST"])
@blp.response(201, InstanceStartedSchema)
@blp.alt_response(409, description="the lot does not await release, or its release is already running")
def start_release(lot_id: int):
    """Start the lot release procedure for a lot in quarantine or on hold."""
    return lots.start_release(lot_id, api_user())


# --- trace -----------------------------------------------------------------------------------------------------------

@blp.route("/trace")
@blp.arguments(TraceQuerySchema, location="query")
@blp.response(200, TraceReportSchema)
def trace_lots(query: dict):
    """Trace what a lot number, serial, document no. or UDI names, forward to consignees and backward to suppliers."""
    return trace.trace_report(query["q"])


EXPORTS: dict[str, tuple[str, Callable[[trace.TraceReport], bytes]]] = {
    "xlsx": (XLSX_MIMETYPE, trace.export_xlsx),
    "csv": ("text/csv", lambda report: trace.export_csv(report).encode("utf-8-sig")),  # BOM: Excel reads UTF-8
}


@blp.route("/trace/export")
@blp.arguments(TraceExportQuerySchema, location="query")
@blp.response(200, description="the trace report as an .xlsx workbook or a .csv file")
def export_trace(query: dict):
    """Download a trace report as XLSX (one sheet per table) or CSV."""
    mimetype, render = EXPORTS[query["format"]]
    content = render(trace.trace_report(query["q"]))
    name = secure_filename(query["q"]) or "report"
    return send_file(io.BytesIO(content), mimetype=mimetype, as_attachment=True,
                     download_name=f"trace-{name}.{query['format']}")


# --- imports ---------------------------------------------------------------------------------------------------------

@blp.route("/imports", methods=["POST"])
@blp.arguments(ImportUploadSchema, location="files")
@blp.response(201, ImportJobSchema)
@blp.alt_response(422, schema=ImportRefusedSchema, description="some rows are invalid; nothing was imported")
def import_file(args: dict):
    """Import a CSV/XLSX file of one kind, all rows or none; answers when the import has finished."""
    upload = args["file"]
    job = imports.start_import(args["kind"], upload.filename or "", upload.read(), api_user())
    status = imports.job_status(imports.run_import(job.id).id)
    if status["status"] != "succeeded":
        raise ImportRefused(RowErrorSchema(many=True).dump(status["errors"]), status["error_count"], status["message"])
    return status


@blp.route("/imports/<int:job_id>")
@blp.response(200, ImportJobSchema)
def get_import(job_id: int):
    """Get an import job: status, rows imported, and every refused row's line, column and reason."""
    return imports.job_status(job_id)

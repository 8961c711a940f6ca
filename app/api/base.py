"""The base of the API's marshmallow schemas, and the one error body every API error answers with."""
from __future__ import annotations

import marshmallow
from flask import Request
from marshmallow import INCLUDE, fields, validate
from webargs.flaskparser import FlaskParser
from webargs.multidictproxy import MultiDictProxy
from werkzeug.datastructures import CombinedMultiDict

from app.edge import INT_MAX, INT_MIN


def _bound(field: fields.Field) -> None:
    """Give an integer field the integer column's range (documented as minimum/maximum in the OpenAPI), inside
    lists and dict values too; a narrower Range of its own still applies."""
    if isinstance(field, fields.Integer):
        ranges = [v for v in field.validators if isinstance(v, validate.Range)]
        if not any(r.min is not None and r.min >= INT_MIN and r.max is not None and r.max <= INT_MAX
                   for r in ranges):
            field.validators.append(validate.Range(min=INT_MIN, max=INT_MAX))
    elif isinstance(field, fields.List):
        _bound(field.inner)
    elif isinstance(field, fields.Dict) and field.value_field is not None:
        _bound(field.value_field)


class Schema(marshmallow.Schema):
    """Every API schema: integer fields hold what an integer column holds, so 2**63 answers 422, not a server
    error from the database."""

    def on_bind_field(self, field_name: str, field_obj: fields.Field) -> None:
        _bound(field_obj)


def refused_rows(rows: str) -> fields.Raw:
    """The `errors` of a refused file upload: its row errors, or the request's field errors when the file (or
    another field) was missing or malformed."""
    return fields.Raw(metadata={
        "description": f"{rows}; or, when the request itself is refused, {{location: {{field: [message]}}}}",
        "anyOf": [{"type": "array", "items": {"type": "object"}}, {"type": "object"}]})


class ErrorSchema(Schema):
    """The body of every API error (4xx and 5xx)."""

    class Meta:
        unknown = INCLUDE

    error = fields.Str(required=True, metadata={"description": "the error's name: NotFound, FormInvalid, "
                                                               "Unprocessable Entity, ...", "example": "NotFound"})
    message = fields.Str(required=True, metadata={"description": "what went wrong, for a person (in the caller's "
                                                                 "language)"})
    errors = fields.Raw(metadata={
        "description": "per field, its messages: {location: {field: [message]}} for a refused request "
                       "(location json, query, form or files), {field: [message]} for a refused form, or the "
                       "list of row errors of a refused import"})
    total_errors = fields.Int(metadata={"description": "a refused import: how many row errors in all"})
    problems = fields.List(fields.Dict(), metadata={
        "description": "an invalid diagram or form definition: each problem's message, element_id, line and "
                       "severity"})
    process = fields.Str(metadata={"description": "409 ProcessIdTaken: the process id the diagram would replace"})
    confirm = fields.Str(metadata={"description": "409 ProcessIdTaken: the parameter that confirms it (replace)"})


class FormAndFilesParser(FlaskParser):
    """Read a multipart upload's form fields with its files (`arguments(..., location="files")`): one schema, and
    one multipart/form-data request body in the OpenAPI (flask-smorest documents only one of two `arguments` on
    form and files)."""

    def load_files(self, req: Request, schema: marshmallow.Schema) -> MultiDictProxy:
        return self._makeproxy(CombinedMultiDict([req.form, req.files]), schema)

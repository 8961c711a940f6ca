"""Refuse at the edge what the database cannot hold, before a route or a query sees it.

Every integer column is a PostgreSQL `integer` and no text column takes a NUL character or an unpaired UTF-16
surrogate; such values would otherwise reach a query and fail there as a server error. One mechanism per way in:

- URL parts: the `int` converter of every route only matches ids the column can hold (other numbers: 404).
- Query and form integers read with `request.args.get(name, type=int)`: out of range counts as unreadable, so the
  caller's default applies (as for "abc").
- Text anywhere in the path, the query, a form or a JSON body: NUL or an unpaired surrogate answers 400 (404 for
  the path); so do JSON numbers that are not finite (NaN, Infinity) and JSON nested too deep to read.
- The API's marshmallow integer fields are bounded by app/api/base.py.
"""
from __future__ import annotations

import json
import math
import re
from typing import Any

from flask import Flask, Request, request
from flask_babel import gettext as _
from werkzeug.datastructures import ImmutableMultiDict
from werkzeug.exceptions import BadRequest, NotFound
from werkzeug.routing import IntegerConverter

from app.models.types import INT_MAX, INT_MIN

__all__ = ["API_PREFIX", "INT_MAX", "INT_MIN", "BoundedIntConverter", "init_app", "is_api_request", "storable_text",
           "whole_number"]

API_PREFIX = "/api/"  # the REST API (/api/v1): bearer tokens, no session, no cookie


def is_api_request() -> bool:
    """Tell whether the request is one to the REST API, which keeps no session."""
    return request.path.startswith(API_PREFIX)


# NUL, or a UTF-16 surrogate that is not part of a pair (a str holds pairs as one code point, so any is unpaired).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable_text(value: str) -> bool:
    """Say whether a text column can hold the string: no NUL character and no unpaired surrogate."""
    return _UNSTORABLE.search(value) is None


def whole_number(text: object, minimum: int = INT_MIN, maximum: int = INT_MAX) -> int | None:
    """Read a whole number written in ASCII digits (an optional sign, surrounding blanks) that an integer column
    holds: None for anything else, including digits beyond the column's range or unicode digits like "²"."""
    if isinstance(text, bool):
        return None
    if isinstance(text, int):
        return text if minimum <= text <= maximum else None
    raw = str(text).strip()
    digits = raw[1:] if raw[:1] in "+-" else raw
    if not digits or not digits.isascii() or not digits.isdigit() or len(digits.lstrip("0")) > 10:
        return None
    number = int(raw)
    return number if minimum <= number <= maximum else None


class BoundedIntConverter(IntegerConverter):
    """The `int` URL converter, bounded by the integer column: /instances/9223372036854775808 is a 404."""

    def __init__(self, map, fixed_digits: int = 0, min: int | None = None, max: int | None = None,  # noqa: A002
                 signed: bool = False) -> None:
        super().__init__(map, fixed_digits, min=INT_MIN if min is None else min,
                         max=INT_MAX if max is None else max, signed=signed)


def _in_range(value: Any) -> bool:
    return not isinstance(value, int) or isinstance(value, bool) or INT_MIN <= value <= INT_MAX


class BoundedMultiDict(ImmutableMultiDict):
    """Query and form values: `get(name, type=int)` treats a number no integer column holds like any other
    unreadable value (the default, None unless given)."""

    def get(self, key, default=None, type=None):  # noqa: A002 - werkzeug's signature
        value = super().get(key, default, type)
        if type is int and value is not default and not _in_range(value):
            return default
        return value

    def getlist(self, key, type=None):  # noqa: A002
        values = super().getlist(key, type)
        if type is int:
            return [value for value in values if _in_range(value)]
        return values


def _unreadable(where: str, name: str) -> BadRequest:
    err = BadRequest(_("Text may not contain NUL characters or unpaired surrogates (%(where)s: %(name)s).",
                       where=where, name=name))
    err.data = {"messages": {where: {name: [_("Text may not contain NUL characters or unpaired surrogates.")]}}}
    return err


def _check_pairs(where: str, pairs) -> None:
    for key, value in pairs:
        if not storable_text(key):
            raise _unreadable(where, repr(key))
        if isinstance(value, str) and not storable_text(value):
            raise _unreadable(where, key)


class EdgeRequest(Request):
    """Flask's request with bounded integer readings and a form refused when it holds unstorable text (checked
    when a form is first read, so a route that raises its upload limit first still does)."""

    parameter_storage_class = BoundedMultiDict

    def _load_form_data(self) -> None:
        super()._load_form_data()
        try:
            _check_pairs("form", self.form.items(multi=True))
            _check_pairs("files", ((key, upload.filename or "") for key, upload in self.files.items(multi=True)))
        except BadRequest:
            # Nobody who catches the error may read the refused values afterwards.
            self.__dict__["form"] = self.parameter_storage_class()
            self.__dict__["files"] = self.parameter_storage_class()
            raise


def _json_problem(document: Any) -> str | None:
    """Return the JSON path of the first value no column can hold (unstorable text, a non-finite number)."""
    stack: list[tuple[str, Any]] = [("", document)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            if not storable_text(value):
                return path or "(body)"
        elif isinstance(value, float):
            if not math.isfinite(value):
                return path or "(body)"
        elif isinstance(value, dict):
            for key, item in value.items():
                if not storable_text(key):
                    return f"{path}.{key!r}".lstrip(".")
                stack.append((f"{path}.{key}".lstrip("."), item))
        elif isinstance(value, list):
            stack.extend((f"{path}.{index}".lstrip("."), item) for index, item in enumerate(value))
    return None


def _check_request() -> None:
    if not storable_text(request.path):
        raise NotFound()
    _check_pairs("query", request.args.items(multi=True))
    if request.is_json:
        try:
            document = json.loads(request.get_data(cache=True))
        except RecursionError as err:
            raise BadRequest(_("The JSON body is nested too deeply.")) from err
        except ValueError:
            return  # not JSON at all: the route's parser answers that
        problem = _json_problem(document)
        if problem is not None:
            err = BadRequest(_("A JSON value cannot be stored (NUL character, unpaired surrogate or a number "
                               "that is not finite) at %(path)s.", path=problem))
            err.data = {"messages": {"json": {problem: [_("This value cannot be stored.")]}}}
            raise err


def init_app(app: Flask) -> None:
    """Install the converter, the request class and the check; before any route is registered (the converter
    is looked up when a rule is added)."""
    app.url_map.converters["int"] = BoundedIntConverter
    app.request_class = EdgeRequest
    app.before_request(_check_request)

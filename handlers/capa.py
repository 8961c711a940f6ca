"""capa.*: service-task handlers of the CAPA procedure."""
from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate

from app.services.lots import lots
from app.services.procedures import capa
from handlers.base import HandlerContext, HandlerError


class LinkSourceParams(Schema):
    source = fields.Str(required=True, validate=validate.OneOf(capa.SOURCE_TYPES))
    reference = fields.Str(required=True, validate=validate.Length(min=1, max=120),
                           metadata={"description": "inspection id, lot number, recall instance id, supplier code, "
                                                    "or a complaint / audit finding reference"})
    lots = fields.Raw(load_default=list, metadata={"description": "affected product lots (list or comma-separated)"})


def link_source(ctx: HandlerContext, params: dict[str, Any]) -> dict[str, Any]:
    """Resolve the CAPA's source record and link it and the affected lots to the instance (role subject)."""
    try:
        source = capa.link_source(ctx.instance, params["source"], params["reference"],
                                  lots.split_list(params["lots"]))
    except LookupError as err:
        raise HandlerError(str(err)) from err
    return source.as_dict()

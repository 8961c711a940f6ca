"""The /api/v1 condition endpoints: a gateway posts a batch of sensor readings (checked like a logger file, all or
nothing, then excursion detection), reads a sensor's readings back, and reads an excursion. Thin: parse, call a
service, answer."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask_smorest import Blueprint
from marshmallow import fields, validate

from app.api.auth import api_user, authenticate_request
from app.api.base import Schema
from app.api.lot_schemas import ImportRefusedSchema
from app.exceptions import ValidationFailed
from app.services.lots import conditions

blp = Blueprint("conditions_api", __name__, url_prefix="/api/v1",
                description="Storage and transport conditions: sensor readings from gateways, excursions")
blp.before_request(authenticate_request)


class ReadingInSchema(Schema):
    timestamp = fields.Raw(required=True, metadata={
        "description": "ISO 8601 with a zone (2026-12-01T08:05:00+08:00, ...Z) or without one (plant time)",
        "example": "2026-12-01T08:05:00+08:00"})
    sensor = fields.Raw(required=True, metadata={"description": "the sensor's code", "example": "T1"})
    value = fields.Raw(required=True, metadata={"example": 5.4})
    unit = fields.Raw(required=True, metadata={"description": "C, F or %RH", "example": "C"})


class BatchSchema(Schema):
    # Items are checked by the import rules (each bad one is a row error with its position), not here.
    readings = fields.List(fields.Dict(), required=True, validate=validate.Length(min=1),
                           metadata={"description": "the readings, each {timestamp, sensor, value, unit}; "
                                                    f"at most {conditions.MAX_API_READINGS:,} per batch",
                                     "items": ReadingInSchema})


class BatchResultSchema(Schema):
    imported = fields.Int(metadata={"description": "readings stored"})
    skipped = fields.Int(metadata={"description": "readings already stored with the same value"})
    excursions = fields.List(fields.Int(), metadata={"description": "ids of the excursions detected or extended"})


class ReadingsQuerySchema(Schema):
    start = fields.AwareDateTime(load_default=None, default_timezone=UTC,
                                 metadata={"description": "from (default: 24 hours before end)"})
    end = fields.AwareDateTime(load_default=None, default_timezone=UTC,
                               metadata={"description": "to (default: the latest reading)"})


class ReadingOutSchema(Schema):
    at = fields.DateTime()
    value = fields.Float(metadata={"description": "°C or %RH"})


class SensorReadingsSchema(Schema):
    sensor = fields.Str()
    quantity = fields.Str()
    unit = fields.Str()
    readings = fields.List(fields.Nested(ReadingOutSchema))


class ExcursionSchema(Schema):
    id = fields.Int()
    sensor = fields.Str(attribute="sensor.code")
    product = fields.Str(attribute="product.name")
    quantity = fields.Str()
    started_at = fields.DateTime()
    ended_at = fields.DateTime()
    minutes_out = fields.Float()
    minutes_unknown = fields.Float(metadata={"description": "data gaps counted as out of range"})
    max_value = fields.Function(lambda e: e.max_value / 100)
    min_value = fields.Function(lambda e: e.min_value / 100)
    mkt = fields.Function(lambda e: None if e.mkt is None else e.mkt / 100,
                          metadata={"description": "mean kinetic temperature of the excursion, °C"})
    mkt_30_days = fields.Function(lambda e: None if e.mkt_30_days is None else e.mkt_30_days / 100)
    lots = fields.List(fields.Str())
    status = fields.Str()
    decisions = fields.List(fields.Dict())
    instance_id = fields.Int(allow_none=True)


MAX_SPAN = timedelta(days=366)


@blp.route("/readings", methods=["POST"])
@blp.arguments(BatchSchema)
@blp.response(201, BatchResultSchema)
@blp.alt_response(422, schema=ImportRefusedSchema, description="some readings are invalid; none was stored")
def post_readings(body: dict):
    """Store a batch of readings from a gateway.

    Checked as a logger file is (known sensor, unit fitting the sensor, °F converted to °C, physical bounds,
    clock order per sensor, duplicates: identical ones are skipped and counted, different ones refused); one bad
    reading refuses the batch, each error naming its position (line = 1-based index). Excursion detection runs
    for the sensors and time the batch covers."""
    return conditions.receive_batch(body["readings"], api_user())


@blp.route("/sensors/<int:sensor_id>/readings")
@blp.arguments(ReadingsQuerySchema, location="query")
@blp.response(200, SensorReadingsSchema)
def sensor_readings(query: dict, sensor_id: int):
    """Read a sensor's readings over a period (at most a year)."""
    sensor = conditions.get_sensor(sensor_id)
    end = query["end"]
    if end is None:
        latest = conditions.latest_reading(sensor_id)
        end = conditions.from_seconds(latest) if latest is not None else datetime.now(UTC)
    start = query["start"] or end - timedelta(days=1)
    if not start <= end or end - start > MAX_SPAN:
        raise ValidationFailed("Give a start before the end, at most a year apart.")
    return conditions.readings_view(sensor, start, end)


@blp.route("/excursions/<int:excursion_id>")
@blp.response(200, ExcursionSchema)
def get_excursion(excursion_id: int):
    """Get an excursion: its sensor, product, period, minutes out of range, extremes, MKT, lots and decisions."""
    return conditions.get_excursion(excursion_id)

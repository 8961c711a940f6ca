"""Storage and transport conditions: sensors and their readings (imported from data-logger files with the import rule
set, or posted in batches by gateways), excursion detection after every import for the sensors and time it touched,
and what an excursion sets off: an excursion record, the lots at its place on hold, and a deviation assessment.

The rule itself (what counts as out of range, gaps, tolerance windows, mean kinetic temperature) is
`excursion_rule`; this module reads and writes the database around it.
"""
from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from flask import current_app
from flask_babel import gettext
from sqlalchemy import and_, func, select
from sqlalchemy.orm import joinedload

from app.exceptions import Conflict, ImportRefused, NotFound, ValidationFailed
from app.extensions import db
from app.models import (
    InstanceLot,
    ProcessInstance,
    Product,
    ProductLot,
    Shipment,
    ShipmentOrder,
    StockLevel,
    User,
)
from app.models.conditions import EXCURSION_STATUSES, PLACES, QUANTITIES, READING_EPOCH, Excursion, Reading, Sensor
from app.models.instances import OPEN_STATES
from app.models.types import utcnow
from app.services.evidence import audit
from app.services.lots import excursion_rule, import_rules, lots
from app.services.lots.import_rules import Column, ImportState, Kind, Row, RowProblem, choice, integer, text
from app.services.workflow import instances, plant_time, processes, registry, titles
from app.services.workflow.transaction import atomic

DEVIATION_PROCESS = "deviation"
HOLD_ROLE = "hold"
MAX_API_READINGS = 50_000  # per JSON batch; larger uploads go through the file import
# Physical bounds a logger can report, per quantity, in hundredths (a reading beyond is a broken probe or a typo).
PHYSICAL_BOUNDS = {"temperature": (-20000, 20000), "humidity": (0, 10000)}
UNITS = {"C": "temperature", "F": "temperature", "%RH": "humidity"}
UNIT_ALIASES = {"c": "C", "°c": "C", "degc": "C", "celsius": "C", "℃": "C", "f": "F", "°f": "F", "degf": "F",
                "fahrenheit": "F", "℉": "F", "%rh": "%RH", "rh": "%RH", "%": "%RH", "rh%": "%RH", "% rh": "%RH"}
QUANTITY_UNIT = {"temperature": "°C", "humidity": "%RH"}
MONTH = timedelta(days=30)
EXCURSION_TITLE = titles.register("Excursion #{id}: {sensor} {place}, {product}",
                                  "偏离 #{id}：{sensor} {place}，{product}")
__all__ = ["EXCURSION_STATUSES", "READING_EPOCH"]  # read by the pages


def window_hours() -> int:
    """The excursion window: out-of-range minutes are added up within any stretch of this many hours."""
    return int(current_app.config["EXCURSION_WINDOW_HOURS"])


def to_seconds(moment: datetime) -> int:
    return int((moment - READING_EPOCH).total_seconds())


def from_seconds(seconds: int) -> datetime:
    return READING_EPOCH + timedelta(seconds=seconds)


# --- cell parsers ----------------------------------------------------------------------------------------------------

_STAMP = re.compile(r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})[T ]+(\d{1,2}):(\d{2})(?::(\d{2})(?:[.,]\d+)?)?\s*"
                    r"(Z|UTC|[+-]\d{2}:?\d{2})?$", re.IGNORECASE)


def parse_timestamp(value: Any) -> datetime:
    """A logger's time stamp: ISO 8601 (or with / and a space), with a zone (Z, +08:00) or in plant time; a
    spreadsheet date-time cell is plant time. Return an aware datetime (the zone is applied when checked)."""
    if isinstance(value, date) and not isinstance(value, datetime):  # a spreadsheet cell at midnight
        value = datetime.combine(value, datetime.min.time())
    if isinstance(value, datetime):
        if not 2000 <= value.year <= 2067:
            raise RowProblem("bad_timestamp")
        return value
    text_value = str(value).strip()
    if len(text_value) >= 16 and text_value[4] == "-" and text_value[10] in "T ":  # ISO 8601: the fast path
        try:
            stamp = datetime.fromisoformat(text_value)
        except ValueError:
            stamp = None
        if stamp is not None:
            if not 2000 <= stamp.year <= 2067:
                raise RowProblem("bad_timestamp")
            return stamp
    match = _STAMP.match(text_value)
    if not match:
        raise RowProblem("bad_timestamp")
    year, month, day, hour, minute, second, zone = match.groups()
    tz = None
    if zone:
        zone = zone.upper()
        if zone in ("Z", "UTC"):
            tz = UTC
        else:
            sign = 1 if zone[0] == "+" else -1
            digits = zone[1:].replace(":", "")
            tz = timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
    if not 2000 <= int(year) <= 2067:  # what the readings table's seconds since 2000 hold
        raise RowProblem("bad_timestamp")
    try:
        return datetime(int(year), int(month), int(day), int(hour), int(minute), int(second or 0), tzinfo=tz)
    except ValueError:
        raise RowProblem("bad_timestamp") from None


def parse_value(value: Any) -> float:
    if isinstance(value, bool):
        raise RowProblem("bad_number")
    try:
        number = float(value) if isinstance(value, int | float) else float(str(value).strip().replace(",", "."))
    except ValueError:
        raise RowProblem("bad_number") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise RowProblem("bad_number")
    return number


def parse_unit(value: Any) -> str:
    unit = str(value).strip()
    unit = unit if unit in UNITS else UNIT_ALIASES.get(unit.lower())
    if unit is None:
        raise RowProblem("bad_unit")
    return unit


# --- the kinds: sensors and readings ---------------------------------------------------------------------------------

def _sensors(state: ImportState, rows: list[Row]) -> None:
    taken = set(state.session.scalars(select(Sensor.code).where(Sensor.code.in_([r.values["code"] for r in rows]))))
    documents = {r.values.get("shipment_document_no") for r in rows if r.values.get("shipment_document_no")}
    shipments = dict(state.session.execute(select(Shipment.document_no, func.min(Shipment.id)).where(
        Shipment.document_no.in_(documents)).group_by(Shipment.document_no)).all()) if documents else {}
    records = []
    for row in rows:
        values = dict(row.values)
        if values["code"] in taken:
            state.refuse(row.line, "code", "exists", value=values["code"])
            continue
        document = values.pop("shipment_document_no", None)
        if values["place"] == "shipment":
            if not document:
                state.refuse(row.line, "shipment_document_no", "shipment_required")
                continue
            if document not in shipments:
                state.refuse(row.line, "shipment_document_no", "unknown_shipment", value=document)
                continue
            values["shipment_id"] = shipments[document]
        elif not values.get("location"):
            state.refuse(row.line, "location", "location_required")
            continue
        records.append({k: v for k, v in values.items() if v is not None})
    state.write(Sensor, records)


def _sensor_map(state: ImportState, codes: Iterable[str]) -> dict[str, Sensor]:
    known: dict[str, Sensor] = state.context.setdefault("sensors", {})
    missing = [code for code in set(codes) if code not in known]
    if missing:
        for sensor in state.session.scalars(select(Sensor).where(Sensor.code.in_(missing))):
            known[sensor.code] = sensor
    return known


def _centi(value: float, unit: str) -> int:
    celsius = (value - 32) * 5 / 9 if unit == "F" else value
    return round(celsius * 100)


def _readings(state: ImportState, rows: list[Row]) -> None:
    """Check a chunk of readings (sensor, unit, bounds, clock order, duplicates) and write the new ones."""
    sensors = _sensor_map(state, (r.values["sensor"] for r in rows))
    zone = state.context.get("zone") or state.context.setdefault("zone", plant_time.zone())
    last: dict[int, tuple[int, int, int]] = state.context.setdefault("last", {})  # sensor -> (at, value, line)
    spans: dict[int, list[int]] = state.context.setdefault("spans", {})
    checked: list[tuple[Row, Sensor, int, int]] = []
    for row in rows:
        values = row.values
        sensor = sensors.get(values["sensor"])
        if sensor is None:
            state.refuse(row.line, "sensor", "unknown_sensor", value=values["sensor"])
            continue
        unit = values["unit"]
        if UNITS[unit] != sensor.quantity:
            state.refuse(row.line, "unit", "unit_mismatch", unit=unit, sensor=sensor.code, quantity=sensor.quantity)
            continue
        value = _centi(values["value"], unit)
        low, high = PHYSICAL_BOUNDS[sensor.quantity]
        if not low <= value <= high:
            state.refuse(row.line, "value", "physical_bounds", value=values["value"],
                         unit="°C" if unit == "C" else unit, low=f"{low // 100} {QUANTITY_UNIT[sensor.quantity]}",
                         high=f"{high // 100} {QUANTITY_UNIT[sensor.quantity]}")
            continue
        stamp = values["timestamp"]
        stamp = stamp.replace(tzinfo=zone) if stamp.tzinfo is None else stamp
        at = to_seconds(stamp)
        if not 0 <= at < 2**31:  # 2000-01-01 in a zone east of UTC
            state.refuse(row.line, "timestamp", "bad_timestamp")
            continue
        previous = last.get(sensor.id)
        if previous is not None:
            if at < previous[0]:
                state.refuse(row.line, "timestamp", "clock_order", sensor=sensor.code, other=previous[2])
                continue
            if at == previous[0]:
                if value == previous[1]:
                    state.skipped += 1
                else:
                    state.refuse(row.line, "value", "conflicting_duplicate", sensor=sensor.code,
                                 existing=previous[1] / 100, value=value / 100, where=f"line {previous[2]}")
                continue
        last[sensor.id] = (at, value, row.line)
        checked.append((row, sensor, at, value))
    # Against what is stored: one range query per sensor of the chunk.
    by_sensor: dict[int, list[int]] = defaultdict(list)
    for _row, sensor, at, _value in checked:
        by_sensor[sensor.id].append(at)
    stored: dict[tuple[int, int], int] = {}
    for sensor_id, times in by_sensor.items():
        for at, value in state.session.execute(select(Reading.at, Reading.value).where(
                Reading.sensor_id == sensor_id, Reading.at.between(min(times), max(times)))):
            stored[(sensor_id, at)] = value
    records = []
    for row, sensor, at, value in checked:
        existing = stored.get((sensor.id, at))
        if existing is not None:
            if existing == value:
                state.skipped += 1
            else:
                state.refuse(row.line, "value", "conflicting_duplicate", sensor=sensor.code, existing=existing / 100,
                             value=value / 100, where="stored")
            continue
        span = spans.setdefault(sensor.id, [at, at])
        span[0], span[1] = min(span[0], at), max(span[1], at)
        records.append({"sensor_id": sensor.id, "at": at, "value": value})
    if records and not state.error_count:  # Core executemany: the ORM's bulk path costs a third of the import
        state.session.connection().execute(Reading.__table__.insert(), records)
        state.written += len(records)


def _detect_after_import(state: ImportState) -> None:
    """After all rows landed: look for excursions in the time each touched sensor got readings for."""
    found = []
    for sensor_id, (low, high) in sorted(state.context.get("spans", {}).items()):
        sensor = state.session.get(Sensor, sensor_id)
        found += detect_for_sensor(sensor, low, high, state.actor, state.now)
    state.context["excursions"] = [excursion.id for excursion in found]


SENSOR_KIND = Kind("sensors", "Sensors (data loggers)", "传感器（温湿度记录仪）", (
    Column("code", text(60), True, "Sensor", "传感器"),
    Column("name", text(200), False, "Name", "名称", ""),
    Column("quantity", choice(QUANTITIES), False, "Measures", "测量", "temperature"),
    Column("place", choice(PLACES), False, "Place", "位置类型", "warehouse"),
    Column("location", text(120), False, "Location or vehicle (as in stock)", "库位或车辆（同库存）", ""),
    Column("shipment_document_no", text(60), False, "Shipment document no.", "发货单据号"),
    Column("interval_seconds", integer(1), False, "Logging interval (seconds)", "记录间隔（秒）", 300),
), ("code",), _sensors)

READING_KIND = Kind("readings", "Sensor readings", "温湿度读数", (
    Column("timestamp", parse_timestamp, True, "Timestamp", "时间"),
    Column("sensor", text(60), True, "Sensor", "传感器"),
    Column("value", parse_value, True, "Value", "数值"),
    Column("unit", parse_unit, True, "Unit", "单位"),
), (), _readings, _detect_after_import)

import_rules.KINDS.setdefault(SENSOR_KIND.name, SENSOR_KIND)
import_rules.KINDS.setdefault(READING_KIND.name, READING_KIND)


# --- the JSON batch of a gateway -------------------------------------------------------------------------------------

def receive_batch(items: list[dict], actor: User, now: datetime | None = None) -> dict[str, Any]:
    """Store a gateway's readings with the file import's rules (one transaction: all or none) and detect."""
    instances.require_worker(actor)
    now = now or utcnow()
    if not isinstance(items, list) or not items:
        raise ValidationFailed("Send a non-empty list of readings.")
    state = ImportState(db.session, actor, now)
    if len(items) > MAX_API_READINGS:
        state.refuse(0, "", "too_many_rows", limit=MAX_API_READINGS)
        raise ImportRefused(state.errors, state.error_count)
    with atomic():
        rows = []
        for index, item in enumerate(items, start=1):
            if not isinstance(item, dict):
                item = {}
            unknown = sorted(set(item) - {c.name for c in READING_KIND.columns})
            for name in unknown:
                state.refuse(index, str(name)[:60], "unknown_column")
            rows.append((index, item))
        import_rules.import_rows(READING_KIND, rows, state)
        audit.record(actor, "readings.received", "sensor_batch", "", at=now,
                     new={"readings": state.written, "skipped": state.skipped,
                          "excursions": state.context.get("excursions", [])})
    return {"imported": state.written, "skipped": state.skipped, "excursions": state.context.get("excursions", [])}


# --- detection -------------------------------------------------------------------------------------------------------

def _range(product: Product, quantity: str) -> tuple[int | None, int | None]:
    low, high = ((product.storage_temp_min, product.storage_temp_max) if quantity == "temperature"
                 else (product.storage_rh_min, product.storage_rh_max))
    return (None if low is None else round(low * 100), None if high is None else round(high * 100))


def lots_at(sensor: Sensor) -> list[tuple[ProductLot, str, int]]:
    """The product lots a sensor watches now: stock at its location (warehouse, vehicle) or its shipment's lot,
    with where they are and how many."""
    if sensor.place == "shipment":
        shipment = sensor.shipment
        return [(shipment.product_lot, f"shipment {shipment.document_no or shipment.id}", shipment.quantity)] \
            if shipment else []
    rows = db.session.execute(select(ProductLot, StockLevel.location, StockLevel.quantity)
                              .join(StockLevel, StockLevel.product_lot_id == ProductLot.id)
                              .options(joinedload(ProductLot.product))
                              .where(StockLevel.location == sensor.location, StockLevel.quantity > 0)
                              .order_by(ProductLot.lot_number))
    return [tuple(row) for row in rows]


def lots_shipped_from(location: str, since: date) -> list[tuple[ProductLot, str, int, date]]:
    """The product lots that left a location by FEFO shipment orders on or after `since` (a day): they were there
    before, so an excursion there from that day on concerns them too. With where they went, how many, and the
    first day one of them left."""
    if not location:
        return []
    shipped: dict[str, int] = defaultdict(int)
    first: dict[str, date] = {}
    customers: dict[str, set[str]] = defaultdict(set)
    for order in db.session.scalars(select(ShipmentOrder).options(joinedload(ShipmentOrder.customer))
                                    .where(ShipmentOrder.shipped_on >= since).order_by(ShipmentOrder.shipped_on)):
        for line in order.lines or []:
            if line.get("location") == location and line.get("lot_number"):
                number = line["lot_number"]
                shipped[number] += int(line.get("quantity") or 0)
                first.setdefault(number, order.shipped_on)
                customers[number].add(order.customer.name)
    if not shipped:
        return []
    found = db.session.scalars(select(ProductLot).options(joinedload(ProductLot.product))
                               .where(ProductLot.lot_number.in_(list(shipped))).order_by(ProductLot.lot_number))
    return [(lot, f"{location}, shipped {first[lot.lot_number]:%Y-%m-%d} to "
                  f"{', '.join(sorted(customers[lot.lot_number]))}", shipped[lot.lot_number], first[lot.lot_number])
            for lot in found]


def series(sensor_id: int, start: int, end: int) -> tuple[list[int], list[int]]:
    """A sensor's readings from start to end (seconds, inclusive), oldest first: two lists, times and values."""
    # A month of one-minute readings is 43,200 rows: read as the driver's plain tuples (an eighth of the time
    # SQLAlchemy's result rows take), on the session's connection and transaction, by the (sensor, at) key.
    connection = db.session.connection()
    mark = "?" if connection.dialect.paramstyle == "qmark" else "%s"
    cursor = connection.connection.cursor()
    try:
        cursor.execute(f"SELECT at, value FROM readings WHERE sensor_id = {mark} AND at BETWEEN {mark} AND {mark} "
                       "ORDER BY at", (int(sensor_id), int(start), int(end)))
        rows = cursor.fetchall()
    finally:
        cursor.close()
    return [row[0] for row in rows], [row[1] for row in rows]


HOLD_STATUSES = ("quarantine", "released", "hold", "recalled")  # a lot in these can be put on hold


def detect_for_sensor(sensor: Sensor, low: int, high: int, actor: User, now: datetime) -> list[Excursion]:
    """Apply the excursion rule to the readings around [low, high] for every product stored at the sensor's place,
    inside the caller's transaction: record (or extend) excursions, hold the lots, start the assessments."""
    window = window_hours() * 3600
    # The lots there now, and those shipped from there since the readings began: a lot shipped after an
    # excursion started went through it (by day: a lot shipped on the excursion's first day counts).
    by_product: dict[int, list[tuple[ProductLot, str, int, date | None]]] = defaultdict(list)
    for lot, where, quantity in lots_at(sensor):
        by_product[lot.product_id].append((lot, where, quantity, None))
    here = {lot.id for entries in by_product.values() for lot, *_rest in entries}
    if sensor.place != "shipment":
        since = plant_time.local_date(from_seconds(low - window), plant_time.zone())
        for lot, where, quantity, left_on in lots_shipped_from(sensor.location, since):
            if lot.id not in here:
                by_product[lot.product_id].append((lot, where, quantity, left_on))
    times, values = series(sensor.id, low - window - sensor.interval_seconds, high + window + sensor.interval_seconds)
    if not times:
        return []
    touched = []
    for product_id, candidates in by_product.items():
        product = candidates[0][0].product
        range_low, range_high = _range(product, sensor.quantity)
        if range_low is None and range_high is None:
            continue
        rule = excursion_rule.Rule(range_low, range_high, product.excursion_tolerance_minutes * 60, window,
                                   sensor.interval_seconds)
        closed_until = db.session.scalar(select(func.max(Excursion.ended_at)).where(
            Excursion.sensor_id == sensor.id, Excursion.product_id == product_id, Excursion.status != "open"))
        after = to_seconds(closed_until) if closed_until else None
        for found in excursion_rule.detect(times, values, rule, after=after):
            began = plant_time.local_date(from_seconds(found.start), plant_time.zone())  # shipping days are the plant's
            held = [(lot, where, quantity) for lot, where, quantity, left_on in candidates
                    if left_on is None or left_on >= began]
            touched.append(_record(sensor, product, rule, found, times, values, held, actor, now))
    return touched


def _stats(sensor: Sensor, found: excursion_rule.Found, times: list[int], values: list[int]) -> dict[str, Any]:
    inside = [(t, v) for t, v in zip(times, values, strict=True) if found.start <= t < found.end] or \
        [(t, v) for t, v in zip(times, values, strict=True) if t <= found.start][-1:]
    period_times, period_values = [t for t, _ in inside], [v for _, v in inside]
    stats = {"max_value": max(period_values), "min_value": min(period_values), "mkt": None, "mkt_30_days": None}
    if sensor.quantity == "temperature":
        stats["mkt"] = round(excursion_rule.mean_kinetic_temperature(period_times, period_values,
                                                                     sensor.interval_seconds) * 100)
        month_times, month_values = series(sensor.id, found.end - int(MONTH.total_seconds()), found.end)
        if month_times:
            stats["mkt_30_days"] = round(excursion_rule.mean_kinetic_temperature(
                month_times, month_values, sensor.interval_seconds) * 100)
    return stats


def _record(sensor: Sensor, product: Product, rule: excursion_rule.Rule, found: excursion_rule.Found,
            times: list[int], values: list[int], held: list[tuple[ProductLot, str, int]], actor: User,
            now: datetime) -> Excursion:
    start, end = from_seconds(found.start), from_seconds(found.end)
    window = timedelta(seconds=rule.window_seconds)
    excursion = db.session.scalar(select(Excursion).where(
        Excursion.sensor_id == sensor.id, Excursion.product_id == product.id, Excursion.status == "open",
        Excursion.started_at < end + window, Excursion.ended_at > start - window).order_by(Excursion.id).limit(1))
    figures = {"started_at": start, "ended_at": end, "minutes_out": round(found.seconds_out / 60, 1),
               "minutes_unknown": round(found.seconds_unknown / 60, 1), **_stats(sensor, found, times, values)}
    if excursion is None:
        excursion = Excursion(sensor_id=sensor.id, product_id=product.id, quantity=sensor.quantity,
                              range_min=rule.low, range_max=rule.high, tolerance_minutes=rule.tolerance_seconds // 60,
                              window_hours=rule.window_seconds // 3600, detected_at=now, lots=[], **figures)
        excursion.sensor, excursion.product = sensor, product
        db.session.add(excursion)
        db.session.flush()
        audit.record(actor, "excursion.detected", "excursion", excursion.id, at=now, new=_summary(excursion))
    else:
        if found.start > to_seconds(excursion.started_at):  # a batch may hold only the excursion's later part
            figures["started_at"] = excursion.started_at
            figures["minutes_out"] = max(figures["minutes_out"], excursion.minutes_out)
        changed = {k: v for k, v in figures.items() if getattr(excursion, k) != v}
        if not changed:
            return excursion
        for name, value in changed.items():
            setattr(excursion, name, value)
        audit.record(actor, "excursion.updated", "excursion", excursion.id, at=now, new=_summary(excursion))
    _hold_and_assess(excursion, held, actor, now)
    return excursion


def _summary(excursion: Excursion) -> dict[str, Any]:
    unit = QUANTITY_UNIT[excursion.quantity]

    def shown(value: int | None) -> str:
        return "" if value is None else f"{value / 100:.1f} {unit}"

    zone = plant_time.zone()
    sensor = excursion.sensor
    return {
        "excursion_id": excursion.id, "sensor": sensor.code, "sensor_name": sensor.name, "place": sensor.place,
        "location": sensor.location if sensor.place != "shipment" else
        f"shipment {sensor.shipment.document_no if sensor.shipment else ''}",
        "product": excursion.product.name, "gtin": excursion.product.gtin or "", "quantity": excursion.quantity,
        "range": f"{shown(excursion.range_min) or '-'} .. {shown(excursion.range_max) or '-'}",
        "started_at": plant_time.format_moment(excursion.started_at, zone),
        "ended_at": plant_time.format_moment(excursion.ended_at, zone),
        "minutes_out": excursion.minutes_out, "minutes_unknown": excursion.minutes_unknown,
        "tolerance_minutes": excursion.tolerance_minutes, "window_hours": excursion.window_hours,
        "max": shown(excursion.max_value), "min": shown(excursion.min_value), "mkt": shown(excursion.mkt),
        "mkt_30_days": shown(excursion.mkt_30_days),
    }


def _hold_and_assess(excursion: Excursion, held: list[tuple[ProductLot, str, int]], actor: User,
                     now: datetime) -> None:
    """Start the deviation assessment for a new excursion (if deployed) and hold its lots for it."""
    summary = _summary(excursion)
    holdable = [(lot, where, quantity) for lot, where, quantity in held if lot.status in HOLD_STATUSES]
    if excursion.instance_id is None:
        if not processes.is_deployed(DEVIATION_PROCESS):
            excursion.lots = sorted({*excursion.lots, *(lot.lot_number for lot, _w, _q in holdable)})
            excursion.note = "The deviation procedure is not deployed: no assessment was started, no lot held."
            return
        title = EXCURSION_TITLE.format(id=excursion.id, sensor=summary["sensor"], place=summary["location"],
                                       product=summary["product"])
        data = {"title": title, "excursion_id": excursion.id, "excursion": summary,
                "lots": [{"lot_number": lot.lot_number, "product": lot.product.name, "location": where,
                          "quantity": quantity, "status": lot.status} for lot, where, quantity in holdable],
                "decisions": [{"lot_number": lot.lot_number} for lot, _w, _q in holdable]}
        instance = instances.start_instance(DEVIATION_PROCESS, actor, data, title=title, now=now)
        excursion.instance_id = instance.id
    instance = db.session.get(ProcessInstance, excursion.instance_id)
    if instance is None or instance.status not in OPEN_STATES:  # its assessment was cancelled: hold nothing more
        return
    new = [lot for lot, _w, _q in holdable if lot.lot_number not in excursion.lots]
    reason = (f"{excursion.quantity.capitalize()} excursion #{excursion.id} at {summary['location']}: "
              f"{summary['minutes_out']} min outside {summary['range']} from {summary['started_at']} to "
              f"{summary['ended_at']} (max {summary['max']}, min {summary['min']}"
              f"{', MKT ' + summary['mkt'] if summary['mkt'] else ''})")
    for lot in db.session.scalars(select(ProductLot).where(ProductLot.id.in_([lot.id for lot in new]))
                                  .with_for_update()):
        lots.hold_lot(excursion.instance_id, lot, reason, HOLD_ROLE, now)
    excursion.lots = sorted({*excursion.lots, *(lot.lot_number for lot in new)})


# --- the assessment's outcome ----------------------------------------------------------------------------------------

DECISIONS = ("release", "scrap")


def excursion_of(instance_id: int) -> Excursion:
    excursion = db.session.scalar(select(Excursion).where(Excursion.instance_id == instance_id))
    if excursion is None:
        raise NotFound(gettext("Instance %(id)s assesses no excursion.", id=instance_id))
    return excursion


def held_lot_numbers(instance_id: int) -> list[str]:
    return list(db.session.scalars(select(ProductLot.lot_number).join(
        InstanceLot, InstanceLot.product_lot_id == ProductLot.id).where(
        InstanceLot.instance_id == instance_id, InstanceLot.role == HOLD_ROLE).order_by(ProductLot.lot_number)))


def decision_problems(instance_id: int, decisions: list[dict], lang: str = "en") -> list[str]:
    """What is wrong with a per-lot decision table: every held lot needs exactly one decision, release or scrap."""
    zh = lang == "zh-CN"
    held = held_lot_numbers(instance_id)
    given: dict[str, int] = defaultdict(int)
    problems = []
    for row in decisions if isinstance(decisions, list) else []:
        number = str((row or {}).get("lot_number") or "").strip()
        given[number] += 1
        if number and number not in held:
            problems.append(f"批次 {number} 未因此偏差暂停。" if zh else f"Lot {number} is not held by this deviation.")
        elif number and (row or {}).get("decision") not in DECISIONS:
            problems.append(f"请为批次 {number} 选择放行或报废。" if zh else
                            f"Choose release or scrap for lot {number}.")
    missing = [n for n in held if not given.get(n)]
    if missing:
        problems.append(("缺少以下批次的决定：" if zh else "Decide on every held lot; missing: ") + ", ".join(missing))
    repeated = sorted(n for n, count in given.items() if n and count > 1)
    if repeated:
        problems.append(("批次重复：" if zh else "One decision per lot; repeated: ") + ", ".join(repeated))
    return problems


def check_decisions(instance: ProcessInstance | None, data: dict, lang: str) -> dict[str, list[str]]:
    """Form check `deviation_decisions`."""
    if instance is None:
        return {}
    problems = decision_problems(instance.id, data.get("decisions") or [], lang)
    return {"decisions": problems} if problems else {}


def apply_decisions(instance: ProcessInstance, decisions: list[dict], reason: str, now: datetime) -> dict[str, Any]:
    """Carry out the signed decisions inside the step's transaction: lift this deviation's hold on the lots
    released (each returns to its status before the hold unless another procedure still holds it), scrap the
    others, and close the excursion."""
    if problems := decision_problems(instance.id, decisions):
        raise Conflict(" ".join(problems))
    excursion = excursion_of(instance.id)
    by_number = {row["lot_number"]: row["decision"] for row in decisions}
    results = []
    for lot in db.session.scalars(select(ProductLot).where(ProductLot.lot_number.in_(list(by_number)))
                                  .order_by(ProductLot.lot_number).with_for_update()):
        text_reason = f"{reason} (excursion #{excursion.id}: {by_number[lot.lot_number]})"
        if by_number[lot.lot_number] == "release":
            results.append({**lots.lift_hold(instance.id, lot, text_reason, HOLD_ROLE, now), "decision": "release"})
            continue
        link = db.session.scalar(select(InstanceLot).where(
            InstanceLot.instance_id == instance.id, InstanceLot.product_lot_id == lot.id,
            InstanceLot.role == HOLD_ROLE))
        if link is not None:
            link.lifted_at = now
        lots.change_status(lot, "scrapped", text_reason, None, now, instance_id=instance.id)
        results.append({"lot": lot.lot_number, "status": "scrapped", "outcome": "scrapped", "decision": "scrap"})
    kinds = set(by_number.values())
    excursion.status = "released" if kinds == {"release"} else "scrapped" if kinds == {"scrap"} else "closed"
    excursion.decisions = [{"lot_number": n, "decision": d} for n, d in sorted(by_number.items())]
    excursion.closed_at = now
    audit.record(None, "excursion.closed", "excursion", excursion.id, instance_id=instance.id, at=now,
                 new={"status": excursion.status, "decisions": excursion.decisions}, reason=reason)
    return {"excursion_id": excursion.id, "status": excursion.status, "lots": results,
            "released": [r["lot"] for r in results if r["decision"] == "release"],
            "scrapped": [r["lot"] for r in results if r["decision"] == "scrap"]}


# --- pages -----------------------------------------------------------------------------------------------------------

@dataclass
class Band:
    low: float | None
    high: float | None
    products: list[str] = field(default_factory=list)


def bands(sensor: Sensor) -> list[Band]:
    """The allowed ranges at a sensor's place: one band per distinct product range, with the products."""
    found: dict[tuple, Band] = {}
    for lot, _where, _quantity in lots_at(sensor):
        low, high = _range(lot.product, sensor.quantity)
        if low is None and high is None:
            continue
        band = found.setdefault((low, high), Band(None if low is None else low / 100,
                                                  None if high is None else high / 100))
        if lot.product.name not in band.products:
            band.products.append(lot.product.name)
    return list(found.values())


def list_sensors() -> list[tuple[Sensor, int | None, int]]:
    """Every sensor with its latest reading time (seconds) and its open excursions."""
    latest = dict(db.session.execute(select(Reading.sensor_id, func.max(Reading.at)).group_by(Reading.sensor_id)).all())
    open_counts = dict(db.session.execute(select(Excursion.sensor_id, func.count()).where(Excursion.status == "open")
                                          .group_by(Excursion.sensor_id)).all())
    return [(sensor, latest.get(sensor.id), open_counts.get(sensor.id, 0))
            for sensor in db.session.scalars(select(Sensor).order_by(Sensor.code))]


def get_sensor(sensor_id: int) -> Sensor:
    sensor = db.session.get(Sensor, sensor_id)
    if sensor is None:
        raise NotFound(gettext("No sensor %(id)s.", id=sensor_id))
    return sensor


def latest_reading(sensor_id: int) -> int | None:
    return db.session.scalar(select(func.max(Reading.at)).where(Reading.sensor_id == sensor_id))


@dataclass
class Chart:
    """Readings of one sensor over a period, reduced to at most `points` min/max buckets for drawing."""

    start: datetime
    end: datetime
    quantity: str
    count: int
    buckets: list[tuple[int, int, int]]  # (seconds, min, max) per bucket
    bands: list[Band]
    excursions: list[Excursion]


def chart(sensor: Sensor, start: datetime, end: datetime, points: int = 600) -> Chart:
    """The readings of a period for the chart: min and max per bucket, so a month of one-minute readings draws
    as 600 columns without losing a peak."""
    first, last = to_seconds(start), to_seconds(end)
    times, values = series(sensor.id, first, last)
    width = max((last - first) / points, 1)
    buckets: dict[int, list[int]] = {}
    for at, value in zip(times, values, strict=True):
        index = int((at - first) / width)
        bucket = buckets.get(index)
        if bucket is None:
            buckets[index] = [at, value, value]
        else:
            bucket[1] = min(bucket[1], value)
            bucket[2] = max(bucket[2], value)
    excursions = list(db.session.scalars(select(Excursion).where(
        Excursion.sensor_id == sensor.id, Excursion.started_at < end, Excursion.ended_at > start)
        .order_by(Excursion.started_at)))
    return Chart(start, end, sensor.quantity, len(times), [tuple(b) for _, b in sorted(buckets.items())],
                 bands(sensor), excursions)


def list_excursions(status: str = "", sensor_id: int | None = None, page: int = 1, per_page: int = 20):
    query = select(Excursion).options(joinedload(Excursion.sensor), joinedload(Excursion.product))
    if status:
        query = query.where(Excursion.status == status)
    if sensor_id:
        query = query.where(Excursion.sensor_id == sensor_id)
    return db.paginate(query.order_by(Excursion.started_at.desc(), Excursion.id.desc()), page=page,
                       per_page=per_page, error_out=False)


def get_excursion(excursion_id: int) -> Excursion:
    excursion = db.session.get(Excursion, excursion_id)
    if excursion is None:
        raise NotFound(gettext("No excursion %(id)s.", id=excursion_id))
    return excursion


def excursion_instance(excursion: Excursion) -> ProcessInstance | None:
    return db.session.get(ProcessInstance, excursion.instance_id) if excursion.instance_id else None


def excursions_for_lot(lot_id: int) -> list[tuple[Excursion, InstanceLot]]:
    """The excursions that held a product lot, with the hold (when it was lifted)."""
    return list(db.session.execute(
        select(Excursion, InstanceLot).join(InstanceLot, and_(InstanceLot.instance_id == Excursion.instance_id,
                                                              InstanceLot.role == HOLD_ROLE))
        .options(joinedload(Excursion.sensor))
        .where(InstanceLot.product_lot_id == lot_id).order_by(Excursion.started_at.desc())).all())


def holds_for_lot(lot_id: int) -> list[tuple[InstanceLot, ProcessInstance]]:
    """Every hold on a product lot by any procedure (this and others), newest first: the stack of holds."""
    return list(db.session.execute(
        select(InstanceLot, ProcessInstance).join(ProcessInstance, ProcessInstance.id == InstanceLot.instance_id)
        .where(InstanceLot.product_lot_id == lot_id, InstanceLot.role.in_(lots.HOLD_ROLES))
        .order_by(InstanceLot.id.desc())).all())


registry.register_form_checks({"deviation_decisions": check_decisions})


def product_lot(number: str) -> ProductLot:
    lot = db.session.scalar(select(ProductLot).where(ProductLot.lot_number == number))
    if lot is None:
        raise NotFound(gettext("No product lot %(id)s.", id=number))
    return lot


def lot_ids(numbers: list[str]) -> dict[str, int]:
    """Product lot ids by lot number (for links)."""
    return dict(db.session.execute(select(ProductLot.lot_number, ProductLot.id).where(
        ProductLot.lot_number.in_(list(numbers)))).all()) if numbers else {}


def readings_view(sensor: Sensor, start: datetime, end: datetime) -> dict[str, Any]:
    """A sensor's readings over a period, in °C or %RH."""
    first, last = max(to_seconds(start), 0), min(to_seconds(end), 2**31 - 1)
    times, values = series(sensor.id, first, last) if first <= last else ([], [])
    return {"sensor": sensor.code, "quantity": sensor.quantity, "unit": QUANTITY_UNIT[sensor.quantity],
            "readings": [{"at": from_seconds(at), "value": value / 100}
                         for at, value in zip(times, values, strict=True)]}


def sensors_for_lot(lot_id: int) -> list[Sensor]:
    """The sensors watching a product lot now: at the locations holding its stock, and with its shipments."""
    locations = select(StockLevel.location).where(StockLevel.product_lot_id == lot_id, StockLevel.quantity > 0)
    shipments = select(Shipment.id).where(Shipment.product_lot_id == lot_id)
    return list(db.session.scalars(select(Sensor).where(
        ((Sensor.place != "shipment") & Sensor.location.in_(locations))
        | ((Sensor.place == "shipment") & Sensor.shipment_id.in_(shipments))).order_by(Sensor.code)))


def product_lot_by_id(lot_id: int) -> ProductLot:
    lot = db.session.get(ProductLot, lot_id)
    if lot is None:
        raise NotFound(gettext("No product lot %(id)s.", id=lot_id))
    return lot

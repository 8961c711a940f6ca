"""Condition pages: sensors with a chart of their readings and the allowed band (an SVG drawn on the server, so it
shows without JavaScript and prints), the excursion list and an excursion's detail."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from flask import Blueprint, abort, render_template, request
from flask_babel import gettext as _
from flask_login import login_required

from app.exceptions import NotFound
from app.services.lots import conditions
from app.services.workflow import plant_time

bp = Blueprint("conditions", __name__, url_prefix="/conditions")

PERIODS = (1, 7, 30)  # days a sensor chart can show
WIDTH, HEIGHT = 900, 300
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 12, 36


@dataclass
class Svg:
    """What the chart template draws, in SVG user units."""

    width: int
    height: int
    line: str  # polyline points, the max of each bucket and then the min back (a filled envelope)
    band: list[dict]  # allowed bands: y, height, label
    limits: list[dict]  # limit lines: y, label
    excursions: list[dict]  # x, width, label
    y_ticks: list[dict]
    x_ticks: list[dict]
    unit: str
    empty: bool
    summary: str  # the chart said in words (for screen readers and as its title)
    data: dict  # the same figures for the Chart.js drawing (times in ms since 1970, values in the unit)


def _period_end(value: str | None, default: datetime) -> datetime:
    if not value:
        return default
    try:
        day = date.fromisoformat(value)
    except ValueError:
        abort(400)
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=plant_time.zone()).astimezone(UTC)


def draw(chart: conditions.Chart) -> Svg:
    """Scale a chart's buckets, bands and excursions into the SVG's box."""
    unit = conditions.QUANTITY_UNIT[chart.quantity]
    values = [v / 100 for _at, low, high in chart.buckets for v in (low, high)]
    limits = [limit for band in chart.bands for limit in (band.low, band.high) if limit is not None]
    low, high = min(values + limits, default=0.0), max(values + limits, default=1.0)
    pad = max((high - low) * 0.1, 0.5)
    low, high = low - pad, high + pad
    first, last = chart.start.timestamp(), chart.end.timestamp()
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(moment: float) -> float:
        return round(LEFT + (moment - first) / max(last - first, 1) * plot_w, 1)

    def y(value: float) -> float:
        return round(TOP + (high - value) / (high - low) * plot_h, 1)

    epoch = conditions.READING_EPOCH.timestamp()
    upper = [f"{x(epoch + at)},{y(top / 100)}" for at, _bottom, top in chart.buckets]
    lower = [f"{x(epoch + at)},{y(bottom / 100)}" for at, bottom, _top in reversed(chart.buckets)]
    bands, lines = [], []
    for band in chart.bands:
        top_y, bottom_y = y(band.high if band.high is not None else high), y(band.low if band.low is not None else low)
        bands.append({"y": top_y, "height": round(bottom_y - top_y, 1), "label": ", ".join(band.products)})
        for limit in (band.low, band.high):
            if limit is not None:
                lines.append({"y": y(limit), "label": f"{limit:g} {unit}"})
    marks = []
    for excursion in chart.excursions:
        start = max(excursion.started_at.timestamp(), first)
        end = min(excursion.ended_at.timestamp(), last)
        marks.append({"x": x(start), "width": max(round(x(end) - x(start), 1), 2), "id": excursion.id,
                      "label": _("Excursion #%(id)s", id=excursion.id)})
    step = (high - low) / 5
    y_ticks = [{"y": y(low + step * i), "label": f"{low + step * i:.1f}"} for i in range(6)]
    zone = plant_time.zone()
    span = last - first
    x_ticks = []
    for i in range(7):
        moment = datetime.fromtimestamp(first + span * i / 6, UTC).astimezone(zone)
        x_ticks.append({"x": x(first + span * i / 6),
                        "label": moment.strftime("%m-%d %H:%M" if span <= 2 * 86400 else "%m-%d")})
    if values:
        summary = _("%(count)s readings from %(start)s to %(end)s, lowest %(low)s %(unit)s, highest %(high)s %(unit)s.",
                    count=chart.count, start=plant_time.format_moment(chart.start, zone),
                    end=plant_time.format_moment(chart.end, zone), low=f"{min(values):.1f}", high=f"{max(values):.1f}",
                    unit=unit)
    else:
        summary = _("No readings in this period.")
    data = {"points": [[round((epoch + at) * 1000), bottom / 100, top / 100] for at, bottom, top in chart.buckets],
            "bands": [{"low": band.low, "high": band.high, "label": ", ".join(band.products)} for band in chart.bands],
            "excursions": [{"start": round(e.started_at.timestamp() * 1000),
                            "end": round(e.ended_at.timestamp() * 1000), "label": mark["label"]}
                           for e, mark in zip(chart.excursions, marks, strict=True)],
            "start": round(first * 1000), "end": round(last * 1000), "low": low, "high": high, "unit": unit,
            "zone": str(zone), "labels": {"max": _("Highest"), "min": _("Lowest"), "band": _("Allowed range")}}
    return Svg(WIDTH, HEIGHT, " ".join(upper + lower), bands, lines, marks, y_ticks, x_ticks, unit, not values,
               summary, data)


@bp.get("/")
@login_required
def index():
    return render_template("conditions/index.html", sensors=conditions.list_sensors(),
                           open_excursions=conditions.list_excursions("open", per_page=10),
                           epoch=conditions.READING_EPOCH, timedelta=timedelta)


@bp.get("/sensors/<int:sensor_id>")
@login_required
def sensor(sensor_id: int):
    try:
        found = conditions.get_sensor(sensor_id)
    except NotFound:
        abort(404)
    days = request.args.get("days", 7, type=int)
    if days not in PERIODS:
        days = 7
    latest = conditions.latest_reading(sensor_id)
    default_end = conditions.from_seconds(latest + 1) if latest is not None else plant_time.utcnow()
    end = _period_end(request.args.get("end"), default_end)
    chart = conditions.chart(found, end - timedelta(days=days), end)
    return render_template("conditions/sensor.html", sensor=found, chart=chart, svg=draw(chart), days=days,
                           periods=PERIODS, end=end, lots_here=conditions.lots_at(found),
                           excursions=conditions.list_excursions(sensor_id=sensor_id, per_page=50).items,
                           previous_end=(end - timedelta(days=days)).astimezone(plant_time.zone()).date()
                           - timedelta(days=1),
                           next_end=(end + timedelta(days=days)).astimezone(plant_time.zone()).date()
                           - timedelta(days=1))


MAX_LOT_CHARTS = 6


@bp.get("/lots/<int:lot_id>")
@login_required
def lot(lot_id: int):
    """A product lot's conditions: a chart per sensor watching it now (stock locations, shipments) over the last
    7 days of each sensor's readings, and the excursions that held it."""
    try:
        found = conditions.product_lot_by_id(lot_id)
    except NotFound:
        abort(404)
    charts = []
    sensors = conditions.sensors_for_lot(lot_id)
    for sensor_found in sensors[:MAX_LOT_CHARTS]:
        latest = conditions.latest_reading(sensor_found.id)
        end = conditions.from_seconds(latest + 1) if latest is not None else plant_time.utcnow()
        charts.append((sensor_found, draw(conditions.chart(sensor_found, end - timedelta(days=7), end))))
    return render_template("conditions/lot.html", lot=found, charts=charts, more=len(sensors) - len(charts),
                           excursions=conditions.excursions_for_lot(lot_id))


@bp.get("/excursions")
@login_required
def excursions():
    status = request.args.get("status", "")
    if status not in ("", *conditions.EXCURSION_STATUSES):
        status = ""
    page = conditions.list_excursions(status, page=max(request.args.get("page", 1, type=int), 1))
    return render_template("conditions/excursions.html", page=page, status=status,
                           statuses=conditions.EXCURSION_STATUSES)


@bp.get("/excursions/<int:excursion_id>")
@login_required
def excursion(excursion_id: int):
    try:
        found = conditions.get_excursion(excursion_id)
    except NotFound:
        abort(404)
    margin = max((found.ended_at - found.started_at) / 2, timedelta(hours=2))
    chart = conditions.chart(found.sensor, found.started_at - margin, found.ended_at + margin)
    return render_template("conditions/excursion.html", excursion=found, svg=draw(chart), chart=chart,
                           instance=conditions.excursion_instance(found), unit=conditions.QUANTITY_UNIT[found.quantity],
                           lot_ids=conditions.lot_ids(found.lots),
                           decided={row["lot_number"]: row["decision"] for row in found.decisions or []})

"""The quality dashboard: tiles over a period (recalls, notification deadlines, undelivered notices, CAPA aging and
overdue actions, change controls by risk, supplier returns) and of the moment (lots, overdue steps by group). Each
tile has a chart (Chart.js, fed by a JSON block) and the same figures as a table, whose counts link to the rows
they count."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, current_app, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext
from flask_login import login_required

from app.exceptions import ValidationFailed
from app.services import users
from app.services.procedures import dashboards
from app.web.common import ui_lang
from app.web.lots import value_label

bp = Blueprint("dashboard", __name__, url_prefix="/dashboard")

CLASS_LABELS = {"I": lazy_gettext("Class I"), "II": lazy_gettext("Class II"), "III": lazy_gettext("Class III"),
                "unassessed": lazy_gettext("Not yet classified")}
STATUS_LABELS = {"running": lazy_gettext("running"), "incident": lazy_gettext("incident"),
                 "completed": lazy_gettext("completed"), "cancelled": lazy_gettext("cancelled")}
DEADLINE_LABELS = {"met": lazy_gettext("met"), "met_late": lazy_gettext("met late"),
                   "overdue": lazy_gettext("overdue"), "pending": lazy_gettext("pending")}
NOTICE_LABELS = {"no_email": lazy_gettext("no e-mail address"), "queued": lazy_gettext("e-mail queued"),
                 "retrying": lazy_gettext("mail server not reached yet, retrying"),
                 "failed": lazy_gettext("e-mail failed")}
AGE_LABELS = {"0-30": lazy_gettext("0 to 30 days"), "31-60": lazy_gettext("31 to 60 days"),
              "61-90": lazy_gettext("61 to 90 days"), "90+": lazy_gettext("more than 90 days")}
RISK_LABELS = {"high": lazy_gettext("high"), "medium": lazy_gettext("medium"), "low": lazy_gettext("low"),
               "unassessed": lazy_gettext("not yet assessed")}
FIGURE_TITLES = {
    "recalls": lazy_gettext("Recalls by class and status"),
    "deadlines": lazy_gettext("Recall notification deadlines"),
    "undelivered": lazy_gettext("Recall notices not delivered"),
    "capa_aging": lazy_gettext("Open CAPAs by age"),
    "capa_overdue": lazy_gettext("Overdue CAPA actions"),
    "changes": lazy_gettext("Open change controls by risk"),
    "supplier_returns": lazy_gettext("Open supplier returns"),
    "overdue_steps": lazy_gettext("Overdue steps by group"),
}
COLORS = {"I": "#b02a37", "II": "#fd7e14", "III": "#ffc107", "unassessed": "#6c757d", "running": "#0d6efd",
          "incident": "#dc3545", "completed": "#198754", "cancelled": "#6c757d", "met": "#198754",
          "met_late": "#ffc107", "overdue": "#dc3545", "pending": "#0d6efd", "high": "#dc3545", "medium": "#fd7e14",
          "low": "#198754"}


@dataclass
class Cell:
    count: int
    href: str | None = None  # the rows it counts


@dataclass
class Tile:
    """One tile: its headline, a chart (labels and series) and the same figures as a table."""

    id: str
    title: str
    scope: str  # what the figures cover: the period, or now
    empty: str  # said instead of chart and table when there is nothing to count
    headline: str = ""
    columns: list[str] = field(default_factory=list)
    rows: list[tuple[str, list[Cell]]] = field(default_factory=list)  # row label, one cell per column
    chart_type: str = "bar"
    stacked: bool = False
    series: list[tuple[str, str, list[int]]] = field(default_factory=list)  # label, colour, one value per row
    links: list[tuple[str, str, int]] = field(default_factory=list)  # more figures below the table: text, href, n
    total: int = 0
    note_column: str = ""  # a last column of text per row (the deadlines' met rate)
    notes: list[str] = field(default_factory=list)

    def chart(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.chart_type, "stacked": self.stacked, "labels": [r[0] for r in self.rows],
                "datasets": [{"label": label, "backgroundColor": colour, "data": data}
                             for label, colour, data in self.series]}


@bp.url_defaults
def keep_figure(endpoint: str, values: dict) -> None:
    # The shared pagination macro passes only the query string; the figure lives in the path.
    if endpoint == "dashboard.rows" and "figure" not in values and "figure" in (request.view_args or {}):
        values["figure"] = request.view_args["figure"]


def _rows_href(figure: str, key: tuple[str, ...], period: dashboards.Period) -> str:
    args = period.as_args() if dashboards.figure_uses_period(figure) else {}
    return url_for("dashboard.rows", figure=figure, key=list(key), **args)


def _single_tile(tile: Tile, figure: str, counts: dict[str, int], keys: tuple[str, ...] | list[str],
                 labels: dict[str, Any], period: dashboards.Period, series_label: str) -> Tile:
    """A tile of one count per key (a row each), in the keys' order, rows with nothing left out."""
    tile.columns = [str(series_label)]
    shown = [key for key in keys if counts.get(key)]
    tile.rows = [(str(labels.get(key, key)), [Cell(counts[key], _rows_href(figure, (key,), period))])
                 for key in shown]
    tile.series = [(str(series_label), "#0d6efd", [counts[key] for key in shown])]
    tile.total = sum(counts.values())
    tile.headline = str(tile.total)
    return tile


def stock_expiry_tile(board: dashboards.QualityDashboard, now: str) -> Tile:
    """Near-expiry and expired stock per warehouse (lots), each count linking to the stock list so filtered."""
    tile = Tile("stock_expiry", _("Near-expiry and expired stock by warehouse"), now,
                _("No stock expires within %(days)s days, none is expired.", days=board.near_expiry_days),
                stacked=True)
    rows = board.stock_expiry
    tile.columns = [_("Expiring within %(days)s days", days=board.near_expiry_days), _("Expired")]
    tile.note_column = _("Units (near expiry / expired)")

    def href(code: str, which: str) -> str:
        return url_for("stock.index", warehouse=code, expiry=which)

    tile.rows = [(f"{row.code} {row.name}".strip() if row.code else _("no warehouse"),
                  [Cell(row.near_lots, href(row.code, "near") if row.near_lots else None),
                   Cell(row.expired_lots, href(row.code, "expired") if row.expired_lots else None)]) for row in rows]
    tile.notes = [f"{row.near_quantity} / {row.expired_quantity}" for row in rows]
    tile.series = [(_("Expiring within %(days)s days", days=board.near_expiry_days), "#ffc107",
                    [row.near_lots for row in rows]), (_("Expired"), "#212529", [row.expired_lots for row in rows])]
    tile.total = sum(row.near_lots + row.expired_lots for row in rows)
    tile.headline = str(sum(row.expired_lots for row in rows))
    tile.links = [(_("All stock by warehouse and location"), url_for("stock.index"), -1)]
    return tile


def build_tiles(board: dashboards.QualityDashboard) -> list[Tile]:
    period = board.period
    in_period = _("started from %(start)s to %(end)s", start=period.start.isoformat(), end=period.end.isoformat())
    now = _("now, whatever the period")
    tiles = []

    recalls = Tile("recalls", str(FIGURE_TITLES["recalls"]), in_period, _("No recall was started in this period."),
                   stacked=True)
    classes = [c for c in dashboards.RECALL_CLASSES if any(board.recall_count(c, s) for s in STATUS_LABELS)]
    recalls.columns = [str(STATUS_LABELS[s]) for s in dashboards.INSTANCE_STATES]
    recalls.rows = [(str(CLASS_LABELS[c]), [Cell(board.recall_count(c, s), _rows_href("recalls", (c, s), period)
                                                 if board.recall_count(c, s) else None)
                                            for s in dashboards.INSTANCE_STATES]) for c in classes]
    recalls.series = [(str(STATUS_LABELS[s]), COLORS[s], [board.recall_count(c, s) for c in classes])
                      for s in dashboards.INSTANCE_STATES]
    recalls.total = board.recalls_total
    recalls.headline = str(recalls.total)
    recalls.links = [(_("Open recalls in detail (consignees, acknowledgments, returns)"), url_for("recalls.index"),
                      -1)]
    tiles.append(recalls)

    deadlines = Tile("deadlines", str(FIGURE_TITLES["deadlines"]), in_period,
                     _("No notification deadline of a recall started in this period."), stacked=True, chart_type="bar")
    zh = ui_lang() == "zh-CN"
    keys = board.deadline_keys
    names = {k: (board.deadline_labels.get(k, (k, k))[1] or board.deadline_labels.get(k, (k, k))[0]) if zh
             else board.deadline_labels.get(k, (k, k))[0] for k in keys}
    deadlines.columns = [str(DEADLINE_LABELS[s]) for s in dashboards.DEADLINE_STATES]
    deadlines.note_column = _("Met on time")
    deadlines.rows = [(names[k], [Cell(board.deadline_count(k, s), _rows_href("deadlines", (k, s), period)
                                       if board.deadline_count(k, s) else None)
                                  for s in dashboards.DEADLINE_STATES]) for k in keys]
    deadlines.series = [(str(DEADLINE_LABELS[s]), COLORS[s], [board.deadline_count(k, s) for k in keys])
                        for s in dashboards.DEADLINE_STATES]
    deadlines.total = sum(board.deadlines.values())
    deadlines.headline = percent(board.met_rate())
    deadlines.notes = [percent(board.met_rate(k)) for k in keys]
    tiles.append(deadlines)

    tiles.append(_single_tile(Tile("undelivered", str(FIGURE_TITLES["undelivered"]), in_period,
                                   _("No notice of the open recalls started in this period is waiting for "
                                     "delivery."), chart_type="doughnut"),
                              "undelivered", board.undelivered, dashboards.NOTICE_STATES, NOTICE_LABELS, period,
                              _("Notices")))

    capa = _single_tile(Tile("capa_aging", str(FIGURE_TITLES["capa_aging"]), in_period,
                             _("No CAPA started in this period is open.")),
                        "capa_aging", board.capa_aging, dashboards.CAPA_AGES, AGE_LABELS, period, _("Open CAPAs"))
    capa.links = [(str(FIGURE_TITLES["capa_overdue"]), _rows_href("capa_overdue", ("overdue",), period),
                   board.capa_overdue)]
    tiles.append(capa)

    tiles.append(_single_tile(Tile("changes", str(FIGURE_TITLES["changes"]), in_period,
                                   _("No change control started in this period is open.")),
                              "changes", board.changes, dashboards.RISKS, RISK_LABELS, period,
                              _("Open change controls")))

    lots_tile = Tile("lots", _("Product lots by status"), now, _("There are no product lots yet."))
    statuses = [s for s in dashboards.PRODUCT_LOT_STATUSES if board.lots_by_status.get(s)]
    lots_tile.columns = [_("Product lots")]
    lots_tile.rows = [(value_label(s), [Cell(board.lots_by_status[s],
                                             url_for("lots.records", kind="product_lots", status=s))])
                      for s in statuses]
    lots_tile.series = [(_("Product lots"), "#0d6efd", [board.lots_by_status[s] for s in statuses])]
    lots_tile.total = sum(board.lots_by_status.values())
    lots_tile.headline = str(lots_tile.total)
    lots_tile.links = [(_("In stock and expiring within %(days)s days", days=board.near_expiry_days),
                        url_for("lots.near_expiry"), board.near_expiry)]
    tiles.append(lots_tile)
    tiles.append(stock_expiry_tile(board, now))

    tiles.append(_single_tile(Tile("supplier_returns", str(FIGURE_TITLES["supplier_returns"]), in_period,
                                   _("No supplier return started in this period is open."), chart_type="doughnut"),
                              "supplier_returns", board.supplier_returns, ("running", "incident"), STATUS_LABELS,
                              period, _("Open supplier returns")))

    tiles.append(supplier_tile(board, now))

    groups = sorted(board.overdue_steps, key=lambda g: (g == "", g))
    known = users.group_labels()
    group_names = {g: group_label(g, known) for g in groups}
    tiles.append(_single_tile(Tile("overdue_steps", str(FIGURE_TITLES["overdue_steps"]), now,
                                   _("No step is overdue.")),
                              "overdue_steps", board.overdue_steps, groups, group_names, period, _("Overdue steps")))
    return tiles


SUPPLIER_BANDS = ("limit", "alert", "good", "no_data")
SUPPLIER_BAND_LABELS = {"good": lazy_gettext("good"), "alert": lazy_gettext("below the alert threshold"),
                        "limit": lazy_gettext("below the limit"), "no_data": lazy_gettext("not enough data")}
SUPPLIER_BAND_COLORS = {"good": "#198754", "alert": "#ffc107", "limit": "#dc3545", "no_data": "#6c757d"}


def supplier_tile(board: dashboards.QualityDashboard, now: str) -> Tile:
    """Suppliers by the band of their latest score, each count linking to the approved-supplier list so filtered."""
    tile = Tile("suppliers", _("Suppliers by quality score"), now, _("There are no suppliers yet."),
                chart_type="doughnut")
    bands = [band for band in SUPPLIER_BANDS if board.supplier_bands.get(band)]
    tile.columns = [_("Suppliers")]
    tile.rows = [(str(SUPPLIER_BAND_LABELS[band]), [Cell(board.supplier_bands[band],
                                                        url_for("suppliers.index", band=band))]) for band in bands]
    tile.series = [(_("Suppliers"), [SUPPLIER_BAND_COLORS[band] for band in bands],  # type: ignore[list-item]
                    [board.supplier_bands[band] for band in bands])]
    tile.total = sum(board.supplier_bands.values())
    flagged = board.supplier_bands.get("alert", 0) + board.supplier_bands.get("limit", 0)
    tile.headline = str(flagged)
    tile.links = [(_("Supplier reviews open"), url_for("suppliers.index"), board.supplier_reviews_open)]
    return tile


def group_label(name: str, known: dict[str, tuple[str, str]]) -> str:
    """A group's label in the page language; "" is a step assigned to a person, not offered to a group."""
    if not name:
        return _("assigned to a person")
    label = known.get(name)
    return name if label is None else (label[1] if ui_lang() == "zh-CN" else label[0])


def percent(rate: float | None) -> str:
    return "—" if rate is None else f"{100 * rate:.1f}%"


@bp.get("/")
@login_required
def index():
    try:
        period = dashboards.parse_period(request.args.get("from"), request.args.get("to"))
    except ValidationFailed as err:
        return render_template("dashboard/index.html", error=err.message, tiles=[], charts=[],
                               period=dashboards.default_period(), values=request.args), 400
    board = dashboards.quality_dashboard(period)
    tiles = build_tiles(board)
    return render_template("dashboard/index.html", tiles=tiles, charts=[t.chart() for t in tiles if t.total],
                           period=period, values=period.as_args(), error=None)


@bp.get("/<figure>")
@login_required
def rows(figure: str):
    kind = dashboards.figure_kind(figure)  # 404 for a figure that does not exist
    try:
        period = dashboards.parse_period(request.args.get("from"), request.args.get("to"))
    except ValidationFailed as err:
        return render_template("dashboard/rows.html", error=err.message, page=None, kind=kind, figure=figure,
                               title=str(FIGURE_TITLES[figure]), key=[], period=None), 400
    key = tuple(request.args.getlist("key"))
    page = dashboards.figure_rows(figure, key, period, page=request.args.get("page", 1, type=int),
                                  per_page=current_app.config["PAGE_SIZE"])
    return render_template("dashboard/rows.html", page=page, kind=kind, figure=figure, error=None,
                           title=str(FIGURE_TITLES[figure]), key=[_key_label(figure, part) for part in key],
                           period=period if dashboards.figure_uses_period(figure) else None)


def _key_label(figure: str, part: str) -> str:
    for labels in (CLASS_LABELS, STATUS_LABELS, DEADLINE_LABELS, NOTICE_LABELS, AGE_LABELS, RISK_LABELS):
        if part in labels:
            return str(labels[part])
    if figure == "overdue_steps":
        return group_label(part, users.group_labels())
    return "" if figure in ("capa_overdue", "deadlines") else part  # the rows name their deadline

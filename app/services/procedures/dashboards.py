"""Dashboard figures. The recall dashboard: open recalls by class, notification deadlines, acknowledgments, quantity
recovered by region. The quality dashboard: one query per figure over a period of plant calendar days (recalls by
class and status, notification deadlines met, undelivered notices, CAPA aging and overdue actions, change controls
open by risk, supplier returns open) and figures of the moment (lots by status and near expiry, overdue steps by
group); each figure's rows, the ones its tiles link to, come from the same conditions as its count."""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import and_, case, func, literal, or_, select

from app.exceptions import NotFound, ValidationFailed
from app.extensions import db
from app.models import (
    Deadline,
    OutboxMessage,
    ProcessDefinition,
    ProcessInstance,
    ProcessVersion,
    ProductLot,
    RecallConsignee,
    Task,
)
from app.models.lots import LOT_STATUSES
from app.models.types import utcnow
from app.services.lots import lots, stock
from app.services.procedures import recalls, supplier_quality
from app.services.workflow import plant_time

CLASSES = ("I", "II", "III")


@dataclass
class RegionRow:
    region: str
    figures: recalls.Figures = field(default_factory=recalls.Figures)

    @property
    def consignees(self) -> int:
        return self.figures.consignees

    @property
    def notified(self) -> int:
        return self.figures.notified

    @property
    def acknowledged(self) -> int:
        return self.figures.acknowledged

    @property
    def quantity_shipped(self) -> int:
        return self.figures.quantity_shipped

    @property
    def quantity_recovered(self) -> int:
        return self.figures.quantity_recovered

    @property
    def ack_rate(self) -> float | None:
        return self.acknowledged / self.notified if self.notified else None

    @property
    def recovered_rate(self) -> float | None:
        return self.figures.share("recovered")


def notice_state(consignee: RecallConsignee) -> dict[str, Any]:
    """How an undelivered notice stands: no_email (post or fax), queued, retrying (the mail server did not take
    it yet; the outbox keeps trying) or failed (refused, or given up: an admin resends it), with the last error."""
    message = consignee.message
    if message is None:
        state = "no_email"
    elif message.status == "failed":
        state = "failed"
    else:
        state = "retrying" if message.attempts else "queued"
    return {"consignee_id": consignee.id, "code": consignee.customer.code, "name": consignee.customer.name,
            "state": state, "attempts": message.attempts if message else 0,
            "error": message.last_error if message else "", "outbox_message_id": message.id if message else None}


@dataclass
class RecallDashboard:
    """The recall tiles over every open recall."""

    open_by_class: dict[str, int] = field(default_factory=dict)  # "I", "II", "III", "unassessed"
    notification: dict[str, int] = field(default_factory=dict)  # pending, overdue, met, met_late
    notified: int = 0
    acknowledged: int = 0
    quantity_shipped: int = 0
    quantity_recovered: int = 0
    regions: list[RegionRow] = field(default_factory=list)
    recalls: list[dict[str, Any]] = field(default_factory=list)
    undelivered: int = 0  # notices of open recalls that have not reached their consignee yet

    @property
    def open_total(self) -> int:
        return sum(self.open_by_class.values())

    @property
    def ack_rate(self) -> float | None:
        return self.acknowledged / self.notified if self.notified else None

    @property
    def recovered_rate(self) -> float | None:
        return self.quantity_recovered / self.quantity_shipped if self.quantity_shipped else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "open_total": self.open_total, "open_by_class": self.open_by_class, "notification": self.notification,
            "notified": self.notified, "acknowledged": self.acknowledged, "ack_rate": self.ack_rate,
            "quantity_shipped": self.quantity_shipped, "quantity_recovered": self.quantity_recovered,
            "recovered_rate": self.recovered_rate,
            "regions": [{"region": r.region, "consignees": r.consignees, "notified": r.notified,
                         "acknowledged": r.acknowledged, "ack_rate": r.ack_rate,
                         "quantity_shipped": r.quantity_shipped, "quantity_recovered": r.quantity_recovered,
                         "recovered_rate": r.recovered_rate} for r in self.regions],
            "recalls": self.recalls, "undelivered": self.undelivered,
        }


def recall_dashboard(now: datetime | None = None) -> RecallDashboard:
    """Sum the open recalls: by class, their consignee-notification deadline, acknowledgments and returns."""
    now = now or utcnow()
    board = RecallDashboard(open_by_class={c: 0 for c in (*CLASSES, "unassessed")},
                            notification={"pending": 0, "overdue": 0, "met": 0, "met_late": 0})
    regions: dict[str, RegionRow] = {}
    for instance in recalls.open_recalls():
        view = recalls.recall_view(instance.id)
        recall_class = (instance.data or {}).get("recall_class")
        board.open_by_class[recall_class if recall_class in CLASSES else "unassessed"] += 1
        notice = next((d for d in view.deadlines if d.key == "consignee_notice"), None)
        if notice is not None:
            board.notification[notice.status(now)] += 1
        for region, figures in view.region_figures.items():  # each recall's own figures, summed over them
            row = regions.setdefault(region, RegionRow(region))
            row.figures += figures
        totals = view.totals
        board.recalls.append({"id": instance.id, "title": instance.title, "status": instance.status,
                              "recall_class": recall_class or "", "consignees": totals["consignees"],
                              "notified": totals["notified"], "acknowledged": totals["acknowledged"],
                              "quantity_shipped": totals["quantity_shipped"],
                              "notification": notice.status(now) if notice else "",
                              "notification_due_at": notice.due_at.isoformat() if notice else None,
                              "undelivered": [notice_state(c) for c in view.undelivered]})
        board.undelivered += len(view.undelivered)
    board.regions = sorted(regions.values(), key=lambda r: r.region)
    board.notified = sum(r.notified for r in board.regions)
    board.acknowledged = sum(r.acknowledged for r in board.regions)
    board.quantity_shipped = sum(r.quantity_shipped for r in board.regions)
    board.quantity_recovered = sum(r.quantity_recovered for r in board.regions)
    return board


# --- the quality dashboard -----------------------------------------------------------------------------------------

DEFAULT_PERIOD_DAYS = 90
LONGEST_PERIOD_DAYS = 3660  # ten years: a wider period is almost certainly a typing mistake
INSTANCE_STATES = ("running", "incident", "completed", "cancelled")
OPEN = ("running", "incident")
RECALL_CLASSES = (*CLASSES, "unassessed")
DEADLINE_STATES = ("met", "met_late", "overdue", "pending")
NOTICE_STATES = ("no_email", "queued", "retrying", "failed")
CAPA_AGES = ("0-30", "31-60", "61-90", "90+")  # days since the CAPA was opened
RISKS = ("high", "medium", "low", "unassessed")  # a change's risk: the highest of its three impact assessments
CAPA_ACTION_STEP = "do_action"
PRODUCT_LOT_STATUSES = tuple(s for s in LOT_STATUSES if s != "returned")  # "returned" is a material lot's


@dataclass(frozen=True)
class Period:
    """Plant calendar days from start to end, both included."""

    start: date
    end: date

    @property
    def bounds(self) -> tuple[datetime, datetime]:
        """The UTC moments it covers: start's midnight (plant time) up to, not including, the midnight after end."""
        zone = plant_time.zone()
        return (datetime.combine(self.start, time(), tzinfo=zone).astimezone(UTC),
                datetime.combine(self.end + timedelta(days=1), time(), tzinfo=zone).astimezone(UTC))

    def as_args(self) -> dict[str, str]:
        return {"from": self.start.isoformat(), "to": self.end.isoformat()}


def default_period(now: datetime | None = None) -> Period:
    """The last DEFAULT_PERIOD_DAYS plant calendar days, today included."""
    today = plant_time.local_date(now or utcnow(), plant_time.zone())
    return Period(today - timedelta(days=DEFAULT_PERIOD_DAYS - 1), today)


ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_period(start: str | None, end: str | None, now: datetime | None = None) -> Period:
    """Read a period from two YYYY-MM-DD texts; an empty one takes the default's. Refuse (400, saying which and
    why) a text that is not a date, an end before the start, and a period longer than ten years."""
    default = default_period(now)
    days: dict[str, date] = {}
    problems = []
    for name, text, fallback in (("from", start, default.start), ("to", end, default.end)):
        text = (text or "").strip()
        try:
            days[name] = date.fromisoformat(text) if ISO_DAY.fullmatch(text) else fallback if not text else None
        except ValueError:
            days[name] = None
        if days[name] is None:
            problems.append(
                _("%(value)s is not a date: enter the first day as YYYY-MM-DD (e.g. 2026-12-01).", value=text[:20])
                if name == "from" else
                _("%(value)s is not a date: enter the last day as YYYY-MM-DD (e.g. 2026-12-31).", value=text[:20]))
    if problems:
        raise ValidationFailed(" ".join(problems))
    if days["to"] < days["from"]:
        raise ValidationFailed(_("The period ends (%(end)s) before it starts (%(start)s).",
                                 start=days["from"].isoformat(), end=days["to"].isoformat()))
    if (days["to"] - days["from"]).days >= LONGEST_PERIOD_DAYS:
        raise ValidationFailed(_("A period is at most ten years long."))
    return Period(days["from"], days["to"])


def _unknown_figure() -> NotFound:
    return NotFound(_("There is no such dashboard figure."))


def _of_procedure(key: str):
    """The instances of one procedure (any version)."""
    return ProcessInstance.version_id.in_(
        select(ProcessVersion.id).join(ProcessDefinition).where(ProcessDefinition.key == key))


def _started_in(period: Period) -> list:
    begin, finish = period.bounds
    return [ProcessInstance.started_at >= begin, ProcessInstance.started_at < finish]


@dataclass(frozen=True)
class FigureSpec:
    """One figure: the rows it counts (an entity and its conditions) and the key(s) it counts them by. The count
    groups by the keys; the figure's list (where a tile links) selects the rows with given keys."""

    entity: Any  # ProcessInstance, Task, Deadline, RecallConsignee
    conditions: Callable[[Period, datetime], list]
    keys: Callable[[datetime], tuple]
    joins: Callable[[Any], Any] = lambda query: query
    uses_period: bool = True

    def counts(self, period: Period, now: datetime) -> dict[tuple[str, ...], int]:
        # The keys are computed in a subquery and grouped by name: PostgreSQL does not see that a CASE in the
        # select list and the same CASE in GROUP BY are one expression when each has its own bound parameters.
        keyed = (self.joins(select(*(key.label(f"k{i}") for i, key in enumerate(self.keys(now))))
                            .select_from(self.entity)).where(*self.conditions(period, now)).subquery())
        columns = list(keyed.c)
        query = select(*columns, func.count()).group_by(*columns)
        return {tuple(str(k) for k in row[:-1]): row[-1] for row in db.session.execute(query)}

    def rows(self, key: tuple[str, ...], period: Period, now: datetime):
        keys = self.keys(now)
        if len(key) != len(keys):
            raise _unknown_figure()
        query = self.joins(select(self.entity)).where(*self.conditions(period, now),
                                                      *(expr == value for expr, value in zip(keys, key, strict=True)))
        return query.order_by(self.entity.id.desc())


def _recall_class(now: datetime):
    value = ProcessInstance.data["recall_class"].as_string()
    return (case((value.in_(CLASSES), value), else_=literal("unassessed")), ProcessInstance.status)


def _deadline_state(now: datetime):
    state = case((and_(Deadline.met_at.is_not(None), Deadline.met_at <= Deadline.due_at), literal("met")),
                 (Deadline.met_at.is_not(None), literal("met_late")),
                 (Deadline.due_at < now, literal("overdue")), else_=literal("pending"))
    return (Deadline.key, state)


def _notice_state(now: datetime):
    return (case((RecallConsignee.outbox_message_id.is_(None), literal("no_email")),
                 (OutboxMessage.status == "failed", literal("failed")),
                 (OutboxMessage.attempts > 0, literal("retrying")), else_=literal("queued")),)


def _capa_age(now: datetime):
    started = ProcessInstance.started_at
    return (case((started > now - timedelta(days=30), literal("0-30")),
                 (started > now - timedelta(days=60), literal("31-60")),
                 (started > now - timedelta(days=90), literal("61-90")), else_=literal("90+")),)


def _change_risk(now: datetime):
    risks = [ProcessInstance.data[name].as_string() for name in ("qa_risk", "ra_risk", "production_risk")]
    return (case((or_(*(r == "high" for r in risks)), literal("high")),
                 (or_(*(r == "medium" for r in risks)), literal("medium")),
                 (or_(*(r == "low" for r in risks)), literal("low")), else_=literal("unassessed")),)


def _overdue_steps(now: datetime) -> list:
    return [Task.state == "ready", Task.kind == "user", Task.due_at.is_not(None), Task.due_at < now]


FIGURES: dict[str, FigureSpec] = {
    # Recalls started in the period, by class (unassessed until the assessment) and instance status.
    "recalls": FigureSpec(ProcessInstance, lambda p, now: [_of_procedure("recall"), *_started_in(p)], _recall_class),
    # The notification deadlines (consignees, regulators) of the recalls started in the period, by key and state.
    "deadlines": FigureSpec(
        Deadline, lambda p, now: [_of_procedure("recall"), *_started_in(p)], _deadline_state,
        joins=lambda q: q.join(ProcessInstance, ProcessInstance.id == Deadline.instance_id)),
    # Notices sent for open recalls started in the period that have not reached their consignee (see delivered()).
    "undelivered": FigureSpec(
        RecallConsignee,
        lambda p, now: [_of_procedure("recall"), *_started_in(p), ProcessInstance.status.in_(OPEN),
                        RecallConsignee.notified_at.is_not(None), RecallConsignee.acknowledged_at.is_(None),
                        or_(RecallConsignee.check_effective.is_(None), RecallConsignee.check_effective.is_(False)),
                        or_(OutboxMessage.id.is_(None), OutboxMessage.status != "sent")],
        _notice_state,
        joins=lambda q: q.join(ProcessInstance, ProcessInstance.id == RecallConsignee.instance_id)
        .outerjoin(OutboxMessage, OutboxMessage.id == RecallConsignee.outbox_message_id)),
    # Open CAPAs started in the period, by days since they were opened.
    "capa_aging": FigureSpec(
        ProcessInstance, lambda p, now: [_of_procedure("capa"), *_started_in(p), ProcessInstance.status.in_(OPEN)],
        _capa_age),
    # CAPA actions past their due date, of CAPAs started in the period.
    "capa_overdue": FigureSpec(
        Task, lambda p, now: [_of_procedure("capa"), *_started_in(p), Task.element_id == CAPA_ACTION_STEP,
                              *_overdue_steps(now)],
        lambda now: (literal("overdue"),),
        joins=lambda q: q.join(ProcessInstance, ProcessInstance.id == Task.instance_id)),
    # Open change controls started in the period, by their highest assessed risk.
    "changes": FigureSpec(
        ProcessInstance,
        lambda p, now: [_of_procedure("change_control"), *_started_in(p), ProcessInstance.status.in_(OPEN)],
        _change_risk),
    # Open supplier returns started in the period, by status (running, or stopped at an incident).
    "supplier_returns": FigureSpec(
        ProcessInstance,
        lambda p, now: [_of_procedure("supplier_return"), *_started_in(p), ProcessInstance.status.in_(OPEN)],
        lambda now: (ProcessInstance.status,)),
    # Every open step past its due time now, by the group it is offered to ("" when it is assigned to a person).
    "overdue_steps": FigureSpec(Task, lambda p, now: _overdue_steps(now),
                                lambda now: (func.coalesce(Task.group_name, literal("")),), uses_period=False),
}


@dataclass
class QualityDashboard:
    period: Period
    now: datetime
    recalls: dict[tuple[str, str], int]  # (class, status) -> count
    deadlines: dict[tuple[str, str], int]  # (deadline key, state) -> count
    deadline_labels: dict[str, tuple[str, str]]  # deadline key -> (English label, Chinese label)
    undelivered: dict[str, int]  # notice state -> count
    capa_aging: dict[str, int]
    capa_overdue: int
    changes: dict[str, int]  # risk -> count
    supplier_returns: dict[str, int]  # status -> count
    overdue_steps: dict[str, int]  # group name ("" = assigned to a person) -> count
    lots_by_status: dict[str, int]
    near_expiry: int
    near_expiry_days: int
    # Suppliers now, by the band of their latest score (good, alert, limit, no_data), and reviews open.
    supplier_bands: dict[str, int] = field(default_factory=dict)
    supplier_reviews_open: int = 0
    # Near-expiry and expired stock now, per warehouse (stock at a location of no warehouse under code "").
    stock_expiry: list[stock.WarehouseExpiry] = field(default_factory=list)

    @property
    def recalls_total(self) -> int:
        return sum(self.recalls.values())

    def recall_count(self, recall_class: str, status: str) -> int:
        return self.recalls.get((recall_class, status), 0)

    def deadline_count(self, key: str, state: str) -> int:
        return self.deadlines.get((key, state), 0)

    @property
    def deadline_keys(self) -> list[str]:
        return sorted({key for key, _ in self.deadlines})

    def deadline_totals(self) -> dict[str, int]:
        return {state: sum(n for (_, s), n in self.deadlines.items() if s == state) for state in DEADLINE_STATES}

    def met_rate(self, key: str | None = None) -> float | None:
        """Met on time out of those decided (met, met late, overdue); pending deadlines are not counted."""
        counts = self.deadline_totals() if key is None else {s: self.deadline_count(key, s) for s in DEADLINE_STATES}
        decided = counts["met"] + counts["met_late"] + counts["overdue"]
        return counts["met"] / decided if decided else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "period": self.period.as_args(),
            "recalls": [{"class": c, "status": s, "count": n} for (c, s), n in sorted(self.recalls.items())],
            "deadlines": [{"key": k, "state": s, "count": n} for (k, s), n in sorted(self.deadlines.items())],
            "deadlines_met_rate": self.met_rate(), "undelivered": self.undelivered, "capa_aging": self.capa_aging,
            "capa_overdue_actions": self.capa_overdue, "changes_open_by_risk": self.changes,
            "supplier_returns_open": self.supplier_returns, "overdue_steps_by_group": self.overdue_steps,
            "lots_by_status": self.lots_by_status, "near_expiry": self.near_expiry,
            "suppliers_by_score": self.supplier_bands, "supplier_reviews_open": self.supplier_reviews_open,
            "stock_expiry_by_warehouse": [row.as_dict() for row in self.stock_expiry],
        }


def _single(counts: dict[tuple[str, ...], int]) -> dict[str, int]:
    return {key[0]: n for key, n in counts.items()}


def quality_dashboard(period: Period, now: datetime | None = None) -> QualityDashboard:
    """Every figure of the quality dashboard: one grouped count per figure (and one for the deadline labels)."""
    now = now or utcnow()
    counts = {name: spec.counts(period, now) for name, spec in FIGURES.items()}
    labels = {key: (label, label_zh) for key, label, label_zh in db.session.execute(
        select(Deadline.key, func.max(Deadline.label), func.max(Deadline.label_zh))
        .where(Deadline.key.in_({key for key, _ in counts["deadlines"]})).group_by(Deadline.key))}
    by_status = dict(db.session.execute(select(ProductLot.status, func.count()).group_by(ProductLot.status)).all())
    days = current_app.config["LOT_NEAR_EXPIRY_DAYS"]
    return QualityDashboard(
        period=period, now=now,
        recalls={(c, s): n for (c, s), n in counts["recalls"].items()},
        deadlines={(k, s): n for (k, s), n in counts["deadlines"].items()}, deadline_labels=labels,
        stock_expiry=stock.expiry_by_warehouse(plant_time.local_date(now, plant_time.zone()), days),
        undelivered=_single(counts["undelivered"]), capa_aging=_single(counts["capa_aging"]),
        capa_overdue=sum(counts["capa_overdue"].values()), changes=_single(counts["changes"]),
        supplier_returns=_single(counts["supplier_returns"]), overdue_steps=_single(counts["overdue_steps"]),
        lots_by_status=by_status, near_expiry=lots.near_expiry(now.date(), days, per_page=1).total or 0,
        near_expiry_days=days, supplier_bands=supplier_quality.band_counts(),
        supplier_reviews_open=supplier_quality.open_reviews_count())


def figure_rows(figure: str, key: tuple[str, ...], period: Period, *, page: int = 1, per_page: int = 20,
                now: datetime | None = None):
    """Return a page of the rows a figure counts under a key: instances, steps, deadlines or consignees."""
    spec = FIGURES.get(figure)
    if spec is None:
        raise _unknown_figure()
    return db.paginate(spec.rows(key, period, now or utcnow()), page=max(page, 1), per_page=per_page,
                       error_out=False)


def figure_kind(figure: str) -> str:
    """Say what a figure's rows are: instance, task, deadline or consignee."""
    spec = FIGURES.get(figure)
    if spec is None:
        raise _unknown_figure()
    return {ProcessInstance: "instance", Task: "task", Deadline: "deadline", RecallConsignee: "consignee"}[spec.entity]


def figure_uses_period(figure: str) -> bool:
    spec = FIGURES.get(figure)
    return spec is not None and spec.uses_period

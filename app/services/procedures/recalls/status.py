"""The recall as everyone reads it: its figures counted once per unit, the effectiveness level and the
per-class thresholds, the lots and consignees, and the notification deadline met once every notice arrived."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app.extensions import db
from app.models import (
    Customer,
    Deadline,
    ProcessInstance,
    ProductLot,
    RecallConsignee,
    RecallLine,
)
from app.services.procedures.recalls.base import (
    LEVELS,
    NOTICES_DELIVERED,
    _affected_lots,
    _pct,
    _recall_instance,
    _text,
    delivered,
)
from app.services.workflow import deadlines


@dataclass(frozen=True)
class Effectiveness:
    level: str
    population: int
    sample_size: int
    checked: int
    effective: int

    @property
    def met(self) -> bool:
        return self.effective >= self.sample_size

    def as_dict(self) -> dict[str, Any]:
        return {"level": self.level, "population": self.population, "sample_size": self.sample_size,
                "checked": self.checked, "effective": self.effective, "met": self.met}


def effectiveness(level: str, consignees: list[RecallConsignee]) -> Effectiveness:
    sample = [c for c in consignees if c.in_sample]
    return Effectiveness(level=level, population=len(consignees),
                         sample_size=len(sample), checked=sum(c.checked_at is not None for c in sample),
                         effective=sum(bool(c.check_effective) for c in sample))


@dataclass
class Figures:
    """A recall's counts as the workspace, API, dashboard, handlers and documents all show them.

    Units are counted where they ended up: a distributor's onward shipment is part of what it received, so
    units shipped are what left the manufacturer, and every consignee's returns count against them once.
    """

    consignees: int = 0
    notified: int = 0
    delivered: int = 0
    acknowledged: int = 0
    contacted: int = 0  # consignees whose effectiveness check was recorded
    quantity_shipped: int = 0
    quantity_returned: int = 0
    quantity_destroyed: int = 0

    @property
    def quantity_recovered(self) -> int:
        return self.quantity_returned + self.quantity_destroyed

    def __add__(self, other: Figures) -> Figures:
        return Figures(**{name: getattr(self, name) + getattr(other, name) for name in self.__dataclass_fields__})

    def share(self, name: str) -> float | None:
        """Return consignees contacted/acknowledged or units recovered as a share (0-1), None with no base."""
        part, whole = {"contacted": (self.contacted, self.consignees),
                       "acknowledged": (self.acknowledged, self.consignees),
                       "recovered": (self.quantity_recovered, self.quantity_shipped)}[name]
        return part / whole if whole else None

    def as_dict(self) -> dict[str, Any]:
        return {"consignees": self.consignees, "notified": self.notified, "delivered": self.delivered,
                "acknowledged": self.acknowledged, "contacted": self.contacted,
                "quantity_shipped": self.quantity_shipped, "quantity_returned": self.quantity_returned,
                "quantity_destroyed": self.quantity_destroyed, "quantity_recovered": self.quantity_recovered,
                "recovered_pct": _pct(self.quantity_recovered, self.quantity_shipped),
                "ack_rate": _pct(self.acknowledged, self.notified),
                "contacted_pct": _pct(self.contacted, self.consignees)}


def meet_notice_deadline(instance_id: int, now: datetime) -> bool:
    """Meet the consignee-notification deadline once every consignee's notice was delivered; tell whether it is."""
    view = recall_view(instance_id)
    if not view.consignees or any(not delivered(c) for c in view.consignees):
        return False
    deadlines.mark_met(instance_id, [NOTICES_DELIVERED], now)
    return True


def count_figures(consignees: Iterable[RecallConsignee], lot_id: int | None = None) -> Figures:
    """Count consignees and units (of one lot, or all) from the consignee lines - the one place totals come from."""
    figures = Figures()
    for consignee in consignees:
        lines = [line for line in consignee.lines if lot_id is None or line.product_lot_id == lot_id]
        if lot_id is not None and not lines:
            continue
        figures.consignees += 1
        figures.notified += consignee.notified_at is not None
        figures.delivered += delivered(consignee)
        figures.acknowledged += consignee.acknowledged_at is not None
        figures.contacted += consignee.checked_at is not None
        figures.quantity_shipped += sum(line.quantity_held for line in lines)
        figures.quantity_returned += sum(line.quantity_returned for line in lines)
        figures.quantity_destroyed += sum(line.quantity_destroyed for line in lines)
    return figures


@dataclass(frozen=True)
class Threshold:
    """One effectiveness threshold of the recall's class, with the recall's own figure against it."""

    name: str  # level, contacted, acknowledged, recovered
    required: str
    actual: str
    met: bool

    def as_dict(self, lang: str) -> dict[str, Any]:
        return {"name": self.name, "label": _text(lang, f"threshold_{self.name}"), "required": self.required,
                "actual": self.actual, "met": self.met,
                "met_text": _text(lang, "threshold_met" if self.met else "threshold_not_met")}


def effectiveness_thresholds(data: dict[str, Any], figures: Figures,
                             rules: dict[str, dict[str, Any]]) -> list[Threshold]:
    """Hold the recall's planned check level and its figures against its class's thresholds (config
    RECALL_EFFECTIVENESS); a share with nothing to count (no units shipped) is met. No class: no thresholds."""
    rule = rules.get(str(data.get("recall_class") or ""))
    if not rule:
        return []
    level, least = str(data.get("level") or ""), str(rule.get("level") or "E")
    result = [Threshold("level", least, level or "-", level in LEVELS and LEVELS.index(level) <= LEVELS.index(least))]
    for name in ("contacted", "acknowledged", "recovered"):
        required = float(rule.get(f"{name}_pct") or 0)
        share = figures.share(name)
        result.append(Threshold(name, f"{required:g}%", "-" if share is None else f"{100 * share:.1f}%",
                                share is None or 100 * share >= required - 1e-9))
    return result


@dataclass
class LotRow:
    lot: ProductLot
    figures: Figures = field(default_factory=Figures)

    @property
    def quantity_shipped(self) -> int:
        return self.figures.quantity_shipped

    @property
    def quantity_returned(self) -> int:
        return self.figures.quantity_returned

    @property
    def quantity_destroyed(self) -> int:
        return self.figures.quantity_destroyed


@dataclass
class RecallView:
    instance: ProcessInstance
    lots: list[LotRow]
    consignees: list[RecallConsignee]
    deadlines: list[Deadline]

    @property
    def product_name(self) -> str:
        names = dict.fromkeys(row.lot.product.name for row in self.lots)
        return ", ".join(names)

    @property
    def figures(self) -> Figures:
        return count_figures(self.consignees)

    @property
    def totals(self) -> dict[str, Any]:
        return {"lots": len(self.lots), **self.figures.as_dict()}

    @property
    def region_figures(self) -> dict[str, Figures]:
        """Return the figures per region (units where they ended up, so the regions add up to the totals)."""
        by_region: dict[str, list[RecallConsignee]] = {}
        for consignee in self.consignees:
            by_region.setdefault(consignee.customer.region or consignee.customer.country or "-", []).append(consignee)
        return {region: count_figures(by_region[region]) for region in sorted(by_region)}

    @property
    def regions(self) -> list[dict[str, Any]]:
        return [{"region": region, "consignees": f.consignees, "notified": f.notified,
                 "acknowledged": f.acknowledged, "quantity_shipped": f.quantity_shipped,
                 "quantity_returned": f.quantity_recovered} for region, f in self.region_figures.items()]

    @property
    def thresholds(self) -> list[Threshold]:
        return effectiveness_thresholds(self.instance.data or {}, self.figures,
                                        current_app.config["RECALL_EFFECTIVENESS"])

    @property
    def undelivered(self) -> list[RecallConsignee]:
        """Return the consignees notified whose notice has not reached them yet."""
        return [c for c in self.consignees if c.notified_at is not None and not delivered(c)]

    @property
    def effectiveness(self) -> Effectiveness:
        return effectiveness(str((self.instance.data or {}).get("level") or ""), self.consignees)

    @property
    def notices_sent(self) -> bool:
        return any(c.notified_at is not None for c in self.consignees)


def recall_number(instance_id: int) -> str:
    """The recall's number as documents, pages and e-mails print it."""
    return f"RC-{instance_id:06d}"


def recall_view(instance_id: int) -> RecallView:
    """Load a recall's lots (with quantities), consignees (with lines and notices) and deadlines."""
    instance = _recall_instance(instance_id)
    consignees = list(db.session.scalars(
        select(RecallConsignee).join(Customer, Customer.id == RecallConsignee.customer_id)
        .where(RecallConsignee.instance_id == instance_id)
        .options(selectinload(RecallConsignee.customer),
                 selectinload(RecallConsignee.lines).selectinload(RecallLine.product_lot),
                 selectinload(RecallConsignee.message), selectinload(RecallConsignee.notice))
        .order_by(Customer.region, Customer.code)))
    rows = [LotRow(lot, count_figures(consignees, lot.id)) for lot in _affected_lots(instance_id)]
    return RecallView(instance=instance, lots=rows, consignees=consignees,
                      deadlines=deadlines.instance_deadlines(instance_id))

"""Dashboard figures: open recalls by class, notification deadlines, acknowledgments, quantity recovered by region."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.models import RecallConsignee
from app.models.types import utcnow
from app.services.procedures import recalls

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

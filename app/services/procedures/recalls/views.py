"""What a recall's documents print (the document context), starting a recall and listing the open ones."""
from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import select

from app.exceptions import ValidationFailed
from app.extensions import db
from app.models import (
    InstanceLot,
    ProcessInstance,
    ProductLot,
    RecallConsignee,
    User,
)
from app.models.types import utcnow
from app.services.evidence import audit
from app.services.lots import lots
from app.services.procedures.recalls.base import PROCESS_KEY, _text
from app.services.procedures.recalls.status import RecallView, effectiveness, recall_number, recall_view
from app.services.workflow import instances, titles
from app.services.workflow.transaction import atomic


def _consignee_dict(consignee: RecallConsignee, lang: str, with_lines: bool = False) -> dict[str, Any]:
    customer = consignee.customer
    result = {
        "code": customer.code, "name": customer.name, "kind": customer.kind, "kind_text": _text(lang, customer.kind),
        "region": customer.region or "—", "country": customer.country, "contact": customer.contact or "—",
        "email": customer.email or _text(lang, "none"),
        "quantity_shipped": sum(line.quantity_shipped for line in consignee.lines),
        "quantity_forwarded": sum(line.quantity_forwarded for line in consignee.lines),
        "quantity_returned": sum(line.quantity_returned for line in consignee.lines),
        "quantity_destroyed": sum(line.quantity_destroyed for line in consignee.lines),
        "notified_at": _iso(consignee.notified_at) or _text(lang, "not_yet"),
        "acknowledged_at": _iso(consignee.acknowledged_at) or _text(lang, "not_yet"),
        "ack_on_hand": consignee.ack_on_hand, "in_sample": consignee.in_sample,
        "check_effective": consignee.check_effective,
        "check_effective_text": _text(lang, "not_in_sample" if not consignee.in_sample else "not_yet"
                                      if consignee.check_effective is None else "effective"
                                      if consignee.check_effective else "not_effective"),
    }
    if with_lines:
        result["lines"] = [{"lot_number": line.product_lot.lot_number, "product": line.product_lot.product.name,
                            "quantity_shipped": line.quantity_shipped,
                            "expiry_on": _iso(line.product_lot.expiry_on)} for line in consignee.lines]
    return result


def _iso(value: date | datetime | None) -> str:
    if value is None:
        return ""
    return value.isoformat(timespec="seconds") if isinstance(value, datetime) else value.isoformat()


def document_context(instance: ProcessInstance, now: datetime, lang: str, *, data: dict[str, Any] | None = None,
                     view: RecallView | None = None, company: dict[str, str] | None = None,
                     report_no: int | None = None) -> dict[str, Any]:
    """The `recall` dict every recall document template reads, from the running task's data (default: the
    instance's last saved data)."""
    view = view or recall_view(instance.id)
    data = data if data is not None else (instance.data or {})
    decision = data.get("recall_decision") if isinstance(data.get("recall_decision"), dict) else {}
    product = view.lots[0].lot.product if view.lots else None
    level = str(data.get("level") or "")
    eff = effectiveness(level, view.consignees)
    b_percent = data.get("b_percent") or 50
    # Before the decision computes the markets, they are the affected consignees' countries and those assessed.
    assessed = [c.strip().upper() for c in str(data.get("countries") or "").split(",") if c.strip()]
    markets = data.get("markets") or sorted({c.customer.country for c in view.consignees if c.customer.country}
                                            | set(assessed))
    disposition = [row for row in data.get("disposition") or [] if isinstance(row, dict)]
    thresholds = view.thresholds
    justification = str(data.get("closing_justification") or "").strip()
    return {"recall": {
        "number": recall_number(instance.id), "title": instance.title,
        "source": data.get("source", ""), "source_text": _text(lang, str(data.get("source") or "")),
        "description": data.get("description", ""), "reporter": data.get("reporter", ""),
        "reported_on": data.get("reported_on", ""),
        "product": {"name": product.name if product else "", "model": product.model if product else "",
                    "gtin": (product.gtin or "") if product else "",
                    "registration_no": product.registration_no if product else "",
                    "device_class": product.device_class if product else ""},
        "recall_class": data.get("recall_class", ""), "scope_text": _text(lang, str(data.get("scope") or "")),
        "risk": data.get("risk", ""), "population": data.get("population", ""), "hazard": data.get("hazard", ""),
        "countries": markets, "markets_text": ", ".join(markets),
        "level": level, "level_text": _text(lang, f"level_{level}", percent=b_percent) if level else "",
        "decided_at": decision.get("decided_at", ""), "decided_by": decision.get("decided_by", ""),
        "lots": [{"lot_number": r.lot.lot_number, "product": r.lot.product.name,
                  "manufactured_on": _iso(r.lot.manufactured_on), "expiry_on": _iso(r.lot.expiry_on),
                  "quantity": r.lot.quantity, "quantity_shipped": r.quantity_shipped,
                  "quantity_returned": r.quantity_returned, "quantity_destroyed": r.quantity_destroyed,
                  "status": _text(lang, f"status_{r.lot.status}"), "status_code": r.lot.status} for r in view.lots],
        "consignees": [_consignee_dict(c, lang) for c in view.consignees],
        "totals": view.totals, "regions": view.regions,
        "deadlines": [{"label": (d.label_zh or d.label) if lang == "zh-CN" else d.label, "due_at": _iso(d.due_at),
                       "met_at": _iso(d.met_at) or _text(lang, "not_yet"), "status_text": _text(lang, d.status(now))}
                      for d in view.deadlines],
        "undelivered": [f"{c.customer.code} {c.customer.name}" for c in view.undelivered],
        "effectiveness": {**eff.as_dict(), "exception": (data.get("justification") or _text(lang, "none"))
                          if data.get("outcome") == "exception" else _text(lang, "none")},
        "thresholds": [t.as_dict(lang) for t in thresholds], "thresholds_met": all(t.met for t in thresholds),
        "thresholds_text": "; ".join(f"{_text(lang, f'threshold_{t.name}')} {t.actual} / {t.required} "
                                     f"({_text(lang, 'threshold_met' if t.met else 'threshold_not_met')})"
                                     for t in thresholds) or _text(lang, "none"),
        "closing_justification": justification,
        "closing_justification_text": justification or _text(
            lang, "no_justification" if all(t.met for t in thresholds) else "justification_at_approval"),
        "disposition": [{"lot_number": row.get("lot_number", ""), "quantity": row.get("quantity", ""),
                         "disposition_text": _text(lang, str(row.get("disposition") or "")),
                         "record": row.get("record", "")} for row in disposition],
        "disposed": {kind: sum(int(row.get("quantity") or 0) for row in disposition
                               if row.get("disposition") == kind) for kind in ("destroy", "rework")},
        "plan": {"strategy": data.get("strategy", ""), "depth_text": _text(lang, f"depth_{data.get('depth')}")
                 if data.get("depth") else "", "contact": data.get("plan_contact", ""),
                 "submitted_reference": data.get("plan_reference") or _text(lang, "none")},
        "report_no": report_no or 0,
        "company": company or {},
    }}


RECALL_OF_LOT = titles.register("Recall: lot {lot}", "召回：批次 {lot}")
RECALL_FROM_CAPA = titles.register("Recall from {capa}", "由 {capa} 发起的召回")


def start_recall(actor: User, *, lot_id: int | None = None, capa_instance_id: int | None = None,
                 now: datetime | None = None) -> ProcessInstance:
    """Start a recall from a product lot's page or from a CAPA, with the trigger form filled from it."""
    data: dict[str, Any] = {}
    if lot_id is not None:
        lot = lots.get_lot("product", lot_id)
        data = {"product_lots": lot.lot_number, "source": "inspection_failure"}
        title = RECALL_OF_LOT.format(lot=lot.lot_number)
    elif capa_instance_id is not None:
        capa = instances.get_instance(capa_instance_id)
        capa_lots = [lot.lot_number for lot in db.session.scalars(
            select(ProductLot).join(InstanceLot, InstanceLot.product_lot_id == ProductLot.id)
            .where(InstanceLot.instance_id == capa.id))]
        data = {"product_lots": ", ".join(capa_lots) or capa.data.get("lot_numbers", ""),
                "source": "inspection_failure" if capa_lots else "other", "capa_instance_id": capa.id,
                "description": capa.data.get("description", "")}
        title = RECALL_FROM_CAPA.format(capa=capa.title)[:300]
    else:
        raise ValidationFailed("Start a recall from a lot or a CAPA, or from the Start page.")
    data["title"] = title
    with atomic():
        instance = instances.start_instance(PROCESS_KEY, actor, {k: v for k, v in data.items() if v}, title=title,
                                            now=now)
        if capa_instance_id is not None:
            audit.record(actor, "recall.started_from_capa", "instance", instance.id, instance_id=capa_instance_id,
                         at=now or utcnow(), new={"recall": instance.id})
    return instance


def open_recalls() -> list[ProcessInstance]:
    return list(db.session.scalars(
        instances.of_process(select(ProcessInstance), PROCESS_KEY, open_only=True).order_by(ProcessInstance.id.desc())))

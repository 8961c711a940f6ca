"""The recall's scope (lots, serials, sterilization batches, UDI, a period) and the affected list with its
consignees and quantities, traced forward; recalling the affected lots."""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select

from app.exceptions import Conflict, FormInvalid, ValidationFailed
from app.extensions import db
from app.models import (
    InstanceLot,
    MaterialLot,
    ProcessInstance,
    ProductLot,
    RecallConsignee,
    RecallLine,
    SerialNumber,
    Signature,
    User,
)
from app.models.types import utcnow
from app.services.evidence import audit
from app.services.lots import lots, trace
from app.services.lots.identifiers import InvalidCode, parse_code
from app.services.procedures.recalls.base import _affected_lots, _msg, _recall_instance, _require_open, _require_qa
from app.services.procedures.recalls.status import RecallView, recall_view
from app.services.workflow.transaction import atomic

_SERIAL_RANGE = re.compile(r"^(?P<prefix>.*?)(?P<first>\d+)\s*-\s*(?P=prefix)(?P<last>\d+)$")


_MAX_RANGE = 100_000


def expand_serials(text: Any) -> list[str]:
    """Expand "SN0001-SN0003, X9" to SN0001, SN0002, SN0003, X9 (ranges keep the digits' width)."""
    serials: list[str] = []
    for item in lots.split_list(text):
        match = _SERIAL_RANGE.match(item)
        if match is None:
            serials.append(item)
            continue
        first, last = int(match["first"]), int(match["last"])
        if last < first or last - first >= _MAX_RANGE:
            raise ValueError(item)
        width = len(match["first"])
        serials.extend(f"{match['prefix']}{n:0{width}d}" for n in range(first, last + 1))
    return serials


@dataclass
class Scope:
    """What a recall trigger names, resolved to lot ids, with a message per field that names something unknown."""

    product_lot_ids: list[int] = field(default_factory=list)
    material_lot_ids: list[int] = field(default_factory=list)
    sterilization_batches: list[str] = field(default_factory=list)
    errors: dict[str, list[str]] = field(default_factory=dict)

    def trace(self) -> trace.ForwardTrace:
        return trace.find_affected(material_lot_ids=self.material_lot_ids, product_lot_ids=self.product_lot_ids,
                                   sterilization_batches=self.sterilization_batches)


def _lookup(model: Any, column: Any, names: list[str]) -> tuple[list[int], list[str]]:
    if not names:
        return [], []
    rows = db.session.execute(select(column, model.id).where(column.in_(names))).all()
    found = {name for name, _ in rows}
    return [row_id for _, row_id in rows], [n for n in names if n not in found]


def resolve_scope(data: dict[str, Any], lang: str = "en") -> Scope:
    """Resolve the trigger's product lots, material lots, sterilization batches, serials (ranges) and UDI."""
    scope = Scope()

    def refuse(name: str, key: str, **values: Any) -> None:
        scope.errors.setdefault(name, []).append(_msg(lang, key, **values))

    product_lots = lots.split_list(data.get("product_lots"))
    scope.product_lot_ids, missing = _lookup(ProductLot, ProductLot.lot_number, product_lots)
    if missing:
        refuse("product_lots", "unknown_product_lots", items=", ".join(missing))
    material_lots = lots.split_list(data.get("material_lots"))
    scope.material_lot_ids, missing = _lookup(MaterialLot, MaterialLot.lot_number, material_lots)
    if missing:
        refuse("material_lots", "unknown_material_lots", items=", ".join(missing))
    scope.sterilization_batches = lots.split_list(data.get("sterilization_batches"))
    known = set(db.session.scalars(select(ProductLot.sterilization_batch).where(
        ProductLot.sterilization_batch.in_(scope.sterilization_batches)))) if scope.sterilization_batches else set()
    if missing := [b for b in scope.sterilization_batches if b not in known]:
        refuse("sterilization_batches", "unknown_batches", items=", ".join(missing))
    try:
        serials = expand_serials(data.get("serials"))
    except ValueError as err:
        refuse("serials", "bad_serial_range", item=str(err))
        serials = []
    if serials:
        rows = db.session.execute(select(SerialNumber.serial, SerialNumber.product_lot_id)
                                  .where(SerialNumber.serial.in_(serials))).all()
        scope.product_lot_ids += [lot_id for _, lot_id in rows]
        if missing := sorted(set(serials) - {serial for serial, _ in rows}):
            refuse("serials", "unknown_serials", items=", ".join(missing[:20]) + (" …" if len(missing) > 20 else ""))
    udi = str(data.get("udi") or "").strip()
    if udi:
        try:
            code = parse_code(udi)
        except InvalidCode as err:
            refuse("udi", "bad_udi", error=str(err))
        else:
            match = trace.search(code.text) if not code.is_gs1 else trace.search(udi)
            if not match.product_lots:
                refuse("udi", "udi_no_lot")
            scope.product_lot_ids += [lot.id for lot in match.product_lots]
    scope.product_lot_ids = list(dict.fromkeys(scope.product_lot_ids))
    named = product_lots or scope.material_lot_ids or scope.sterilization_batches or serials or udi
    if not named and not scope.errors:
        refuse("product_lots", "no_scope")
    return scope


def check_trigger(instance: ProcessInstance | None, data: dict[str, Any], lang: str) -> dict[str, list[str]]:
    """Form check for the recall trigger: everything named exists and the affected list is not empty."""
    scope = resolve_scope(data, lang)
    if not scope.errors and not scope.trace().product_lots:
        scope.errors["product_lots"] = [_msg(lang, "empty")]
    return scope.errors


def build_affected(instance_id: int, forward: trace.ForwardTrace) -> None:
    """Store the affected lots and one consignee row (with lines per lot) per customer that received them."""
    if not forward.product_lots:
        raise ValidationFailed(_msg("en", "empty"))
    db.session.execute(delete(RecallLine).where(RecallLine.instance_id == instance_id))
    db.session.execute(delete(RecallConsignee).where(RecallConsignee.instance_id == instance_id))
    db.session.execute(delete(InstanceLot).where(InstanceLot.instance_id == instance_id,
                                                 InstanceLot.role == "affected"))
    lots.link_lots(instance_id, [lot.id for lot in forward.product_lots], "affected")
    consignees: dict[int, RecallConsignee] = {}
    quantities: dict[tuple[int, int], int] = {}
    forwarded: dict[tuple[int, int], int] = {}
    for shipment in forward.shipments:
        customer = shipment.customer
        if customer.id not in consignees:
            consignees[customer.id] = RecallConsignee(
                instance_id=instance_id, customer_id=customer.id,
                language="zh-CN" if customer.country == "CN" else "en")
        key = (customer.id, shipment.product_lot_id)
        quantities[key] = quantities.get(key, 0) + shipment.quantity
        if shipment.from_customer_id is not None:  # the sender is a consignee too: the trace reached it first
            sender = (shipment.from_customer_id, shipment.product_lot_id)
            forwarded[sender] = forwarded.get(sender, 0) + shipment.quantity
    db.session.add_all(consignees.values())
    db.session.flush()
    # A distributor cannot pass on more than it got from this recall's lots; extra onward records count as its own.
    db.session.add_all(RecallLine(instance_id=instance_id, consignee_id=consignees[customer_id].id,
                                  product_lot_id=lot_id, quantity_shipped=quantity,
                                  quantity_forwarded=min(forwarded.get((customer_id, lot_id), 0), quantity))
                       for (customer_id, lot_id), quantity in quantities.items())
    db.session.flush()


def affected_summary(instance_id: int) -> dict[str, Any]:
    """The affected list in a few numbers, kept in the instance data for conditions and documents."""
    view = recall_view(instance_id)
    countries = sorted({c.customer.country for c in view.consignees if c.customer.country})
    return {"lots": [row.lot.lot_number for row in view.lots], "consignees": len(view.consignees),
            "quantity_shipped": view.totals["quantity_shipped"], "countries": countries}


def edit_affected(instance_id: int, *, add: Iterable[str] = (), remove: Iterable[str] = (), reason: str,
                  actor: User, now: datetime | None = None, lang: str = "en") -> RecallView:
    """Add or remove product lots (QA, with a reason, before the notices go out); the consignees follow.
    Refusals are worded in lang (the page's language)."""
    now = now or utcnow()
    add, remove, reason = lots.split_list(list(add)), lots.split_list(list(remove)), (reason or "").strip()
    with atomic():
        _require_qa(actor, lang)
        instance = _recall_instance(instance_id, lock=True)
        _require_open(instance, lang)
        errors: dict[str, list[str]] = {}
        if not reason:
            errors["reason"] = [_msg(lang, "reason_needed")]
        if not add and not remove:
            errors["add"] = [_msg(lang, "name_lots")]
        if db.session.scalar(select(func.count(RecallConsignee.id)).where(
                RecallConsignee.instance_id == instance_id, RecallConsignee.notified_at.is_not(None))):
            raise Conflict(_msg(lang, "frozen"))
        current = {lot.lot_number: lot.id for lot in _affected_lots(instance_id)}
        added_ids, missing = _lookup(ProductLot, ProductLot.lot_number, add)
        if missing:
            errors["add"] = [_msg(lang, "unknown_product_lots", items=", ".join(missing))]
        if not_listed := [n for n in remove if n not in current]:
            errors["remove"] = [_msg(lang, "not_listed", items=", ".join(not_listed))]
        if errors:
            raise FormInvalid(errors)
        kept = [lot_id for number, lot_id in current.items() if number not in remove]
        target = list(dict.fromkeys(kept + added_ids))
        if not target:
            raise FormInvalid({"remove": [_msg(lang, "empty")]})
        build_affected(instance_id, trace.forward([], target))
        if (instance.data or {}).get("recall_decision"):
            # The decision recalled the lots listed then; a lot added after it must be blocked from shipment too.
            for lot in _affected_lots(instance_id):
                if lot.id in added_ids and "recalled" in lots.TRANSITIONS[lot.status]:
                    lots.change_status(lot, "recalled", reason, actor, now, instance_id=instance_id)
        audit.record(actor, "recall.affected_edited", "instance", instance_id, instance_id=instance_id, at=now,
                     old={"lots": sorted(current)}, new={"lots": sorted(set(current) - set(remove) | set(add)),
                                                         "added": add, "removed": remove}, reason=reason)
    return recall_view(instance_id)


def recall_lots(instance: ProcessInstance, reason: str, now: datetime) -> dict[str, Any]:
    """Set every affected lot to recalled (blocked from shipment), audited for the instance.

    Return the lots changed and the decision: its time and who signed it (the latest approving signature).
    """
    changed = []
    for lot in _affected_lots(instance.id):
        if lots.change_status(lot, "recalled", reason, None, now, instance_id=instance.id):
            changed.append(lot.lot_number)
    signature = db.session.scalar(select(Signature).where(
        Signature.instance_id == instance.id, Signature.meaning == "approved").order_by(Signature.id.desc()))
    return {"changed": changed, "decided_at": now.isoformat(timespec="seconds"),
            "decided_by": signature.printed_name if signature else ""}

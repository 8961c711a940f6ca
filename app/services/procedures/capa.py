"""CAPA rules the forms cannot express: the source a CAPA names must exist, contained lots must be holdable,
action owners must be able to work on tasks and due dates must lie ahead; and the source record a CAPA links."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import select

from app.extensions import db
from app.models import (
    Inspection,
    InstanceLot,
    MaterialLot,
    ProcessInstance,
    ProductLot,
    Supplier,
    User,
)
from app.models.types import INT_MAX
from app.models.users import WORKER_ROLES
from app.services.lots import lots
from app.services.workflow import instances, registry

SOURCE_TYPES = ("inspection", "lot", "complaint", "recall", "audit_finding", "supplier")
FREE_SOURCES = ("complaint", "audit_finding")  # references kept in other systems: taken as written

MESSAGES = {
    "en": {
        "inspection": "No inspection {ref}: give the inspection's number (id).",
        "lot": "No product or material lot {ref}.",
        "recall": "No recall {ref}: give the recall's instance number.",
        "supplier": "No supplier with the code {ref}.",
        "not_holdable": "Lot {lot} is {status} and cannot be put on hold.",
        "unknown_owner": "No user {owner}.",
        "inactive_owner": "{owner} cannot work on tasks (inactive or read-only).",
        "past_due": "The due date {due} is in the past.",
        "lot_decision": "Decide whether the lots held for containment ({lots}) are released or stay on hold.",
    },
    "zh-CN": {
        "inspection": "没有编号为 {ref} 的检验记录：请填写检验记录编号（id）。",
        "lot": "没有批号为 {ref} 的产品批次或物料批次。",
        "recall": "没有编号为 {ref} 的召回：请填写召回流程实例编号。",
        "supplier": "没有代码为 {ref} 的供应商。",
        "not_holdable": "批次 {lot} 的状态为 {status}，不能暂扣。",
        "unknown_owner": "没有用户 {owner}。",
        "inactive_owner": "{owner} 不能处理任务（已停用或只读）。",
        "past_due": "完成期限 {due} 已过。",
        "lot_decision": "请决定因遏制而暂扣的批次（{lots}）是放行还是继续暂扣。",
    },
}


def _messages(lang: str) -> dict[str, str]:
    return MESSAGES["zh-CN" if lang.replace("_", "-").lower().startswith("zh") else "en"]


@dataclass
class Source:
    """What a CAPA was raised from, with the records the instance page links to."""

    type: str
    reference: str
    label: str
    product_lot_id: int | None = None
    material_lot_id: int | None = None
    inspection_id: int | None = None
    recall_instance_id: int | None = None
    supplier_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _record_id(reference: str) -> int | None:
    text = reference.strip().lstrip("#")
    # ASCII digits only ("²".isdigit() too), and an id an integer column can hold
    return int(text) if text.isascii() and text.isdigit() and int(text) <= INT_MAX else None


def _lot_by_number(number: str) -> ProductLot | MaterialLot | None:
    product = db.session.scalar(select(ProductLot).where(ProductLot.lot_number == number))
    if product is not None:
        return product
    return db.session.scalar(select(MaterialLot).where(MaterialLot.lot_number == number).order_by(MaterialLot.id))


def _lot_ids(lot: ProductLot | MaterialLot | None) -> dict[str, int | None]:
    if isinstance(lot, ProductLot):
        return {"product_lot_id": lot.id}
    if isinstance(lot, MaterialLot):
        return {"material_lot_id": lot.id}
    return {}


def find_source(source_type: str, reference: str) -> Source | None:
    """Resolve a CAPA source reference to its record; None when the named record does not exist."""
    reference = reference.strip()
    if source_type in FREE_SOURCES:
        return Source(source_type, reference, reference) if reference else None
    if source_type == "inspection":
        record_id = _record_id(reference)
        inspection = db.session.get(Inspection, record_id) if record_id else None
        if inspection is None:
            return None
        lot = inspection.product_lot or inspection.material_lot
        label = (f"{inspection.stage} inspection #{inspection.id} of lot {lot.lot_number}: {inspection.result}, "
                 f"{inspection.inspected_on.isoformat()}")
        return Source(source_type, reference, label, inspection_id=inspection.id, **_lot_ids(lot))
    if source_type == "lot":
        lot = _lot_by_number(reference)
        if lot is None:
            return None
        return Source(source_type, reference, f"{lot.kind} lot {lot.lot_number} ({lot.status})", **_lot_ids(lot))
    if source_type == "recall":
        record_id = _record_id(reference)
        recall = db.session.scalar(
            instances.of_process(select(ProcessInstance), "recall").where(ProcessInstance.id == record_id)) \
            if record_id else None
        if recall is None:
            return None
        return Source(source_type, reference, f"recall #{recall.id} {recall.title}", recall_instance_id=recall.id)
    if source_type == "supplier":
        supplier = db.session.scalar(select(Supplier).where(Supplier.code == reference))
        if supplier is None:
            return None
        return Source(source_type, reference, f"supplier {supplier.code} {supplier.name} ({supplier.status})",
                      supplier_id=supplier.id)
    return None


def check_source(instance: ProcessInstance | None, data: dict, lang: str) -> dict[str, list[str]]:
    """Form check for the problem description: the source record and the affected lots exist."""
    errors = dict(lots.check_lot_numbers(instance, data, lang))
    source_type, reference = str(data.get("source") or ""), str(data.get("source_reference") or "").strip()
    if source_type in SOURCE_TYPES and source_type not in FREE_SOURCES and reference \
            and find_source(source_type, reference) is None:
        errors["source_reference"] = [_messages(lang)[source_type].format(ref=reference)]
    return errors


def check_containment(instance: ProcessInstance | None, data: dict, lang: str) -> dict[str, list[str]]:
    """Form check for the containment: every lot to hold is a product lot that may be put on hold."""
    numbers = lots.split_list(data.get("containment_lots"))
    errors = lots.check_lot_numbers(instance, {"lot_numbers": ", ".join(numbers)}, lang)
    if errors:
        return {"containment_lots": errors["lot_numbers"]}
    messages = _messages(lang)
    refused = [messages["not_holdable"].format(lot=lot.lot_number, status=lot.status)
               for lot in db.session.scalars(select(ProductLot).where(ProductLot.lot_number.in_(numbers)))
               if lot.status != "hold" and "hold" not in lots.TRANSITIONS[lot.status]]
    return {"containment_lots": refused} if refused else {}


def check_action_plan(instance: ProcessInstance | None, data: dict, lang: str, now: datetime) -> dict[str, list[str]]:
    """Form check for the action plan: each owner can work on tasks and no due date lies in the past."""
    messages = _messages(lang)
    actions = [a for a in data.get("actions") or [] if isinstance(a, dict)]
    names = {str(a.get("owner") or "").strip() for a in actions}
    users = {u.username: u for u in db.session.scalars(select(User).where(User.username.in_(names)))}
    errors: dict[str, list[str]] = {}
    for index, action in enumerate(actions):
        owner = str(action.get("owner") or "").strip()
        user = users.get(owner)
        if owner and user is None:
            errors[f"actions.{index}.owner"] = [messages["unknown_owner"].format(owner=owner)]
        elif user is not None and not (user.active and user.has_role(*WORKER_ROLES)):
            errors[f"actions.{index}.owner"] = [messages["inactive_owner"].format(owner=owner)]
        try:
            due = date.fromisoformat(str(action.get("due_date") or ""))
        except ValueError:
            continue  # the schema reports a malformed date
        if due < now.date():
            errors[f"actions.{index}.due_date"] = [messages["past_due"].format(due=due.isoformat())]
    return errors


def check_approval(instance: ProcessInstance | None, data: dict, lang: str) -> dict[str, list[str]]:
    """Form check for the closing approval: lots held for containment need a release-or-keep decision."""
    held = lots.split_list((instance.data or {}).get("containment_lots")) if instance is not None else []
    if data.get("decision") == "approve" and held and not data.get("lot_decision"):
        return {"lot_decision": [_messages(lang)["lot_decision"].format(lots=", ".join(held))]}
    return {}


def link_source(instance: ProcessInstance, source_type: str, reference: str, affected: list[str]) -> Source:
    """Link a CAPA to its source's lot and the affected product lots (role subject), inside the caller's transaction."""
    source = find_source(source_type, reference)
    if source is None:
        raise LookupError(f"the {source_type} {reference!r} does not exist")
    found = dict(db.session.execute(select(ProductLot.lot_number, ProductLot.id)
                                    .where(ProductLot.lot_number.in_(affected))).all())
    if missing := [n for n in affected if n not in found]:
        raise LookupError(f"unknown product lot(s): {', '.join(missing)}")
    lot_ids = [found[n] for n in affected]
    if source.product_lot_id:
        lot_ids.insert(0, source.product_lot_id)
    lots.link_lots(instance.id, lot_ids, "subject")
    if source.material_lot_id and db.session.scalar(select(InstanceLot.id).where(
            InstanceLot.instance_id == instance.id, InstanceLot.material_lot_id == source.material_lot_id)) is None:
        db.session.add(InstanceLot(instance_id=instance.id, material_lot_id=source.material_lot_id, role="subject"))
    return source


registry.register_form_checks({
    "capa_source": check_source,
    "capa_containment": check_containment,
    "capa_approval": check_approval,
}, clocked={"capa_action_plan": check_action_plan})

"""Lot use cases: status changes with their rules and reasons, the expiry job, near-expiry warnings,
failed final inspections that open a CAPA, release checks, and the lot pages' queries."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import func, or_, select
from sqlalchemy.orm import joinedload

from app.exceptions import Conflict, NotFound, PermissionDenied, ValidationFailed
from app.extensions import db
from app.models import (
    AuditEvent,
    Customer,
    GenealogyEdge,
    Inspection,
    InstanceLot,
    MaterialLot,
    ProcessDefinition,
    ProcessInstance,
    ProcessVersion,
    Product,
    ProductLot,
    SerialNumber,
    Shipment,
    StockLevel,
    Supplier,
    User,
)
from app.models.instances import OPEN_STATES
from app.models.lots import LOT_STATUSES, MATERIAL_ONLY_STATUSES, SUPPLIER_STATUSES
from app.models.sterilization import SterilizationBatch
from app.models.types import utcnow
from app.services.evidence import audit
from app.services.workflow import instances, plant_time, processes, registry, titles
from app.services.workflow.transaction import atomic

# Which status a lot may move to from each status. Expired and scrapped lots are locked: an expired
# lot can only be scrapped, a scrapped one never changes again.
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "quarantine": ("released", "hold", "recalled", "expired", "scrapped", "returned"),
    "released": ("quarantine", "hold", "recalled", "expired", "scrapped"),
    "hold": ("quarantine", "released", "recalled", "expired", "scrapped", "returned"),
    "recalled": ("quarantine", "hold", "scrapped", "expired", "returned"),
    "expired": ("scrapped", "returned"),
    "scrapped": (),
    "returned": (),  # shipped back to the supplier: gone from stock, as a scrapped lot is
}
SHIPPABLE = ("released",)
# Who may decide about a lot: QA (by group), releasers and admins; only releasers and admins release.
STATUS_GROUPS = ("qa", "qa_management")
RELEASE_ROLES = ("qa_releaser", "admin")

LotModel = type[ProductLot] | type[MaterialLot]
LOT_MODELS: dict[str, LotModel] = {"product": ProductLot, "material": MaterialLot}


def split_list(value: Any) -> list[str]:
    """Lot numbers (or serials, batches) as forms and handlers give them: a list, or text separated by commas,
    semicolons or new lines; blanks and repeats dropped, order kept."""
    items = value if isinstance(value, list | tuple) else re.split(r"[,;\n]", str(value or ""))
    return list(dict.fromkeys(str(item).strip() for item in items if str(item).strip()))


def require_lot_authority(actor: User, new_status: str) -> None:
    """Refuse a status change the actor is not entitled to make."""
    instances.require_worker(actor)
    if new_status == "released":
        if not actor.has_role(*RELEASE_ROLES):
            raise PermissionDenied("Only an authorised releaser can release a lot.")
        return
    if not (actor.has_role("admin", "qa_releaser") or actor.group_names & set(STATUS_GROUPS)):
        raise PermissionDenied("Only quality assurance can change a lot's status.")


def shipping_refusal(lot: ProductLot | None, shipped_on: date | None = None) -> str | None:
    """Say why goods of this lot cannot be shipped (None when they can)."""
    if lot is None:
        return None
    if lot.status not in SHIPPABLE:
        return f"lot {lot.lot_number} is {lot.status} and cannot be shipped"
    if shipped_on and lot.expiry_on and shipped_on > lot.expiry_on:
        return f"lot {lot.lot_number} expired on {lot.expiry_on.isoformat()}"
    return None


def get_lot(kind: str, lot_id: int) -> ProductLot | MaterialLot:
    model = LOT_MODELS.get(kind)
    lot = db.session.get(model, lot_id) if model else None
    if lot is None:
        raise NotFound(_("No product lot %(id)s.", id=lot_id) if kind == "product" else
                       _("No material lot %(id)s.", id=lot_id))
    return lot


def change_status(lot: ProductLot | MaterialLot, status: str, reason: str, actor: User | None,
                  now: datetime, instance_id: int | None = None, details: dict | None = None) -> bool:
    """Move a lot to a status inside the caller's transaction, audited with reason; False if already there."""
    if status not in LOT_STATUSES:
        raise ValidationFailed(_("Unknown lot status %(status)s; use one of %(statuses)s.", status=repr(status),
                                 statuses=", ".join(LOT_STATUSES)))
    if not reason.strip():
        raise ValidationFailed("A status change needs a reason.")
    if lot.status == status:
        return False
    if status not in TRANSITIONS[lot.status]:
        raise Conflict(_("Lot %(lot)s is %(status)s; it cannot become %(new)s.", lot=lot.lot_number,
                         status=_(lot.status), new=_(status)))
    if status in MATERIAL_ONLY_STATUSES and lot.kind != "material":
        raise ValidationFailed(_("Only material lots can be %(status)s.", status=_(status)))
    old = lot.status
    lot.status = status
    audit.record(actor, "lot.status_changed", f"{lot.kind}_lot", lot.id, instance_id=instance_id, at=now,
                 old={"status": old}, new={"status": status, "lot_number": lot.lot_number, **(details or {})},
                 reason=reason.strip())
    return True


def set_status(kind: str, lot_id: int, status: str, reason: str, actor: User,
               now: datetime | None = None) -> ProductLot | MaterialLot:
    """Change a lot's status as actor (one use case), refusing forbidden moves and missing reasons."""
    now = now or utcnow()
    with atomic():
        require_lot_authority(actor, status)
        lot = get_lot(kind, lot_id)
        refuse_suspended_supplier(lot, status)
        change_status(lot, status, reason, actor, now)
    return lot


def refuse_suspended_supplier(lot: ProductLot | MaterialLot, status: str) -> None:
    """A material lot of a suspended supplier is not released (docs/suppliers.md)."""
    if status == "released" and lot.kind == "material" and lot.supplier.status == "suspended":
        raise Conflict(_("Material lot %(lot)s comes from supplier %(code)s, which is suspended: it cannot be "
                         "released. Return it to the supplier, or reinstate the supplier through a signed supplier "
                         "review.", lot=lot.lot_number, code=lot.supplier.code))


def supplier_warning(lot: ProductLot | MaterialLot | None) -> str | None:
    """What a material lot's supplier status asks of whoever handles the lot, in the request's language: a conditional
    supplier's lots need tightened incoming inspection, a suspended supplier's cannot be released; None otherwise."""
    if lot is None or lot.kind != "material":
        return None
    if lot.supplier.status == "conditional":
        return _("Supplier %(code)s is conditional: inspect this lot with tightened incoming inspection before "
                 "release.", code=lot.supplier.code)
    if lot.supplier.status == "suspended":
        return _("Supplier %(code)s is suspended: this lot cannot be released. Return it to the supplier, or "
                 "reinstate the supplier through a signed supplier review.", code=lot.supplier.code)
    return None


def supplier_warnings(record: Any) -> list[str]:
    """The supplier warning of a newly entered material lot or inspection (of a material lot), as a list."""
    lot = record.material_lot if isinstance(record, Inspection) else record
    warning = supplier_warning(lot) if isinstance(lot, MaterialLot) else None
    return [warning] if warning else []


def set_supplier_status(supplier_id: int, status: str, reason: str, actor: User,
                        now: datetime | None = None) -> Supplier:
    """Approve, make conditional or suspend a supplier, with a reason; a suspended one delivers no new lots."""
    now = now or utcnow()
    with atomic():
        instances.require_worker(actor)
        if not (actor.has_role("admin") or actor.group_names & set(STATUS_GROUPS)):
            raise PermissionDenied("Only quality assurance can change a supplier's status.")
        if status not in SUPPLIER_STATUSES:
            raise ValidationFailed(_("Unknown supplier status %(status)s; use one of %(statuses)s.",
                                     status=repr(status), statuses=", ".join(SUPPLIER_STATUSES)))
        if not reason.strip():
            raise ValidationFailed("A status change needs a reason.")
        supplier = db.session.get(Supplier, supplier_id)
        if supplier is None:
            raise NotFound(_("No supplier %(id)s.", id=supplier_id))
        if supplier.status != status:
            audit.record(actor, "supplier.status_changed", "supplier", supplier.id, at=now,
                         old={"status": supplier.status}, new={"status": status, "code": supplier.code},
                         reason=reason.strip())
            supplier.status = status
    return supplier


def expire_lots(now: datetime | None = None) -> int:
    """Lock every lot whose expiry date has passed (the scheduled job); return how many were expired."""
    now = now or utcnow()
    today = now.date()
    expired = 0
    with atomic():
        for model in (ProductLot, MaterialLot):
            due = db.session.scalars(select(model).where(
                model.expiry_on < today, model.status.notin_(("expired", "scrapped", "returned"))).with_for_update())
            for lot in due:
                # A product lot's audit event says which stock the expiry locked, where.
                stock = [{"location": location, "quantity": quantity} for location, quantity in db.session.execute(
                    select(StockLevel.location, StockLevel.quantity).where(
                        StockLevel.product_lot_id == lot.id, StockLevel.quantity > 0).order_by(StockLevel.location))
                ] if model is ProductLot else []
                change_status(lot, "expired", f"expiry date {lot.expiry_on.isoformat()} passed", None, now,
                              details={"stock_locked": stock} if stock else None)
                expired += 1
    return expired


def near_expiry(today: date, days: int, *, page: int = 1, per_page: int = 20):
    """Return a page of product lots still in stock that expire within `days` days, soonest first."""
    query = (select(ProductLot).where(ProductLot.expiry_on >= today,
                                      ProductLot.expiry_on <= today + timedelta(days=days),
                                      ProductLot.status.notin_(("expired", "scrapped")))
             .order_by(ProductLot.expiry_on, ProductLot.lot_number))
    return db.paginate(query, page=page, per_page=per_page, error_out=False)


def is_near_expiry(lot: ProductLot | MaterialLot, today: date, days: int) -> bool:
    return (lot.expiry_on is not None and lot.status not in ("expired", "scrapped")
            and today <= lot.expiry_on <= today + timedelta(days=days))


RELEASE_PROCESS = "lot_release"
AWAITING_RELEASE = ("quarantine", "hold")

RELEASE_MESSAGES = {
    "en": {"unknown": "Unknown product lot {lot}.",
           "not_awaiting": "Lot {lot} is {status}; only a lot in quarantine or on hold awaits release.",
           "running": "Lot {lot} already has a release in progress (instance {instance})."},
    "zh-CN": {"unknown": "未知的产品批号 {lot}。",
              "not_awaiting": "批次 {lot} 的状态为 {status}；只有待验或暂停的批次才需要放行。",
              "running": "批次 {lot} 已有进行中的放行流程（实例 {instance}）。"},
}


def _release_problem(number: str, lang: str, exclude_instance_id: int | None = None) -> str | None:
    messages = RELEASE_MESSAGES["zh-CN" if lang == "zh-CN" else "en"]
    lot = db.session.scalar(select(ProductLot).where(ProductLot.lot_number == number))
    if lot is None:
        return messages["unknown"].format(lot=number)
    if lot.status not in AWAITING_RELEASE:
        return messages["not_awaiting"].format(lot=number, status=lot.status)
    running = db.session.scalar(
        instances.of_process(select(ProcessInstance.id), RELEASE_PROCESS, open_only=True)
        .join(InstanceLot, InstanceLot.instance_id == ProcessInstance.id)
        .where(InstanceLot.product_lot_id == lot.id, ProcessInstance.id != (exclude_instance_id or 0)))
    return messages["running"].format(lot=number, instance=running) if running else None


def check_release_request(instance: ProcessInstance | None, data: dict, lang: str) -> dict[str, list[str]]:
    """Form check for a release request: the lot exists, awaits release and has no other release running."""
    number = str(data.get("lot_number") or "").strip()
    problem = _release_problem(number, lang, instance.id if instance else None)
    return {"lot_number": [problem]} if problem else {}


def check_lot_numbers(instance: ProcessInstance | None, data: dict, lang: str) -> dict[str, list[str]]:
    """Form check: every product lot named in lot_numbers exists."""
    numbers = split_list(data.get("lot_numbers"))
    known = set(db.session.scalars(select(ProductLot.lot_number).where(ProductLot.lot_number.in_(numbers))))
    missing = [n for n in numbers if n not in known]
    if not missing:
        return {}
    text = "未知的产品批号：{lots}。" if lang == "zh-CN" else "Unknown product lot(s): {lots}."
    return {"lot_numbers": [text.format(lots=", ".join(missing))]}


RELEASE_TITLE = titles.register("Release of lot {lot}", "批次 {lot} 的放行")


def start_release(lot_id: int, actor: User, now: datetime | None = None) -> ProcessInstance:
    """Start the lot release procedure for a lot in quarantine or on hold (one use case)."""
    now = now or utcnow()
    with atomic():
        lot = get_lot("product", lot_id)
        if problem := _release_problem(lot.lot_number, "en"):
            raise Conflict(problem)
        title = RELEASE_TITLE.format(lot=lot.lot_number)
        instance = instances.start_instance(RELEASE_PROCESS, actor, {"title": title, "lot_number": lot.lot_number},
                                            title=title, now=now)
        link_lots(instance.id, [lot.id], "subject")
    return instance


def lot_created(lot_id: int, actor: User, now: datetime) -> ProcessInstance | None:
    """Start the release of a lot entered in quarantine, when the lot release procedure is deployed."""
    lot = db.session.get(ProductLot, lot_id)
    if lot is None or lot.status != "quarantine" or not processes.is_deployed(RELEASE_PROCESS):
        return None
    return start_release(lot_id, actor, now)


INSPECTION_CAPA_TITLE = titles.register("CAPA: failed final inspection, lot {lot}", "CAPA：批次 {lot} 成品检验不合格")
RELEASE_CAPA_TITLE = titles.register("CAPA: release checks failed, lot {lot}", "CAPA：批次 {lot} 放行检查未通过")


def _start_capa(lot: ProductLot, actor: User, data: dict, title: str, now: datetime) -> ProcessInstance:
    """Start a CAPA about a lot, linked to it, inside the caller's transaction."""
    try:
        instance = instances.start_instance("capa", actor, {"lot_numbers": lot.lot_number, **data}, title=title,
                                            now=now)
    except NotFound as err:
        raise Conflict("This step opens a CAPA, but the CAPA procedure is not deployed.") from err
    db.session.add(InstanceLot(instance_id=instance.id, product_lot_id=lot.id, role="subject"))
    return instance


def open_capa_for_inspection(inspection: Inspection, actor: User, now: datetime) -> ProcessInstance:
    """Start a CAPA for a failed final inspection, linked to its lot, inside the caller's transaction."""
    lot = inspection.product_lot
    instance = _start_capa(lot, actor, {
        "title": f"Failed final inspection of lot {lot.lot_number}",
        "source": "inspection",
        "source_reference": str(inspection.id),
        "description": (f"Final inspection on {inspection.inspected_on.isoformat()} failed"
                        f"{' by ' + inspection.inspector if inspection.inspector else ''}: "
                        f"{inspection.results or 'no results recorded'}"),
        "severity": "major",
        "reported_on": inspection.inspected_on.isoformat(),
        "inspection_id": inspection.id,
    }, INSPECTION_CAPA_TITLE.format(lot=lot.lot_number), now)
    inspection.capa_instance_id = instance.id
    audit.record(actor, "inspection.capa_opened", "inspection", inspection.id, instance_id=instance.id, at=now,
                 new={"lot_number": lot.lot_number, "instance": instance.id})
    return instance


def open_capa_for_lot(lot: ProductLot, actor: User, description: str, now: datetime,
                      from_instance_id: int) -> ProcessInstance:
    """Start a CAPA about a lot from another procedure (a lot release whose checks failed)."""
    instance = _start_capa(lot, actor, {
        "title": f"Release checks failed for lot {lot.lot_number}", "source": "lot", "source_reference": lot.lot_number,
        "description": description, "severity": "major",
        "reported_on": plant_time.local_date(now, plant_time.zone()).isoformat(),
        "from_instance_id": from_instance_id,
    }, RELEASE_CAPA_TITLE.format(lot=lot.lot_number), now)
    audit.record(actor, "lot.capa_opened", "product_lot", lot.id, instance_id=from_instance_id, at=now,
                 new={"lot_number": lot.lot_number, "capa": instance.id})
    return instance


def link_lots(instance_id: int, product_lot_ids: list[int], role: str) -> None:
    """Record that an instance concerns these product lots (no duplicates per role)."""
    existing = set(db.session.scalars(select(InstanceLot.product_lot_id).where(
        InstanceLot.instance_id == instance_id, InstanceLot.role == role)))
    db.session.add_all(InstanceLot(instance_id=instance_id, product_lot_id=lot_id, role=role)
                       for lot_id in dict.fromkeys(product_lot_ids) if lot_id not in existing)


HOLD_ROLES = ("hold", "containment")


def _hold_link(instance_id: int, lot_id: int, role: str) -> InstanceLot | None:
    return db.session.scalar(select(InstanceLot).where(
        InstanceLot.instance_id == instance_id, InstanceLot.product_lot_id == lot_id, InstanceLot.role == role))


def hold_lot(instance_id: int, lot: ProductLot, reason: str, role: str, now: datetime) -> bool:
    """Put a lot on hold for an instance, remembering the status it had; False if it was on hold already."""
    previous = lot.status
    changed = change_status(lot, "hold", reason, None, now, instance_id=instance_id)
    link = _hold_link(instance_id, lot.id, role)
    if link is None:
        link = InstanceLot(instance_id=instance_id, product_lot_id=lot.id, role=role)
        db.session.add(link)
    if changed or link.previous_status is None:
        # A lot some other procedure held already keeps the status it had before that hold.
        link.previous_status = previous if changed else _status_before_hold(lot.id) or "quarantine"
    link.lifted_at = None
    return changed


def _status_before_hold(lot_id: int) -> str | None:
    """The status an earlier, still active hold on the lot remembered."""
    return db.session.scalar(select(InstanceLot.previous_status).where(
        InstanceLot.product_lot_id == lot_id, InstanceLot.role.in_(HOLD_ROLES), InstanceLot.lifted_at.is_(None),
        InstanceLot.previous_status.is_not(None)).order_by(InstanceLot.id).limit(1))


def lift_hold(instance_id: int, lot: ProductLot, reason: str, role: str, now: datetime) -> dict[str, Any]:
    """Lift an instance's hold on a lot: it returns to the status it had before (a quarantined lot is not
    released by lifting a hold), unless another open procedure still holds it."""
    link = _hold_link(instance_id, lot.id, role)
    if link is not None:
        link.lifted_at = now
    others = list(db.session.scalars(
        select(InstanceLot.instance_id).join(ProcessInstance, ProcessInstance.id == InstanceLot.instance_id)
        .where(InstanceLot.product_lot_id == lot.id, InstanceLot.role.in_(HOLD_ROLES),
               InstanceLot.lifted_at.is_(None), InstanceLot.instance_id != instance_id,
               ProcessInstance.status.in_(OPEN_STATES))))
    if lot.status != "hold":
        return {"lot": lot.lot_number, "status": lot.status, "outcome": "not_on_hold"}
    if others:
        return {"lot": lot.lot_number, "status": lot.status, "outcome": "still_held", "held_by": sorted(others)}
    restored = (link.previous_status if link is not None else None) or "quarantine"
    change_status(lot, restored, reason, None, now, instance_id=instance_id)
    return {"lot": lot.lot_number, "status": restored, "outcome": "restored"}


@dataclass
class ReleaseCheck:
    """One release condition and whether the lot meets it."""

    code: str
    passed: bool
    detail: str = ""
    detail_zh: str = ""  # the detail in Chinese where it carries values (a batch number); else the pages translate it


@dataclass
class ReleaseReport:
    lot_number: str
    checks: list[ReleaseCheck] = field(default_factory=list)
    lot: dict = field(default_factory=dict)  # the facts a release certificate prints

    @property
    def failed(self) -> list[ReleaseCheck]:
        return [check for check in self.checks if not check.passed]

    def as_dict(self) -> dict:
        return {"lot_number": self.lot_number, "releasable": not self.failed, "lot": self.lot,
                "failed": [{"code": c.code, "detail": c.detail, "detail_zh": c.detail_zh} for c in self.failed],
                "checks": [{"code": c.code, "passed": c.passed, "detail": c.detail, "detail_zh": c.detail_zh}
                           for c in self.checks]}


STERILIZATION_DETAILS = {  # the sterilization release check's refusals, in both page languages
    "no_batch": ("sterile product without a sterilization batch", "无菌产品缺少灭菌批号"),
    "unknown": ("sterilization batch {batch} has no sterilization record", "灭菌批 {batch} 没有灭菌记录"),
    "pending_bi": ("sterilization batch {batch} is pending: biological indicator result not in yet",
                   "灭菌批 {batch} 待定：生物指示物结果尚未出来"),
    "pending": ("sterilization batch {batch} is pending: not yet released by QA",
                "灭菌批 {batch} 待定：质量部尚未放行"),
    "failed": ("sterilization batch {batch} failed", "灭菌批 {batch} 不合格"),
}


def sterilization_check(lot: ProductLot) -> ReleaseCheck:
    """A sterile product's lot needs a sterilization batch whose record QA released (signed)."""
    if not lot.product.sterile:
        return ReleaseCheck("sterilization_record", True)
    batch = db.session.scalar(select(SterilizationBatch).where(
        SterilizationBatch.batch_number == lot.sterilization_batch)) if lot.sterilization_batch else None
    if batch is not None and batch.status == "released":
        return ReleaseCheck("sterilization_record", True)
    key = ("no_batch" if not lot.sterilization_batch else "unknown" if batch is None else "failed"
           if batch.status == "failed" else "pending_bi" if batch.bi_result == "pending" else "pending")
    english, chinese = STERILIZATION_DETAILS[key]
    return ReleaseCheck("sterilization_record", False, english.format(batch=lot.sterilization_batch),
                        chinese.format(batch=lot.sterilization_batch))


RELEASE_DETAILS = {  # the other release checks' refusals, in both page languages (English is stored and logged)
    "batch_record": ("batch record is not complete", "批记录不完整"),
    "no_final": ("no final inspection recorded", "没有成品检验记录"),
    "labels": ("labels with UDI not checked", "带 UDI 的标签未核对"),
    "no_gtin": ("product has no UDI-DI (GTIN)", "产品没有 UDI-DI（GTIN）"),
    "status_expired": ("lot status is expired", "批次状态为已过期"),
}
INSPECTION_STAGES_ZH = {"incoming": "进货", "in_process": "过程", "final": "成品"}


def _detail(key: str) -> tuple[str, str]:
    return RELEASE_DETAILS[key] if key else ("", "")


def _joined(pairs: list[tuple[str, str]]) -> tuple[str, str]:
    """Details that carry values (dates, instances), each in English and Chinese, joined per language."""
    return ", ".join(pair[0] for pair in pairs), "，".join(pair[1] for pair in pairs)


def _failed_on(inspection: Inspection) -> tuple[str, str]:
    day = inspection.inspected_on.isoformat()
    return (f"{inspection.stage} inspection failed on {day}",
            f"{INSPECTION_STAGES_ZH.get(inspection.stage, inspection.stage)}检验于 {day} 不合格")


def release_checks(lot: ProductLot, today: date, exclude_instance_id: int | None = None) -> ReleaseReport:
    """Check a product lot against every release condition and list the ones it fails."""
    inspections = list(db.session.scalars(select(Inspection).where(Inspection.product_lot_id == lot.id)))
    finals = [i for i in inspections if i.stage == "final"]
    failed_inspections = [i for i in inspections if i.result == "fail"]
    open_instances = list(db.session.scalars(select(ProcessInstance).join(ProcessVersion).join(ProcessDefinition).where(
        ProcessInstance.id.in_(select(InstanceLot.instance_id).where(InstanceLot.product_lot_id == lot.id)),
        ProcessInstance.status.in_(OPEN_STATES), ProcessInstance.id != (exclude_instance_id or 0),
        ProcessDefinition.key != RELEASE_PROCESS)  # the lot's own release is no reason to hold it
        .order_by(ProcessInstance.id)))
    report = ReleaseReport(lot.lot_number, lot={
        "lot_number": lot.lot_number, "product": lot.product.name, "model": lot.product.model,
        "gtin": lot.product.gtin or "", "quantity": lot.quantity,
        "manufactured_on": lot.manufactured_on.isoformat() if lot.manufactured_on else "",
        "expiry_on": lot.expiry_on.isoformat() if lot.expiry_on else "",
        "sterilization_batch": lot.sterilization_batch or "", "status": lot.status})
    expired = lot.expiry_on.isoformat() if lot.expiry_on and lot.expiry_on < today else None
    report.checks = [
        ReleaseCheck("batch_record_complete", lot.batch_record_complete,
                     *_detail("" if lot.batch_record_complete else "batch_record")),
        ReleaseCheck("final_inspection_passed", bool(finals) and not failed_inspections,
                     *(_detail("no_final") if not finals else _joined([_failed_on(i) for i in failed_inspections]))),
        sterilization_check(lot),
        ReleaseCheck("labels_udi", lot.labels_checked and bool(lot.product.gtin),
                     *_detail("" if lot.labels_checked and lot.product.gtin else
                              "labels" if lot.product.gtin else "no_gtin")),
        ReleaseCheck("no_open_capa_or_deviation", not open_instances,
                     *_joined([(f"#{i.id} {i.title}", f"#{i.id} {titles.localized(i.title, 'zh-CN')}")
                               for i in open_instances])),
        ReleaseCheck("not_expired", lot.status != "expired" and not expired,
                     *((f"expired on {expired}", f"已于 {expired} 过期") if expired else
                       _detail("status_expired" if lot.status == "expired" else ""))),
    ]
    return report


@dataclass
class LotPage:
    """Everything the product-lot page shows about one lot."""

    lot: ProductLot
    inspections: list[Inspection]
    stock: list[StockLevel]
    shipments: list[Shipment]
    components: list[GenealogyEdge]
    used_in: list[GenealogyEdge]
    serial_count: int
    instances: list[tuple[ProcessInstance, str]]
    history: list[AuditEvent]


def product_lot_page(lot_id: int) -> LotPage:
    """Gather a product lot with its inspections, stock, shipments, genealogy, instances and status history."""
    lot = get_lot("product", lot_id)
    session = db.session
    return LotPage(
        lot=lot,
        inspections=list(session.scalars(select(Inspection).where(Inspection.product_lot_id == lot_id)
                                         .order_by(Inspection.inspected_on.desc()))),
        stock=list(session.scalars(select(StockLevel).where(StockLevel.product_lot_id == lot_id)
                                   .order_by(StockLevel.location))),
        shipments=list(session.scalars(select(Shipment).where(Shipment.product_lot_id == lot_id)
                                       .order_by(Shipment.shipped_on.desc(), Shipment.id).limit(200))),
        components=list(session.scalars(select(GenealogyEdge).where(GenealogyEdge.product_lot_id == lot_id).options(
            joinedload(GenealogyEdge.material_lot), joinedload(GenealogyEdge.component_lot)))),
        used_in=list(session.scalars(select(GenealogyEdge).where(GenealogyEdge.component_lot_id == lot_id)
                                     .options(joinedload(GenealogyEdge.product_lot)))),
        serial_count=session.scalar(select(func.count()).where(SerialNumber.product_lot_id == lot_id)) or 0,
        instances=list(session.execute(
            select(ProcessInstance, InstanceLot.role).join(InstanceLot, InstanceLot.instance_id == ProcessInstance.id)
            .where(InstanceLot.product_lot_id == lot_id).order_by(ProcessInstance.id.desc()))),
        history=lot_history("product", lot_id),
    )


def lot_history(kind: str, lot_id: int) -> list[AuditEvent]:
    """Return the audited events about one lot, newest first."""
    return list(db.session.scalars(select(AuditEvent).where(
        AuditEvent.object_type == f"{kind}_lot", AuditEvent.object_id == str(lot_id)).order_by(AuditEvent.id.desc())))


def material_lot_page(lot_id: int) -> tuple[MaterialLot, list[Inspection], list[AuditEvent]]:
    lot = get_lot("material", lot_id)
    inspections = list(db.session.scalars(select(Inspection).where(Inspection.material_lot_id == lot_id)
                                          .order_by(Inspection.inspected_on.desc())))
    return lot, inspections, lot_history("material", lot_id)


LIST_MODELS = {
    "products": (Product, (Product.name, Product.model, Product.gtin), Product.name),
    "suppliers": (Supplier, (Supplier.code, Supplier.name), Supplier.code),
    "material_lots": (MaterialLot, (MaterialLot.lot_number, MaterialLot.material), MaterialLot.lot_number),
    "product_lots": (ProductLot, (ProductLot.lot_number, ProductLot.sterilization_batch), ProductLot.lot_number),
    "customers": (Customer, (Customer.code, Customer.name, Customer.region), Customer.code),
    "shipments": (Shipment, (Shipment.document_no,), Shipment.shipped_on.desc()),
    "inspections": (Inspection, (Inspection.inspector, Inspection.results), Inspection.inspected_on.desc()),
    "stock": (StockLevel, (StockLevel.location,), StockLevel.location),
}


def get_record(kind: str, record_id: int):
    """Return one master-data record of a listed kind, or raise NotFound."""
    model = LIST_MODELS[kind][0] if kind in LIST_MODELS else None
    record = db.session.get(model, record_id) if model else None
    if record is None:
        raise NotFound(_("No %(kind)s record %(id)s.", kind=kind, id=record_id))
    return record


def list_records(kind: str, *, q: str = "", status: str = "", page: int = 1, per_page: int = 20):
    """Return one page of a master-data list, filtered by a search text and (for lots) a status."""
    if kind not in LIST_MODELS:
        raise NotFound(f"No master data called {kind!r}.")
    model, searchable, order = LIST_MODELS[kind]
    query = select(model)
    if q.strip():
        pattern = f"%{q.strip()}%"
        query = query.where(or_(*(column.ilike(pattern) for column in searchable)))
    if status and hasattr(model, "status"):
        query = query.where(model.status == status)
    query = query.order_by(order, model.id)
    return db.paginate(query, page=page, per_page=per_page, error_out=False)


registry.register_form_checks({
    "lot_release_request": check_release_request,
    "change_lots": check_lot_numbers,
})

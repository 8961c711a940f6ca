"""Recalls: the scope and affected list with its consignees, notices with single-use acknowledgment links,
reminders, returns, the effectiveness sample and the figures pages, documents and the dashboard show."""
from __future__ import annotations

import csv
import math
import random
import re
import zipfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from flask import current_app
from sqlalchemy import delete, func, select
from sqlalchemy.orm import selectinload

from app.exceptions import Conflict, FormInvalid, ImportRefused, NotFound, PermissionDenied, ValidationFailed
from app.extensions import db
from app.models import (
    Customer,
    Deadline,
    InstanceLot,
    MaterialLot,
    OutboxMessage,
    ProcessInstance,
    ProductLot,
    RecallConsignee,
    RecallLine,
    SerialNumber,
    Signature,
    User,
)
from app.models.instances import OPEN_STATES
from app.models.types import utcnow
from app.services.evidence import audit
from app.services.evidence.document_rendering import store_document
from app.services.lots import imports, lots, trace
from app.services.lots.identifiers import InvalidCode, parse_code
from app.services.workflow import deadlines, instances, registry, response_links
from app.services.workflow.transaction import atomic

PROCESS_KEY = "recall"
EDIT_GROUPS = ("qa", "qa_management")
LEVELS = ("A", "B", "C", "D", "E")
LEVEL_SHARE = {"A": 1.0, "C": 0.10, "D": 0.02, "E": 0.0}  # B: the plan's percentage (10-100 %)
NOTICE_TEMPLATES = {"distributor": "recall_notice_distributor", "hospital": "recall_notice_hospital",
                    "end_user": "recall_notice_end_user"}
CHECK_METHODS = ("phone", "email", "visit", "acknowledgment")
# The consignee-notification deadline's met_by: met when every notice reached its consignee, not when queued.
NOTICES_DELIVERED = "notices_delivered"

TEXT: dict[str, dict[str, str]] = {
    "en": {
        "complaint": "Complaint", "adverse_event": "Adverse event", "inspection_failure": "Inspection or test failure",
        "regulator_request": "Regulator request", "supplier_notice": "Supplier notice", "other": "Other",
        "recall": "Recall", "correction": "Correction", "field_safety_notice": "Field safety notice",
        "distributor": "Distributor", "hospital": "Hospital", "end_user": "End user",
        "rework": "Rework", "destroy": "Destroy",
        "met": "met", "met_late": "met late", "overdue": "overdue", "pending": "pending",
        "level_A": "A - all consignees (100 %)", "level_B": "B - {percent} % of consignees",
        "level_C": "C - 10 % of consignees", "level_D": "D - 2 % of consignees", "level_E": "E - no check",
        "depth_distributor": "Distributor level", "depth_hospital": "Hospital / retail level",
        "depth_end_user": "User level",
        "threshold_level": "Effectiveness check level", "threshold_contacted": "Consignees contacted",
        "threshold_acknowledged": "Consignees acknowledged", "threshold_recovered": "Units recovered",
        "threshold_met": "met", "threshold_not_met": "not met",
        "status_quarantine": "Quarantine", "status_released": "Released", "status_hold": "On hold",
        "status_recalled": "Recalled", "status_expired": "Expired", "status_scrapped": "Scrapped",
        "status_returned": "Returned", "none": "none", "not_yet": "not yet",
        "language_en": "English", "language_zh-CN": "Chinese",
        "undelivered_no_email": "no e-mail address", "undelivered_queued": "e-mail queued, not sent yet",
        "undelivered_retrying": "mail server not reached yet, retrying",
        "undelivered_failed": "the mail server refused the e-mail", "undelivered_not_sent": "notice not sent",
        "no_justification": "not needed: every threshold is met",
        "justification_at_approval": "to be given and signed with the final approval",
        "not_in_sample": "not in the sample", "effective": "effective", "not_effective": "not effective",
    },
    "zh-CN": {
        "complaint": "投诉", "adverse_event": "不良事件", "inspection_failure": "检验或检测不合格",
        "regulator_request": "监管部门要求", "supplier_notice": "供应商通知", "other": "其他",
        "recall": "召回", "correction": "纠正", "field_safety_notice": "现场安全通知",
        "distributor": "经销商", "hospital": "医疗机构", "end_user": "使用者",
        "rework": "返工", "destroy": "销毁",
        "met": "按时完成", "met_late": "逾期完成", "overdue": "已逾期", "pending": "进行中",
        "level_A": "A - 全部收货方（100%）", "level_B": "B - {percent}% 的收货方",
        "level_C": "C - 10% 的收货方", "level_D": "D - 2% 的收货方", "level_E": "E - 不检查",
        "depth_distributor": "经销商级", "depth_hospital": "医疗机构/零售级", "depth_end_user": "使用者级",
        "threshold_level": "有效性检查级别", "threshold_contacted": "已联系的收货方",
        "threshold_acknowledged": "已确认的收货方", "threshold_recovered": "已召回的产品数量",
        "threshold_met": "已达到", "threshold_not_met": "未达到",
        "status_quarantine": "待验", "status_released": "已放行", "status_hold": "暂控", "status_recalled": "已召回",
        "status_expired": "已过期", "status_scrapped": "已报废", "status_returned": "已退货", "none": "无",
        "language_en": "英文", "language_zh-CN": "中文",
        "undelivered_no_email": "无电子邮件地址", "undelivered_queued": "邮件已排队，尚未发送",
        "undelivered_retrying": "尚未连接到邮件服务器，正在重试",
        "undelivered_failed": "邮件服务器拒收该邮件", "undelivered_not_sent": "通知尚未发出",
        "not_yet": "尚未", "no_justification": "不需要：均已达到要求",
        "justification_at_approval": "在最终批准时填写并签名", "not_in_sample": "未抽中", "effective": "有效",
        "not_effective": "无效",
    },
}

MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        "no_scope": "Name at least one product lot, material lot, sterilization batch, serial number or UDI.",
        "unknown_product_lots": "Unknown product lot(s): {items}.",
        "unknown_material_lots": "Unknown material lot(s): {items}.",
        "unknown_batches": "No lot was sterilized in batch(es): {items}.",
        "unknown_serials": "Unknown serial number(s): {items}.",
        "bad_serial_range": "{item} is not a serial range such as SN0001-SN0050 (at most 100,000 serials).",
        "bad_udi": "This UDI cannot be read: {error}",
        "udi_no_lot": "No lot matches this UDI.",
        "empty": "No product lot is affected: the affected list would be empty.",
        "sample_unchecked": "Level {level} needs {size} checked consignee(s); {missing} of the sample are not "
                            "verified as effective. Record the checks on the recall page or record a justified "
                            "exception.",
        "justification": "Give the justification for the exception.",
        "below_thresholds": "The recall is below the effectiveness thresholds of class {recall_class} ({items}). "
                            "Write the justification for closing it anyway; it is signed with this approval.",
        "not_affected": "Lot {lot} is not on the affected list.",
        "above_returned": "More than the {returned} units of lot {lot} returned to us.",
        "link_invalid": "This acknowledgment link is not valid. Use the latest link you received, or contact the "
                        "manufacturer.",
        "link_used": "This acknowledgment was already submitted; the link can be used only once.",
        "link_expired": "This acknowledgment link has expired. Please contact the manufacturer.",
        "say_received": "Tell whether you received the notice.",
        "whole_number": "Enter a whole number.",
        "not_negative": "Enter a number of at least 0.",
        "above_shipped": "Returned and destroyed together ({total}) exceed the {shipped} shipped of lot {lot}.",
        "contact": "Give a contact name and phone or e-mail.",
        "only_qa": "Only QA can change a recall's records.",
        "closed": "This recall is {status}; its records can no longer change.",
        "reason_needed": "Give the reason for changing the affected list.",
        "name_lots": "Name lots to add or to remove.",
        "frozen": "The notices are out: the affected list is frozen. Start a new recall for more lots.",
        "not_listed": "Not on the affected list: {items}.",
        "not_shipped": "Lot {lot} was not shipped to {customer} in this recall.",
        "negative": "Quantities cannot be negative.",
        "above_lot": "Returned and destroyed of lot {lot} by all consignees together ({total}) would exceed the "
                     "{shipped} units shipped: units a distributor passed on count once, where they are.",
        "above_shipped_to": "Returned and destroyed together ({total}) exceed the {shipped} shipped to {customer} "
                            "of lot {lot}.",
        "unreadable": "The file cannot be read ({kind}): upload an .xlsx file or a CSV file saved as UTF-8.",
        "missing_columns": "Missing column(s): {items}; expected {expected}.",
        "not_whole": "{value} is not a whole number of at least 0.",
        "no_rows": "The file has no rows.",
        "no_consignee": "No consignee {consignee} in recall {recall}.",
        "choose_method": "Choose one of {items}.",
        "say_not_done": "Say what the consignee has not done.",
        "text_needed": "{consignees} read their notice in {language}: write this in {language}.",
        "text_too_short": "Write at least {n} characters.",
        "chinese_in_english": "An English notice carries no Chinese: write this in English.",
    },
    "zh-CN": {
        "no_scope": "请至少填写一个产品批号、物料批号、灭菌批号、序列号或 UDI。",
        "unknown_product_lots": "未知的产品批号：{items}。",
        "unknown_material_lots": "未知的物料批号：{items}。",
        "unknown_batches": "没有批次属于灭菌批号：{items}。",
        "unknown_serials": "未知的序列号：{items}。",
        "bad_serial_range": "{item} 不是有效的序列号范围，例如 SN0001-SN0050（最多 100,000 个）。",
        "bad_udi": "无法识别此 UDI：{error}",
        "udi_no_lot": "没有与此 UDI 对应的批次。",
        "empty": "没有受影响的产品批次：受影响清单将为空。",
        "sample_unchecked": "{level} 级需要检查 {size} 个收货方；抽样中有 {missing} 个尚未确认有效。"
                            "请在召回页面记录检查结果，或记录有理由的例外。",
        "justification": "请填写例外的理由。",
        "below_thresholds": "召回未达到 {recall_class} 级召回的有效性要求（{items}）。如仍要结束召回，请填写理由；"
                            "理由随本次批准一并签名。",
        "not_affected": "批次 {lot} 不在受影响清单中。",
        "above_returned": "超过了批次 {lot} 已退回的 {returned} 件。",
        "link_invalid": "此确认链接无效。请使用您收到的最新链接，或联系生产企业。",
        "link_used": "此回执已提交；该链接只能使用一次。",
        "link_expired": "此确认链接已过期。请联系生产企业。",
        "say_received": "请说明是否已收到召回通知。",
        "whole_number": "请输入整数。",
        "not_negative": "请输入不小于 0 的数。",
        "above_shipped": "退回与销毁数量合计（{total}）超过了批次 {lot} 的发货数量 {shipped}。",
        "contact": "请填写联系人姓名及电话或电子邮件。",
        "only_qa": "只有质量保证人员可以修改召回记录。",
        "closed": "此召回已结束（{status}），其记录不能再修改。",
        "reason_needed": "请填写修改受影响清单的原因。",
        "name_lots": "请填写要添加或移除的批号。",
        "frozen": "召回通知已发出：受影响清单已冻结。如需加入更多批次，请发起新的召回。",
        "not_listed": "不在受影响清单中：{items}。",
        "not_shipped": "本次召回中批次 {lot} 未发往 {customer}。",
        "negative": "数量不能为负数。",
        "above_shipped_to": "退回与销毁数量合计（{total}）超过了批次 {lot} 发往 {customer} 的数量 {shipped}。",
        "above_lot": "所有收货方合计退回与销毁批次 {lot} 的数量（{total}）将超过发货数量 {shipped}："
                     "经销商转发的产品只在其所在处计一次。",
        "unreadable": "无法读取该文件（{kind}）：请上传 .xlsx 文件或以 UTF-8 保存的 CSV 文件。",
        "missing_columns": "缺少列：{items}；应包含 {expected}。",
        "not_whole": "{value} 不是不小于 0 的整数。",
        "no_rows": "文件中没有数据行。",
        "no_consignee": "召回 {recall} 中没有收货方 {consignee}。",
        "choose_method": "请选择其中之一：{items}。",
        "say_not_done": "请说明收货方未执行的事项。",
        "text_needed": "{consignees} 以{language}阅读召回通知：请用{language}填写此项。",
        "text_too_short": "请至少填写 {n} 个字符。",
        "chinese_in_english": "英文通知中不得出现中文：请用英文填写此项。",
    },
}

_SERIAL_RANGE = re.compile(r"^(?P<prefix>.*?)(?P<first>\d+)\s*-\s*(?P=prefix)(?P<last>\d+)$")
_MAX_RANGE = 100_000


def _msg(lang: str, key: str, **values: Any) -> str:
    return MESSAGES["zh-CN" if lang == "zh-CN" else "en"][key].format(**values)


def _text(lang: str, key: str, **values: Any) -> str:
    table = TEXT["zh-CN" if lang == "zh-CN" else "en"]
    return table.get(key, key).format(**values) if key else ""


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


# --- the affected list -------------------------------------------------------------------------------------------

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


def _recall_instance(instance_id: int, *, lock: bool = False) -> ProcessInstance:
    query = instances.of_process(select(ProcessInstance), PROCESS_KEY).where(ProcessInstance.id == instance_id)
    if lock:
        query = query.with_for_update(of=ProcessInstance)
    instance = db.session.scalar(query)
    if instance is None:
        raise NotFound(f"No recall {instance_id}.")
    return instance


def can_edit(actor: User) -> bool:
    """Tell whether actor may change a recall's records (QA workers and admins)."""
    return actor.has_role(*instances.WORKER_ROLES) and (
        actor.has_role("admin") or bool(set(actor.group_names) & set(EDIT_GROUPS)))


def _require_qa(actor: User, lang: str = "en") -> None:
    instances.require_worker(actor)
    if not can_edit(actor):
        raise PermissionDenied(_msg(lang, "only_qa"))


def _require_open(instance: ProcessInstance, lang: str = "en") -> None:
    if instance.status not in OPEN_STATES:
        raise Conflict(_msg(lang, "closed", status=instance.status))


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


def _affected_lots(instance_id: int) -> list[ProductLot]:
    return list(db.session.scalars(
        select(ProductLot).join(InstanceLot, InstanceLot.product_lot_id == ProductLot.id)
        .where(InstanceLot.instance_id == instance_id, InstanceLot.role == "affected")
        .options(selectinload(ProductLot.product)).order_by(ProductLot.lot_number)))


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


# --- notices, acknowledgments, reminders -------------------------------------------------------------------------

@dataclass(frozen=True)
class NoticeOptions:
    """What the person preparing the notices decided, and where the files and links come from."""

    templates_dir: Path
    base_url: str
    ack_days: int = 30
    forward_request: bool = False
    instructions: str = ""  # one text for every consignee: only a recall started on an earlier procedure version
    contact: str = ""
    company: dict[str, str] = field(default_factory=dict)
    # The free text a consignee reads, per language ("en", "zh-CN") and NOTICE_TEXTS name.
    texts: dict[str, dict[str, str]] = field(default_factory=dict)

    def text(self, language: str, name: str) -> str:
        """Return the notice text `name` written in a consignee's language (the earlier single text if none)."""
        written = str((self.texts.get(language) or {}).get(name) or "").strip()
        return written or {"instructions": self.instructions, "contact": self.contact}.get(name, "")


# Free text a notice carries, with the notice form's field (suffixed per language) and its minimum length.
NOTICE_TEXTS = {"reason": ("reason", 10), "instructions": ("instructions", 10), "contact": ("notice_contact", 3)}
LANGUAGE_SUFFIX = {"en": "en", "zh-CN": "zh"}
_CHINESE = re.compile(r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]")


def consignee_languages(instance_id: int) -> dict[str, list[str]]:
    """Return the languages a recall's consignees read their notice in, each with the consignees' codes."""
    languages: dict[str, list[str]] = {}
    for language, code in db.session.execute(
            select(RecallConsignee.language, Customer.code).join(Customer, Customer.id == RecallConsignee.customer_id)
            .where(RecallConsignee.instance_id == instance_id).order_by(Customer.code)):
        languages.setdefault(language if language in LANGUAGE_SUFFIX else "en", []).append(code)
    return languages


def check_notice_languages(instance: ProcessInstance | None, data: dict[str, Any], lang: str,
                           ) -> dict[str, list[str]]:
    """Form check for the notices: every text in each language the recall's consignees read, and no Chinese in
    an English text (an English notice never carries Chinese)."""
    errors: dict[str, list[str]] = {}
    for form_field, _ in NOTICE_TEXTS.values():
        if _CHINESE.search(str(data.get(f"{form_field}_en") or "")):
            errors[f"{form_field}_en"] = [_msg(lang, "chinese_in_english")]
    if instance is None:
        return errors
    for language, codes in consignee_languages(instance.id).items():
        suffix = LANGUAGE_SUFFIX[language]
        readers = ", ".join(codes[:5]) + (" …" if len(codes) > 5 else "")
        for form_field, minimum in NOTICE_TEXTS.values():
            key = f"{form_field}_{suffix}"
            text = str(data.get(key) or "").strip()
            if key in errors:
                continue
            if not text:
                errors[key] = [_msg(lang, "text_needed", consignees=readers,
                                    language=_text(lang, f"language_{language}"))]
            elif len(text) < minimum:
                errors[key] = [_msg(lang, "text_too_short", n=minimum)]
    return errors


def _new_link(consignee: RecallConsignee, options: NoticeOptions, now: datetime) -> str:
    token = response_links.issue(consignee, now + timedelta(days=options.ack_days))
    return f"{options.base_url.rstrip('/')}/ack/{token}"


def _notice_mail(consignee: RecallConsignee, product: str, link: str, expires: date, reminder: bool) -> tuple[str, str]:
    name = consignee.customer.name
    if consignee.language == "zh-CN":
        subject = ("提醒：" if reminder else "紧急：") + f"医疗器械召回通知 - {product}"
        body = (f"{name}：\n\n" + ("您尚未确认收到我们的召回通知。" if reminder else "")
                + f"我们正在召回 {product} 的部分批次，您单位曾收到受影响的产品。请立即停止使用和销售，"
                  f"隔离库存，并按附件《召回通知》办理。\n\n请在 {expires.isoformat()} 前通过以下链接确认收到并填写"
                  f"库存和退回数量（链接仅可使用一次）：\n{link}\n")
    else:
        subject = ("Reminder: " if reminder else "Urgent: ") + f"medical device recall - {product}"
        body = (f"Dear {name},\n\n" + ("We have not yet received your acknowledgment of our recall notice. "
                                       if reminder else "")
                + f"We are recalling lots of {product} that you received. Stop using and distributing them, "
                  f"quarantine your stock and follow the attached recall notice.\n\nPlease confirm receipt and "
                  f"report stock on hand and quantities returned by {expires.isoformat()} at this single-use "
                  f"link:\n{link}\n")
    return subject, body


def notice_kind(consignee: RecallConsignee) -> str:
    """Name each consignee's notice as its own document (a gate signs every one), by customer code when it
    can name a file."""
    code = consignee.customer.code
    return f"recall_notice_{code}" if re.fullmatch(r"\w+", code, re.ASCII) else f"recall_notice_{consignee.id}"


def send_notices(instance: ProcessInstance, options: NoticeOptions, now: datetime, *,
                 data: dict[str, Any] | None = None, task_spiff_id: str = "", element_id: str = "") -> dict[str, int]:
    """Render one notice per consignee (template by consignee type and language), queue it with its
    acknowledgment link; consignees already notified are skipped, so a retry sends nothing twice."""
    view = recall_view(instance.id)
    queued = without_email = 0
    for consignee in view.consignees:
        if consignee.notified_at is not None:
            continue
        link = _new_link(consignee, options, now)
        context = document_context(instance, now, consignee.language, data=data, view=view, company=options.company)
        context["generated_at"] = now.isoformat(timespec="seconds")  # the notice's date
        context["consignee"] = _consignee_dict(consignee, consignee.language, with_lines=True)
        # Free text in the consignee's language only (the form asked for every language the consignees read).
        recall = context["recall"]
        context["notice"] = {"ack_url": link, "ack_expires_on": consignee.token_expires_at.date().isoformat(),
                             "forward_request": options.forward_request and consignee.customer.kind == "distributor",
                             "reason": (options.text(consignee.language, "reason") or recall.get("hazard")
                                        or recall.get("description")),
                             "instructions": options.text(consignee.language, "instructions"),
                             "contact": options.text(consignee.language, "contact")}
        kind = consignee.customer.kind if consignee.customer.kind in NOTICE_TEMPLATES else "end_user"
        document = store_document(instance, templates_dir=options.templates_dir, template=NOTICE_TEMPLATES[kind],
                                  kind=notice_kind(consignee), language=consignee.language, context=context, now=now,
                                  task_spiff_id=task_spiff_id or None, element_id=element_id or None)
        consignee.notice_document_id = document.id
        consignee.notified_at = now
        if consignee.customer.email:
            subject, body = _notice_mail(consignee, context["recall"]["product"]["name"], link,
                                         consignee.token_expires_at.date(), reminder=False)
            consignee.message = OutboxMessage(
                idempotency_key=f"recall-notice:{instance.id}:{consignee.id}", recipients=consignee.customer.email,
                subject=subject, body=body, instance_id=instance.id, created_at=now, next_attempt_at=now,
                attachment_document_id=document.id)
            queued += 1
        else:
            without_email += 1
        audit.record(None, "recall.notice_queued", "recall_consignee", consignee.id, instance_id=instance.id,
                     at=now, new={"customer": consignee.customer.code, "document": document.filename,
                                  "language": consignee.language, "email": consignee.customer.email or None,
                                  "expires_at": consignee.token_expires_at.isoformat()})
    db.session.flush()
    return {"queued": queued, "without_email": without_email, "consignees": len(view.consignees)}


def send_reminders(instance: ProcessInstance, options: NoticeOptions, after_days: int, now: datetime,
                   run_key: str) -> int:
    """Remind consignees who have not acknowledged within after_days of their notice (or last reminder).

    Each reminder carries a new link (only hashes are stored, so the old one cannot be resent); it replaces
    the earlier link. run_key makes a retried timer run queue nothing twice.
    """
    view = recall_view(instance.id)
    due = now - timedelta(days=after_days)
    sent = 0
    for consignee in view.consignees:
        last = consignee.last_reminded_at or consignee.notified_at
        if (consignee.acknowledged_at is not None or last is None or last > due or not consignee.customer.email
                or db.session.scalar(select(OutboxMessage.id).where(
                    OutboxMessage.idempotency_key == f"{run_key}:{consignee.id}"))):
            continue
        link = _new_link(consignee, options, now)
        subject, body = _notice_mail(consignee, view.product_name, link, consignee.token_expires_at.date(),
                                     reminder=True)
        db.session.add(OutboxMessage(
            idempotency_key=f"{run_key}:{consignee.id}", recipients=consignee.customer.email, subject=subject,
            body=body, instance_id=instance.id, created_at=now, next_attempt_at=now,
            attachment_document_id=consignee.notice_document_id))
        consignee.reminders += 1
        consignee.last_reminded_at = now
        audit.record(None, "recall.reminder_queued", "recall_consignee", consignee.id, instance_id=instance.id,
                     at=now, new={"customer": consignee.customer.code, "reminder": consignee.reminders})
        sent += 1
    return sent


def consignee_for_token(token: str, now: datetime | None = None) -> RecallConsignee:
    """Return the consignee a link belongs to; forged links are 404, used ones 409, expired ones 410
    (the latter two in the consignee's language)."""
    return response_links.find(RecallConsignee, token, answered_at="acknowledged_at", now=now or utcnow(),
                               message=_msg, options=[selectinload(RecallConsignee.lines)])


def link_language(token: str) -> str | None:
    """Return the language of the consignee a link was sent to (also once used or expired), None if forged."""
    return response_links.language(RecallConsignee, token)


def _int(value: Any, name: str, errors: dict[str, list[str]], lang: str) -> int | None:
    if value in (None, ""):
        return None
    try:
        number = int(str(value).strip())
    except ValueError:
        errors.setdefault(name, []).append(_msg(lang, "whole_number"))
        return None
    if number < 0:
        errors.setdefault(name, []).append(_msg(lang, "not_negative"))
    return number


def acknowledge(token: str, answers: dict[str, Any], now: datetime | None = None) -> RecallConsignee:
    """Record a consignee's answer from the public page: received, stock on hand, returned/destroyed per lot."""
    now = now or utcnow()
    with atomic():
        consignee = consignee_for_token(token, now)
        db.session.refresh(consignee, with_for_update=True)  # a second submit of the same link waits, then fails
        if consignee.acknowledged_at is not None:
            raise Conflict(_msg(consignee.language, "link_used"))
        errors: dict[str, list[str]] = {}
        lang = consignee.language
        received = answers.get("received")
        if received not in (True, False):
            errors["received"] = [_msg(lang, "say_received")]
        on_hand = _int(answers.get("on_hand"), "on_hand", errors, lang)
        quantities = {}
        for line in consignee.lines:
            returned = _int(answers.get(f"returned_{line.id}"), f"returned_{line.id}", errors, lang) or 0
            destroyed = _int(answers.get(f"destroyed_{line.id}"), f"destroyed_{line.id}", errors, lang) or 0
            if returned + destroyed > line.quantity_shipped:
                errors.setdefault(f"returned_{line.id}", []).append(_msg(
                    lang, "above_shipped", total=returned + destroyed, shipped=line.quantity_shipped,
                    lot=line.product_lot.lot_number))
            elif problem := _above_lot(line, returned + destroyed, lang):
                errors.setdefault(f"returned_{line.id}", []).append(problem)
            quantities[line.id] = (returned, destroyed)
        contact = str(answers.get("contact") or "").strip()
        if not contact:
            errors["contact"] = [_msg(lang, "contact")]
        if errors:
            raise FormInvalid(errors)
        consignee.acknowledged_at = now
        consignee.ack_received, consignee.ack_on_hand = received, on_hand
        consignee.ack_contact, consignee.ack_comment = contact[:200], str(answers.get("comment") or "")[:4000]
        consignee.ack_forwarded = answers.get("forwarded") if consignee.customer.kind == "distributor" else None
        consignee.token_expires_at = now  # single use: the link stops working now
        for line in consignee.lines:
            line.quantity_returned, line.quantity_destroyed = quantities[line.id]
        audit.record(None, "recall.acknowledged", "recall_consignee", consignee.id,
                     instance_id=consignee.instance_id, at=now, actor_name=f"consignee {consignee.customer.code}",
                     new={"received": received, "on_hand": on_hand, "contact": contact,
                          "returned": {line.product_lot.lot_number: quantities[line.id][0] for line in consignee.lines},
                          "destroyed": {line.product_lot.lot_number: quantities[line.id][1]
                                        for line in consignee.lines}})
        meet_notice_deadline(consignee.instance_id, now)
    return consignee


# --- returns and effectiveness checks -----------------------------------------------------------------------------

def _line(instance_id: int, customer_code: str, lot_number: str) -> RecallLine | None:
    return db.session.scalar(
        select(RecallLine).join(RecallConsignee).join(Customer, Customer.id == RecallConsignee.customer_id)
        .join(ProductLot, ProductLot.id == RecallLine.product_lot_id)
        .where(RecallLine.instance_id == instance_id, Customer.code == customer_code,
               ProductLot.lot_number == lot_number))


def _above_lot(line: RecallLine, recovered: int, lang: str) -> str | None:
    """Refuse a line's returns that would bring its lot's recovered units above the units shipped."""
    lines = db.session.scalars(select(RecallLine).where(RecallLine.instance_id == line.instance_id,
                                                        RecallLine.product_lot_id == line.product_lot_id)).all()
    shipped = sum(other.quantity_held for other in lines)
    total = recovered + sum(other.quantity_returned + other.quantity_destroyed for other in lines
                            if other.id != line.id)
    if total > shipped:
        return _msg(lang, "above_lot", total=total, shipped=shipped, lot=line.product_lot.lot_number)
    return None


def _set_return(line: RecallLine, returned: int, destroyed: int, lang: str = "en") -> str | None:
    if returned < 0 or destroyed < 0:
        return _msg(lang, "negative")
    if returned + destroyed > line.quantity_shipped:
        return _msg(lang, "above_shipped_to", total=returned + destroyed, shipped=line.quantity_shipped,
                    customer=line.consignee.customer.code, lot=line.product_lot.lot_number)
    if problem := _above_lot(line, returned + destroyed, lang):
        return problem
    line.quantity_returned, line.quantity_destroyed = returned, destroyed
    return None


def record_return(instance_id: int, customer_code: str, lot_number: str, returned: int, destroyed: int,
                  actor: User, now: datetime | None = None, lang: str = "en") -> RecallLine:
    """Set the quantity returned and destroyed of one lot at one consignee (totals so far, not increments)."""
    now = now or utcnow()
    with atomic():
        _require_qa(actor, lang)
        _require_open(_recall_instance(instance_id, lock=True), lang)
        line = _line(instance_id, customer_code, lot_number)
        if line is None:
            raise FormInvalid({"lot": [_msg(lang, "not_shipped", lot=lot_number, customer=customer_code)]})
        old = {"returned": line.quantity_returned, "destroyed": line.quantity_destroyed}
        if problem := _set_return(line, returned, destroyed, lang):
            raise FormInvalid({"returned": [problem]})
        audit.record(actor, "recall.return_recorded", "recall_line", line.id, instance_id=instance_id, at=now,
                     old=old, new={"customer": customer_code, "lot": lot_number, "returned": returned,
                                   "destroyed": destroyed})
    return line


RETURN_COLUMNS = ("customer", "lot", "returned", "destroyed")


@contextmanager
def _readable_table(path: Path, lang: str = "en") -> Iterator[tuple[list[str], Iterator[tuple[int, dict]]]]:
    """Read a CSV or XLSX file like imports.read_table; a file that cannot be read is refused, not a server error."""
    try:
        with imports.read_table(path) as table:
            yield table
    except (UnicodeDecodeError, zipfile.BadZipFile, csv.Error) as err:
        raise ValidationFailed(_msg(lang, "unreadable", kind=err.__class__.__name__)) from err


def import_returns(instance_id: int, path: Path, actor: User, now: datetime | None = None, lang: str = "en") -> int:
    """Import returned/destroyed quantities (columns customer, lot, returned, destroyed): all rows or none."""
    now = now or utcnow()
    with atomic():
        _require_qa(actor, lang)
        _require_open(_recall_instance(instance_id, lock=True), lang)
        errors: list[dict[str, Any]] = []
        count = 0
        with _readable_table(path, lang) as (header, rows):
            if missing := [c for c in RETURN_COLUMNS[:3] if c not in header]:
                raise ValidationFailed(_msg(lang, "missing_columns", items=", ".join(missing),
                                            expected=", ".join(RETURN_COLUMNS)))
            for line_no, row in rows:
                def refuse(column: str, message: str, line_no: int = line_no) -> None:
                    errors.append({"line": line_no, "column": column, "message": message})

                numbers = {}
                for column in ("returned", "destroyed"):
                    raw = str(row.get(column) or "0").strip()
                    if not raw.isdigit():
                        refuse(column, _msg(lang, "not_whole", value=repr(raw)))
                    numbers[column] = int(raw) if raw.isdigit() else 0
                line = _line(instance_id, str(row.get("customer") or "").strip(), str(row.get("lot") or "").strip())
                if line is None:
                    refuse("lot", _msg(lang, "not_shipped", lot=repr(row.get("lot")),
                                       customer=repr(row.get("customer"))))
                    continue
                old = {"returned": line.quantity_returned, "destroyed": line.quantity_destroyed}
                if problem := _set_return(line, numbers["returned"], numbers["destroyed"], lang):
                    refuse("returned", problem)
                    continue
                audit.record(actor, "recall.return_recorded", "recall_line", line.id, instance_id=instance_id,
                             at=now, old=old, new={"customer": line.consignee.customer.code,
                                                   "lot": line.product_lot.lot_number, **numbers},
                             reason=f"import {path.name}")
                count += 1
        if errors:
            raise ImportRefused(errors[:200], len(errors))
        if not count:
            raise ValidationFailed(_msg(lang, "no_rows"))
    return count


def sample_size(level: str, population: int, b_percent: int = 50) -> int:
    """How many consignees an effectiveness check at level A-E contacts (at least one unless E)."""
    if level not in LEVELS:
        raise ValidationFailed(f"Unknown effectiveness level {level!r}; use one of {', '.join(LEVELS)}.")
    share = b_percent / 100 if level == "B" else LEVEL_SHARE[level]
    if not population or share == 0:
        return 0
    return min(population, max(1, math.ceil(population * share)))


def draw_sample(instance_id: int, level: str, b_percent: int, now: datetime) -> list[RecallConsignee]:
    """Draw the check sample from the consignee list (seeded by the instance, so a retry draws the same)."""
    consignees = recall_view(instance_id).consignees
    if any(c.in_sample for c in consignees):
        return [c for c in consignees if c.in_sample]
    size = sample_size(level, len(consignees), b_percent)
    chosen = random.Random(instance_id).sample(consignees, size)
    for consignee in chosen:
        consignee.in_sample = True
    audit.record(None, "recall.sample_drawn", "instance", instance_id, instance_id=instance_id, at=now,
                 new={"level": level, "population": len(consignees), "sample": sorted(c.customer.code for c in chosen)})
    return chosen


def record_check(instance_id: int, consignee_id: int, *, method: str, effective: bool, note: str, actor: User,
                 now: datetime | None = None, lang: str = "en") -> RecallConsignee:
    """Record the effectiveness check of one consignee (contacted how, did it act on the notice)."""
    now = now or utcnow()
    with atomic():
        _require_qa(actor, lang)
        _require_open(_recall_instance(instance_id, lock=True), lang)
        consignee = db.session.get(RecallConsignee, consignee_id)
        if consignee is None or consignee.instance_id != instance_id:
            raise NotFound(_msg(lang, "no_consignee", consignee=consignee_id, recall=instance_id))
        if method not in CHECK_METHODS:
            raise FormInvalid({"method": [_msg(lang, "choose_method", items=", ".join(CHECK_METHODS))]})
        if not effective and not note.strip():
            raise FormInvalid({"note": [_msg(lang, "say_not_done")]})
        old = {"method": consignee.check_method or None, "effective": consignee.check_effective}
        consignee.checked_at, consignee.check_method, consignee.check_effective = now, method, effective
        consignee.check_note, consignee.checked_by_id = note.strip()[:4000], actor.id
        audit.record(actor, "recall.check_recorded", "recall_consignee", consignee.id, instance_id=instance_id,
                     at=now, old=old, new={"customer": consignee.customer.code, "method": method,
                                           "effective": effective, "in_sample": consignee.in_sample})
        meet_notice_deadline(instance_id, now)
    return consignee


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


def check_effectiveness(instance: ProcessInstance | None, data: dict[str, Any], lang: str) -> dict[str, list[str]]:
    """Form check for the effectiveness gate: "met" needs every sampled consignee verified; an exception a reason."""
    if instance is None:
        return {}
    if data.get("outcome") == "exception":
        return {} if str(data.get("justification") or "").strip() else {"justification": [_msg(lang, "justification")]}
    result = recall_view(instance.id).effectiveness
    if result.met:
        return {}
    return {"outcome": [_msg(lang, "sample_unchecked", level=result.level or "?", size=result.sample_size,
                             missing=result.sample_size - result.effective)]}


def check_disposition(instance: ProcessInstance | None, data: dict[str, Any], lang: str) -> dict[str, list[str]]:
    """Form check for the disposition: only affected lots, and no more per lot than was returned to us."""
    if instance is None:
        return {}
    returned = {row.lot.lot_number: row.quantity_returned for row in recall_view(instance.id).lots}
    errors: dict[str, list[str]] = {}
    totals: dict[str, int] = {}
    for index, row in enumerate(data.get("disposition") or []):
        number = str(row.get("lot_number") or "")
        if number not in returned:
            errors[f"disposition.{index}.lot_number"] = [_msg(lang, "not_affected", lot=number)]
            continue
        totals[number] = totals.get(number, 0) + int(row.get("quantity") or 0)
        if totals[number] > returned[number]:
            errors[f"disposition.{index}.quantity"] = [_msg(lang, "above_returned", lot=number,
                                                             returned=returned[number])]
    return errors


def check_final_approval(instance: ProcessInstance | None, data: dict[str, Any], lang: str) -> dict[str, list[str]]:
    """Form check for the final approval: closing below the class's effectiveness thresholds needs a justification."""
    if instance is None or data.get("decision") != "approve":
        return {}
    unmet = [t for t in recall_view(instance.id).thresholds if not t.met]
    if not unmet or str(data.get("closing_justification") or "").strip():
        return {}
    items = "; ".join(f"{_text(lang, f'threshold_{t.name}')} {t.actual} < {t.required}" for t in unmet)
    return {"closing_justification": [_msg(lang, "below_thresholds", items=items,
                                           recall_class=(instance.data or {}).get("recall_class", ""))]}


# --- what pages, the API, documents and the dashboard show ---------------------------------------------------------

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


def delivered(consignee: RecallConsignee) -> bool:
    """Tell whether a consignee's notice reached it: the mail server accepted the e-mail, the consignee
    acknowledged, or an effectiveness check found it acted on the notice (a notice sent on paper)."""
    return consignee.notified_at is not None and (
        consignee.acknowledged_at is not None or bool(consignee.check_effective)
        or (consignee.message is not None and consignee.message.status == "sent"))


def meet_notice_deadline(instance_id: int, now: datetime) -> bool:
    """Meet the consignee-notification deadline once every consignee's notice was delivered; tell whether it is."""
    view = recall_view(instance_id)
    if not view.consignees or any(not delivered(c) for c in view.consignees):
        return False
    deadlines.mark_met(instance_id, [NOTICES_DELIVERED], now)
    return True


def undelivered_reason(consignee: RecallConsignee, lang: str) -> str:
    """Say why a consignee's notice has not reached it, in lang (the states the recall workspace shows), with
    the mail server's last answer."""
    message = consignee.message
    if consignee.notified_at is None:
        return _text(lang, "undelivered_not_sent")
    if message is None:
        return _text(lang, "undelivered_no_email")
    state = "failed" if message.status == "failed" else "retrying" if message.attempts else "queued"
    return _text(lang, f"undelivered_{state}") + (f" ({message.last_error})" if message.last_error else "")


def escalate_undelivered(instance_id: int, key: str, now: datetime) -> list[RecallConsignee]:
    """At the consignee-notification deadline: return the consignees whose notice has not reached them (none
    when the deadline is met); when there are any, the deadline is marked escalated and the list audited."""
    deadline = db.session.scalar(select(Deadline).where(Deadline.instance_id == instance_id, Deadline.key == key))
    if deadline is None or deadline.met_at is not None:
        return []
    missing = [c for c in recall_view(instance_id).consignees if not delivered(c)]
    if missing:  # a late preparation may have escalated the deadline already: this escalation names who is missing
        deadline.escalated_at = deadline.escalated_at or now
        audit.record(None, "deadline.escalated", "deadline", key, instance_id=instance_id, at=now,
                     new={"due_at": deadline.due_at.isoformat(), "undelivered": [c.customer.code for c in missing]})
    return missing


def notice_delivered(message: OutboxMessage, now: datetime) -> None:
    """Record that the mail server accepted a recall notice's e-mail (the outbox calls this when it sends one)."""
    consignee = db.session.scalar(select(RecallConsignee).where(RecallConsignee.outbox_message_id == message.id))
    if consignee is None:
        return
    audit.record(None, "recall.notice_delivered", "recall_consignee", consignee.id, instance_id=consignee.instance_id,
                 at=now, new={"customer": consignee.customer.code, "email": message.recipients})
    meet_notice_deadline(consignee.instance_id, now)


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


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


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


def start_recall(actor: User, *, lot_id: int | None = None, capa_instance_id: int | None = None,
                 now: datetime | None = None) -> ProcessInstance:
    """Start a recall from a product lot's page or from a CAPA, with the trigger form filled from it."""
    data: dict[str, Any] = {}
    if lot_id is not None:
        lot = lots.get_lot("product", lot_id)
        data = {"product_lots": lot.lot_number, "source": "inspection_failure"}
        title = f"Recall: lot {lot.lot_number}"
    elif capa_instance_id is not None:
        capa = instances.get_instance(capa_instance_id)
        capa_lots = [lot.lot_number for lot in db.session.scalars(
            select(ProductLot).join(InstanceLot, InstanceLot.product_lot_id == ProductLot.id)
            .where(InstanceLot.instance_id == capa.id))]
        data = {"product_lots": ", ".join(capa_lots) or capa.data.get("lot_numbers", ""),
                "source": "inspection_failure" if capa_lots else "other", "capa_instance_id": capa.id,
                "description": capa.data.get("description", "")}
        title = f"Recall from {capa.title}"[:300]
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


registry.on_delivery(notice_delivered)
registry.register_form_checks({
    "recall_trigger": check_trigger,
    "recall_effectiveness": check_effectiveness,
    "recall_disposition": check_disposition,
    "recall_final_approval": check_final_approval,
    "recall_notice_languages": check_notice_languages,
})

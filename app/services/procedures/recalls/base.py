"""What every part of the recall shares: the procedure's constants, its messages in both languages, the
checks that a recall exists, is open and is edited by QA, and the small rules several parts apply (a notice
delivered, returns within the units shipped)."""
from __future__ import annotations

from typing import Any

from flask_babel import gettext
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app.exceptions import Conflict, NotFound, PermissionDenied
from app.extensions import db
from app.models import (
    InstanceLot,
    ProcessInstance,
    ProductLot,
    RecallConsignee,
    RecallLine,
    User,
)
from app.models.instances import OPEN_STATES
from app.services.workflow import instances

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
        "too_large": "Enter a number of at most {limit}.",
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
        "too_large": "请输入不大于 {limit} 的数。",
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


def _msg(lang: str, key: str, **values: Any) -> str:
    return MESSAGES["zh-CN" if lang == "zh-CN" else "en"][key].format(**values)


def _text(lang: str, key: str, **values: Any) -> str:
    table = TEXT["zh-CN" if lang == "zh-CN" else "en"]
    return table.get(key, key).format(**values) if key else ""


def _recall_instance(instance_id: int, *, lock: bool = False) -> ProcessInstance:
    query = instances.of_process(select(ProcessInstance), PROCESS_KEY).where(ProcessInstance.id == instance_id)
    if lock:
        query = query.with_for_update(of=ProcessInstance)
    instance = db.session.scalar(query)
    if instance is None:
        raise NotFound(gettext("No recall %(id)s.", id=instance_id))
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


def _affected_lots(instance_id: int) -> list[ProductLot]:
    return list(db.session.scalars(
        select(ProductLot).join(InstanceLot, InstanceLot.product_lot_id == ProductLot.id)
        .where(InstanceLot.instance_id == instance_id, InstanceLot.role == "affected")
        .options(selectinload(ProductLot.product)).order_by(ProductLot.lot_number)))


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


def delivered(consignee: RecallConsignee) -> bool:
    """Tell whether a consignee's notice reached it: the mail server accepted the e-mail, the consignee
    acknowledged, or an effectiveness check found it acted on the notice (a notice sent on paper)."""
    return consignee.notified_at is not None and (
        consignee.acknowledged_at is not None or bool(consignee.check_effective)
        or (consignee.message is not None and consignee.message.status == "sent"))


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"

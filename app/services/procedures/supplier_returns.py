"""Supplier returns: nonconforming material lots quarantined, corrective action requests (SCAR) sent to the
supplier with single-use response links, the supplier's answer and our verification, the GSP return record,
the approved-supplier status, and what the workspace, the API and the documents show."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from flask_babel import gettext
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app.exceptions import Conflict, FormInvalid, NotFound, ValidationFailed
from app.extensions import db
from app.models import (
    Deadline,
    Inspection,
    InstanceLot,
    MaterialLot,
    OutboxMessage,
    ProcessInstance,
    ScarRequest,
    Signature,
    Supplier,
    SupplierReturn,
    Task,
    User,
)
from app.models.lots import SUPPLIER_STATUSES
from app.models.suppliers import VERIFICATION_RESULTS
from app.models.types import utcnow
from app.services.evidence import audit
from app.services.evidence.document_rendering import store_document
from app.services.lots import lots
from app.services.workflow import calendars, deadlines, instances, plant_time, registry, response_links, titles
from app.services.workflow.transaction import atomic

PROCESS_KEY = "supplier_return"
LOT_ROLE = "returned"
# Statuses a material lot is not quarantined from; an expired lot is locked already, a scrapped or returned one
# is gone.
LOCKED_STATUSES = ("expired", "scrapped", "returned")

TEXT: dict[str, dict[str, str]] = {
    "en": {
        "incoming_inspection": "Incoming inspection", "complaint": "Complaint", "trace": "Trace / investigation",
        "production": "Found in production", "other": "Other",
        "critical": "Critical", "major": "Major", "minor": "Minor",
        "approved": "approved", "conditional": "conditional", "suspended": "suspended",
        "accepted": "accepted", "rejected": "rejected",
        "status_quarantine": "Quarantine", "status_released": "Released", "status_hold": "On hold",
        "status_recalled": "Recalled", "status_expired": "Expired", "status_scrapped": "Scrapped",
        "status_returned": "Returned",
    },
    "zh-CN": {
        "incoming_inspection": "进货检验", "complaint": "投诉", "trace": "追溯/调查", "production": "生产中发现",
        "other": "其他", "critical": "严重", "major": "主要", "minor": "次要",
        "approved": "合格", "conditional": "有条件合格", "suspended": "暂停采购",
        "accepted": "接受", "rejected": "不接受",
        "status_quarantine": "待验", "status_released": "已放行", "status_hold": "暂控", "status_recalled": "已召回",
        "status_expired": "已过期", "status_scrapped": "已报废", "status_returned": "已退货",
    },
}

MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        "no_lots": "Name at least one material lot.",
        "unknown_lots": "Unknown material lot(s): {items}.",
        "ambiguous": "Lot {lot} exists for several materials ({materials}); start one return per material.",
        "scrapped": "Material lot {lot} is scrapped: there is nothing left to return.",
        "returned": "Material lot {lot} was already returned to its supplier.",
        "several_suppliers": "The lots come from several suppliers ({items}); start one return per supplier.",
        "open_return": "Material lot {lot} is already in supplier return #{instance}.",
        "not_in_return": "Lot {lot} is not one of this return's lots ({items}).",
        "listed_twice": "Lot {lot} is listed twice.",
        "no_response": "The supplier has not answered {number} yet (due {due}). Wait for the answer, or remind "
                       "the supplier.",
        "link_invalid": "This response link is not valid. Use the latest link you received, or contact us.",
        "link_used": "This corrective action response was already submitted; the link can be used only once.",
        "link_expired": "This response link has expired. Please contact us for a new one.",
        "required": "This field is required.",
        "too_short": "Enter at least {n} characters.",
        "bad_date": "Enter a date as YYYY-MM-DD.",
    },
    "zh-CN": {
        "no_lots": "请至少填写一个物料批号。",
        "unknown_lots": "未知的物料批号：{items}。",
        "ambiguous": "批号 {lot} 对应多个物料（{materials}）；请按物料分别发起退货。",
        "scrapped": "物料批次 {lot} 已报废，无可退回之物。",
        "returned": "物料批次 {lot} 已退回供应商。",
        "several_suppliers": "这些批次来自多个供应商（{items}）；请按供应商分别发起退货。",
        "open_return": "物料批次 {lot} 已在供应商退货 #{instance} 中。",
        "not_in_return": "批次 {lot} 不属于本次退货（{items}）。",
        "listed_twice": "批次 {lot} 重复填写。",
        "no_response": "供应商尚未答复 {number}（期限 {due}）。请等待答复或提醒供应商。",
        "link_invalid": "此答复链接无效。请使用您收到的最新链接，或与我们联系。",
        "link_used": "此纠正措施答复已提交；该链接只能使用一次。",
        "link_expired": "此答复链接已过期。请与我们联系获取新链接。",
        "required": "此项为必填项。",
        "too_short": "请至少输入 {n} 个字符。",
        "bad_date": "请输入日期，格式为 YYYY-MM-DD。",
    },
}


def _lang(lang: str) -> str:
    return "zh-CN" if lang == "zh-CN" else "en"


def _msg(lang: str, key: str, **values: Any) -> str:
    return MESSAGES[_lang(lang)][key].format(**values)


def _text(lang: str, key: str) -> str:
    return TEXT[_lang(lang)].get(key, key) if key else ""


def _iso(value: date | datetime | None) -> str:
    if value is None:
        return ""
    return value.isoformat(timespec="seconds") if isinstance(value, datetime) else value.isoformat()


# --- the lots of a return ---------------------------------------------------------------------------------------------

@dataclass
class LotSelection:
    """Material lots named by a form, resolved, with a message per problem."""

    lots: list[MaterialLot] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def resolve_lots(value: Any, lang: str = "en", exclude_instance_id: int | None = None) -> LotSelection:
    """Resolve material lot numbers: every lot exists, is unambiguous, not scrapped, from one supplier, and
    not in another open supplier return."""
    numbers = lots.split_list(value)
    selection = LotSelection()
    if not numbers:
        selection.errors.append(_msg(lang, "no_lots"))
        return selection
    found: dict[str, list[MaterialLot]] = {}
    for lot in db.session.scalars(select(MaterialLot).where(MaterialLot.lot_number.in_(numbers))
                                  .options(selectinload(MaterialLot.supplier))):
        found.setdefault(lot.lot_number, []).append(lot)
    if missing := [n for n in numbers if n not in found]:
        selection.errors.append(_msg(lang, "unknown_lots", items=", ".join(missing)))
    for number in numbers:
        candidates = found.get(number, [])
        if len(candidates) > 1:
            selection.errors.append(_msg(lang, "ambiguous", lot=number,
                                         materials=", ".join(lot.material for lot in candidates)))
        elif candidates:
            selection.lots.append(candidates[0])
    for lot in selection.lots:
        if lot.status in ("scrapped", "returned"):
            selection.errors.append(_msg(lang, lot.status, lot=lot.lot_number))
    suppliers = dict.fromkeys(lot.supplier.code for lot in selection.lots)
    if len(suppliers) > 1:
        selection.errors.append(_msg(lang, "several_suppliers", items=", ".join(suppliers)))
    if selection.lots:
        busy = db.session.execute(
            instances.of_process(
                select(MaterialLot.lot_number, ProcessInstance.id)
                .join(InstanceLot, InstanceLot.material_lot_id == MaterialLot.id)
                .join(ProcessInstance, ProcessInstance.id == InstanceLot.instance_id), PROCESS_KEY, open_only=True)
            .where(InstanceLot.role == LOT_ROLE, MaterialLot.id.in_([lot.id for lot in selection.lots]),
                   ProcessInstance.id != (exclude_instance_id or 0))).all()
        selection.errors += [_msg(lang, "open_return", lot=number, instance=instance_id)
                             for number, instance_id in busy]
    return selection


def check_lots(instance: ProcessInstance | None, data: dict[str, Any], lang: str) -> dict[str, list[str]]:
    """Form check for identifying the nonconforming lots (see resolve_lots)."""
    selection = resolve_lots(data.get("material_lots"), lang, instance.id if instance else None)
    return {"material_lots": selection.errors} if selection.errors else {}


def return_lots(instance_id: int) -> list[MaterialLot]:
    """The material lots of a supplier return."""
    return list(db.session.scalars(
        select(MaterialLot).join(InstanceLot, InstanceLot.material_lot_id == MaterialLot.id)
        .where(InstanceLot.instance_id == instance_id, InstanceLot.role == LOT_ROLE)
        .options(selectinload(MaterialLot.supplier)).order_by(MaterialLot.lot_number)))


def check_lines(instance: ProcessInstance | None, data: dict[str, Any], lang: str) -> dict[str, list[str]]:
    """Form check for the return request: each line names one of the return's lots, once."""
    if instance is None:
        return {}
    numbers = [lot.lot_number for lot in return_lots(instance.id)]
    errors: dict[str, list[str]] = {}
    seen: set[str] = set()
    for index, row in enumerate(data.get("lines") or []):
        number = str(row.get("lot_number") or "").strip()
        if number not in numbers:
            errors[f"lines.{index}.lot_number"] = [_msg(lang, "not_in_return", lot=number, items=", ".join(numbers))]
        elif number in seen:
            errors[f"lines.{index}.lot_number"] = [_msg(lang, "listed_twice", lot=number)]
        seen.add(number)
    return errors


def quarantine(instance: ProcessInstance, lot_numbers: Any, reason: str, now: datetime) -> dict[str, Any]:
    """Quarantine the named material lots (audited for the instance) and link them to the return.

    Expired lots are locked already and keep their status. Returns the supplier and what changed.
    """
    selection = resolve_lots(lot_numbers, "en", instance.id)
    if selection.errors:
        raise ValidationFailed(" ".join(selection.errors))
    changed = []
    for lot in selection.lots:
        if lot.status not in LOCKED_STATUSES and lots.change_status(lot, "quarantine", reason, None, now,
                                                                    instance_id=instance.id):
            changed.append(lot.lot_number)
    linked = {lot.id for lot in return_lots(instance.id)}
    db.session.add_all(InstanceLot(instance_id=instance.id, material_lot_id=lot.id, role=LOT_ROLE)
                       for lot in selection.lots if lot.id not in linked)
    db.session.flush()
    supplier = selection.lots[0].supplier
    return {"supplier": supplier.code, "supplier_name": supplier.name, "supplier_status": supplier.status,
            "lots": [lot.lot_number for lot in selection.lots], "quarantined": changed}


# --- corrective action requests ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ScarOptions:
    """Where documents and links come from, and how long a response link stays valid."""

    templates_dir: Path
    base_url: str
    link_days: int = 30
    company: dict[str, str] = field(default_factory=dict)


def scar_rounds(instance_id: int) -> list[ScarRequest]:
    return list(db.session.scalars(select(ScarRequest).where(ScarRequest.instance_id == instance_id)
                                   .options(selectinload(ScarRequest.message), selectinload(ScarRequest.supplier))
                                   .order_by(ScarRequest.round)))


def current_scar(instance_id: int) -> ScarRequest | None:
    return db.session.scalar(select(ScarRequest).where(ScarRequest.instance_id == instance_id)
                             .order_by(ScarRequest.round.desc()).limit(1))


def _deadline_key(scar: ScarRequest) -> str:
    return f"scar_response_{scar.round}"


def _new_link(scar: ScarRequest, options: ScarOptions, now: datetime) -> str:
    token = response_links.issue(scar, max(now + timedelta(days=options.link_days),
                                           scar.response_due_at + timedelta(days=7)))
    return f"{options.base_url.rstrip('/')}/scar/{token}"


def _scar_mail(scar: ScarRequest, link: str, reminder: bool, company: dict[str, str]) -> tuple[str, str]:
    supplier = scar.supplier
    due = plant_time.format_moment(scar.response_due_at, plant_time.zone())
    sender = company.get("name", "")
    if scar.language == "zh-CN":
        subject = ("提醒：" if reminder else "") + f"供应商纠正措施要求 {scar.number}"
        body = (f"{supplier.contact_name or supplier.name}：\n\n"
                + ("我们尚未收到您对以下纠正措施要求的答复。" if reminder else "")
                + f"我们发现贵司供应的物料不合格，详见附件《供应商纠正措施要求》{scar.number}。"
                  f"相关批次已隔离并将退回贵司。\n\n请于 {due} 前通过以下链接提交围堵措施、根本原因、纠正措施和"
                  f"预防措施（链接仅可使用一次）：\n{link}\n\n{sender}\n")
    else:
        subject = ("Reminder: " if reminder else "") + f"Supplier corrective action request {scar.number}"
        body = (f"Dear {supplier.contact_name or supplier.name},\n\n"
                + ("We have not yet received your answer to the corrective action request below. " if reminder else "")
                + f"Material you supplied was found nonconforming: see the attached supplier corrective action "
                  f"request {scar.number}. The lots are quarantined and will be returned to you.\n\nPlease send your "
                  f"containment, root cause, corrective and preventive actions by {due} at this single-use link:\n"
                  f"{link}\n\n{sender}\n")
    return subject, body


def send_scar(instance: ProcessInstance, options: ScarOptions, response_due_in: str, now: datetime, *,
              data: dict[str, Any] | None = None, task_spiff_id: str = "", element_id: str = "") -> dict[str, Any]:
    """Send the next SCAR round to the return's supplier: render the SCAR in its language, queue it by e-mail
    with a single-use response link, and start the response deadline. A round not yet verified is not sent
    again, so a retried step queues nothing twice."""
    scar = current_scar(instance.id)
    if scar is not None and not scar.verification_result:
        return _scar_summary(scar)
    material = return_lots(instance.id)
    if not material:
        raise ValidationFailed("This supplier return has no material lots: quarantine them first.")
    supplier = material[0].supplier
    round_no = scar.round + 1 if scar else 1
    spec = deadlines.DeadlineSpec(key=f"scar_response_{round_no}", met_by=f"scar_response_{round_no}",
                                  label=f"Supplier response to SCAR round {round_no}",
                                  label_zh=f"供应商答复纠正措施要求（第 {round_no} 轮）", due_in=response_due_in)
    scar = ScarRequest(instance_id=instance.id, supplier=supplier, round=round_no,
                       number=f"SCAR-{instance.id:06d}-{round_no}", language=_lang(supplier.language),
                       email=supplier.email, sent_at=now, response_due_at=spec.due_at(now, calendars.work_calendar()))
    db.session.add(scar)
    link = _new_link(scar, options, now)
    db.session.flush()
    deadlines.start_deadlines(instance.id, [spec], now)
    context = document_context(instance, scar.language, now, data=data, company=options.company, scar=scar,
                               response_url=link)
    document = store_document(instance, templates_dir=options.templates_dir, template="scar", kind="scar",
                              language=scar.language, context=context, now=now,
                              task_spiff_id=task_spiff_id or None, element_id=element_id or None)
    scar.document_id = document.id
    if supplier.email:
        subject, body = _scar_mail(scar, link, False, options.company)
        scar.message = OutboxMessage(
            idempotency_key=f"scar:{instance.id}:{round_no}", recipients=supplier.email, subject=subject, body=body,
            instance_id=instance.id, created_at=now, next_attempt_at=now, attachment_document_id=document.id)
    db.session.flush()
    audit.record(None, "supplier_return.scar_sent", "scar_request", scar.id, instance_id=instance.id, at=now,
                 new={"number": scar.number, "supplier": supplier.code, "email": supplier.email or None,
                      "document": document.filename, "response_due_at": _iso(scar.response_due_at),
                      "link_expires_at": _iso(scar.token_expires_at)})
    return _scar_summary(scar)


def _scar_summary(scar: ScarRequest) -> dict[str, Any]:
    return {"round": scar.round, "number": scar.number, "response_due_at": _iso(scar.response_due_at),
            "deadline_key": _deadline_key(scar), "sent_to": scar.email, "document_id": scar.document_id}


def send_reminders(instance: ProcessInstance, options: ScarOptions, after_days: int, now: datetime,
                   run_key: str) -> int:
    """Remind the supplier of an unanswered SCAR after_days after it was sent (or last reminded).

    The reminder carries a new link that replaces the earlier one (only hashes are stored); run_key makes a
    retried timer run queue nothing twice."""
    scar = current_scar(instance.id)
    if scar is None or scar.responded_at is not None or scar.verification_result or not scar.email:
        return 0
    last = scar.last_reminded_at or scar.sent_at
    if last > now - timedelta(days=after_days) or db.session.scalar(
            select(OutboxMessage.id).where(OutboxMessage.idempotency_key == run_key)):
        return 0
    link = _new_link(scar, options, now)
    subject, body = _scar_mail(scar, link, True, options.company)
    db.session.add(OutboxMessage(idempotency_key=run_key, recipients=scar.email, subject=subject, body=body,
                                 instance_id=instance.id, created_at=now, next_attempt_at=now,
                                 attachment_document_id=scar.document_id))
    scar.reminders += 1
    scar.last_reminded_at = now
    audit.record(None, "supplier_return.scar_reminded", "scar_request", scar.id, instance_id=instance.id, at=now,
                 new={"number": scar.number, "reminder": scar.reminders})
    return 1


def scar_for_token(token: str, now: datetime | None = None) -> ScarRequest:
    """Return the SCAR a response link belongs to; forged links are 404, used ones 409, expired ones 410."""
    return response_links.find(ScarRequest, token, answered_at="responded_at", now=now or utcnow(), message=_msg)


def link_language(token: str) -> str | None:
    """Return the language of the SCAR a link was sent with (also once used or expired), None if forged."""
    return response_links.language(ScarRequest, token)


RESPONSE_TEXTS = {"responder_name": (2, 200), "responder_title": (0, 200), "containment": (5, 4000),
                  "root_cause": (5, 4000), "corrective_action": (5, 4000), "preventive_action": (0, 4000),
                  "response_note": (0, 4000)}


def respond(token: str, answers: dict[str, Any], now: datetime | None = None) -> ScarRequest:
    """Record the supplier's answer from the public page or API: containment, root cause, corrective and
    preventive actions, planned completion; the link stops working and the response deadline is met."""
    now = now or utcnow()
    with atomic():
        scar = scar_for_token(token, now)
        db.session.refresh(scar, with_for_update=True)  # a second submit of the same link waits, then fails
        if scar.responded_at is not None:
            raise Conflict(_msg(scar.language, "link_used"))
        lang = scar.language
        errors: dict[str, list[str]] = {}
        values: dict[str, str] = {}
        for name, (minimum, maximum) in RESPONSE_TEXTS.items():
            value = str(answers.get(name) or "").strip()[:maximum]
            if minimum and not value:
                errors[name] = [_msg(lang, "required")]
            elif len(value) < minimum:
                errors[name] = [_msg(lang, "too_short", n=minimum)]
            values[name] = value
        completion = None
        if raw := str(answers.get("completion_date") or "").strip():
            try:
                completion = date.fromisoformat(raw)
            except ValueError:
                errors["completion_date"] = [_msg(lang, "bad_date")]
        if errors:
            raise FormInvalid(errors)
        for name, value in values.items():
            setattr(scar, name, value)
        scar.completion_date, scar.responded_at = completion, now
        scar.token_expires_at = now  # single use: the link stops working now
        deadlines.mark_met(scar.instance_id, [_deadline_key(scar)], now)
        audit.record(None, "supplier_return.scar_answered", "scar_request", scar.id, instance_id=scar.instance_id,
                     at=now, actor_name=f"supplier {scar.supplier.code}",
                     new={"number": scar.number, **values, "completion_date": raw or None})
    return scar


def check_response_received(instance: ProcessInstance | None, data: dict[str, Any], lang: str,
                            ) -> dict[str, list[str]]:
    """Form check for the verification: the supplier has answered the current SCAR round."""
    scar = current_scar(instance.id) if instance else None
    if scar is None or scar.responded_at is not None:
        return {}
    return {"verification": [_msg(lang, "no_response", number=scar.number,
                                  due=scar.response_due_at.date().isoformat())]}


def _step_actor(instance_id: int, element_id: str) -> User | None:
    """Who completed the latest run of a user step of the instance (the decision a service task carries out)."""
    task = db.session.scalar(select(Task).where(Task.instance_id == instance_id, Task.element_id == element_id,
                                                Task.state == "completed").order_by(Task.completed_at.desc(),
                                                                                    Task.id.desc()).limit(1))
    return task.completed_by if task is not None else None


def record_verification(instance: ProcessInstance, result: str, note: str, step: str, now: datetime,
                        ) -> dict[str, Any]:
    """Record our verification of the current round's answer (by whoever completed `step`)."""
    if result not in VERIFICATION_RESULTS:
        raise ValidationFailed(gettext("Unknown verification result %(result)s; use one of %(results)s.",
                                       result=repr(result), results=", ".join(VERIFICATION_RESULTS)))
    scar = current_scar(instance.id)
    if scar is None or scar.responded_at is None:
        raise Conflict("The current SCAR round has no answer to verify.")
    if not scar.verification_result:
        actor = _step_actor(instance.id, step)
        scar.verification_result, scar.verification_note = result, note.strip()[:4000]
        scar.verified_by, scar.verified_at = actor, now
        audit.record(actor, "supplier_return.scar_verified", "scar_request", scar.id, instance_id=instance.id,
                     at=now, new={"number": scar.number, "result": result, "note": scar.verification_note})
    return {"round": scar.round, "number": scar.number, "result": scar.verification_result}


# --- the return shipment and the supplier's status --------------------------------------------------------------------

def _signature(instance_id: int, element_id: str) -> Signature | None:
    return db.session.scalar(select(Signature).join(Task, Task.id == Signature.task_id).where(
        Signature.instance_id == instance_id, Task.element_id == element_id, Signature.meaning != "rejected")
        .order_by(Signature.id.desc()).limit(1))


def record_shipment(instance: ProcessInstance, data: dict[str, Any], step: str, now: datetime) -> list[SupplierReturn]:
    """Write the GSP return record of every lot shipped back (from the return request and the shipment step's
    data); a retried step returns the rows already written."""
    existing = list(db.session.scalars(select(SupplierReturn).where(SupplierReturn.instance_id == instance.id)
                                       .order_by(SupplierReturn.id)))
    if existing:
        return existing
    material = {lot.lot_number: lot for lot in return_lots(instance.id)}
    actor = _step_actor(instance.id, step)
    rows = []
    for line in data.get("lines") or []:
        lot = material.get(str(line.get("lot_number") or "").strip())
        if lot is None:
            raise ValidationFailed(gettext("Lot %(lot)s is not one of this return's lots.",
                                           lot=repr(line.get("lot_number"))))
        rows.append(SupplierReturn(
            instance_id=instance.id, material_lot_id=lot.id, supplier_id=lot.supplier_id, material=lot.material,
            specification=str(line.get("specification") or ""), lot_number=lot.lot_number,
            quantity=float(line["quantity"]), unit=str(line.get("unit") or ""), expiry_on=lot.expiry_on,
            reason=str(line.get("reason") or data.get("defect_description") or ""),
            authorisation_no=str(data.get("rma_number") or ""), returned_on=date.fromisoformat(data["returned_on"]),
            carrier=str(data.get("carrier") or ""), tracking_no=str(data.get("tracking_no") or ""),
            recipient=str(data.get("recipient") or ""), recorded_at=now, recorded_by_id=actor.id if actor else None))
    if not rows:
        raise ValidationFailed("The return request lists no lots.")
    db.session.add_all(rows)
    db.session.flush()
    for lot in {row.material_lot_id: material[row.lot_number] for row in rows}.values():
        # Shipped back: out of our stock for good (GSP), audited in the name of whoever recorded the shipment.
        lots.change_status(lot, "returned", f"Returned to the supplier (supplier return #{instance.id})", actor,
                           now, instance_id=instance.id)
    for row in rows:
        audit.record(actor, "supplier_return.shipped", "material_lot", row.material_lot_id, instance_id=instance.id,
                     at=now, new={"lot_number": row.lot_number, "quantity": row.quantity, "unit": row.unit,
                                  "returned_on": _iso(row.returned_on), "carrier": row.carrier,
                                  "recipient": row.recipient})
    return rows


def update_supplier_status(instance: ProcessInstance, status: str, reason: str, step: str, now: datetime,
                           ) -> dict[str, Any]:
    """Set the return's supplier to the status decided at `step`, in the name of whoever decided it."""
    if status not in SUPPLIER_STATUSES:
        raise ValidationFailed(gettext("Unknown supplier status %(status)s; use one of %(statuses)s.",
                                       status=repr(status), statuses=", ".join(SUPPLIER_STATUSES)))
    material = return_lots(instance.id)
    actor = _step_actor(instance.id, step)
    if not material or actor is None:
        raise ValidationFailed("No supplier or no decision to carry out: the lots or the status step are missing.")
    supplier = material[0].supplier
    old = supplier.status
    lots.set_supplier_status(supplier.id, status, f"{reason} (supplier return #{instance.id})", actor, now)
    return {"supplier": supplier.code, "old_status": old, "status": status, "decided_by": actor.full_name}


# --- starting, and what pages, the API and documents show -------------------------------------------------------------

def return_number(instance_id: int) -> str:
    return f"SR-{instance_id:06d}"


RETURN_TITLE = titles.register("Supplier return: {material} lot {lot}", "供应商退货：{material} 批次 {lot}")


def start_return(actor: User, material_lot_id: int, now: datetime | None = None) -> ProcessInstance:
    """Start a supplier return from a material lot, with the identification form filled from it (and from a
    failed incoming inspection, when it has one)."""
    lot = lots.get_lot("material", material_lot_id)
    failed = db.session.scalar(select(Inspection).where(Inspection.material_lot_id == lot.id,
                                                        Inspection.result == "fail")
                               .order_by(Inspection.inspected_on.desc()).limit(1))
    title = RETURN_TITLE.format(material=lot.material, lot=lot.lot_number)[:300]
    data: dict[str, Any] = {"title": title, "material_lots": lot.lot_number,
                            "source": "incoming_inspection" if failed else "other"}
    if failed is not None:
        data.update(defect_description=failed.results or "", found_on=failed.inspected_on.isoformat(),
                    reference=f"Incoming inspection {failed.inspected_on.isoformat()}")
    with atomic():
        instance = instances.start_instance(PROCESS_KEY, actor, {k: v for k, v in data.items() if v}, title=title,
                                            now=now)
        db.session.add(InstanceLot(instance_id=instance.id, material_lot_id=lot.id, role="subject"))
    return instance


def _return_instance(instance_id: int) -> ProcessInstance:
    instance = db.session.scalar(instances.of_process(select(ProcessInstance), PROCESS_KEY)
                                 .where(ProcessInstance.id == instance_id))
    if instance is None:
        raise NotFound(gettext("No supplier return %(id)s.", id=instance_id))
    return instance


@dataclass
class ReturnView:
    instance: ProcessInstance
    lots: list[MaterialLot]
    scars: list[ScarRequest]
    returns: list[SupplierReturn]
    deadlines: list[Deadline]

    @property
    def supplier(self) -> Supplier | None:
        if self.lots:
            return self.lots[0].supplier
        return self.scars[0].supplier if self.scars else None

    @property
    def number(self) -> str:
        return return_number(self.instance.id)


def return_view(instance_id: int) -> ReturnView:
    """Load a supplier return's lots, SCAR rounds, return records and deadlines."""
    instance = _return_instance(instance_id)
    return ReturnView(instance=instance, lots=return_lots(instance_id), scars=scar_rounds(instance_id),
                      returns=list(db.session.scalars(select(SupplierReturn).where(
                          SupplierReturn.instance_id == instance_id).order_by(SupplierReturn.lot_number))),
                      deadlines=deadlines.instance_deadlines(instance_id))


def returns_for_material_lot(lot_id: int) -> list[ProcessInstance]:
    """The supplier returns a material lot is part of, newest first."""
    return list(db.session.scalars(
        instances.of_process(select(ProcessInstance), PROCESS_KEY)
        .join(InstanceLot, InstanceLot.instance_id == ProcessInstance.id)
        .where(InstanceLot.material_lot_id == lot_id)
        .order_by(ProcessInstance.id.desc())))


def _scar_dict(scar: ScarRequest, lang: str) -> dict[str, Any]:
    return {"number": scar.number, "round": scar.round, "sent_on": _iso(scar.sent_at.date()),
            "response_due_on": _iso(scar.response_due_at.date()), "email": scar.email,
            "responded_on": _iso(scar.responded_at.date()) if scar.responded_at else "",
            "responder_name": scar.responder_name, "responder_title": scar.responder_title,
            "containment": scar.containment, "root_cause": scar.root_cause,
            "corrective_action": scar.corrective_action, "preventive_action": scar.preventive_action,
            "completion_date": _iso(scar.completion_date), "response_note": scar.response_note,
            "verification_text": _text(lang, scar.verification_result), "verification_note": scar.verification_note,
            "verified_by": scar.verified_by.full_name if scar.verified_by else "",
            "verified_on": _iso(scar.verified_at.date()) if scar.verified_at else ""}


def document_context(instance: ProcessInstance, lang: str, now: datetime, *, data: dict[str, Any] | None = None,
                     company: dict[str, str] | None = None, scar: ScarRequest | None = None,
                     response_url: str = "") -> dict[str, Any]:
    """The `scar`, `supplier`, `lots` and `return_note` dicts the SCAR and return note templates read."""
    data = data if data is not None else (instance.data or {})
    view = return_view(instance.id)
    scar = scar or current_scar(instance.id)
    supplier = view.supplier
    authorised = _signature(instance.id, "authorise_return")
    returns = view.returns
    return {
        "lang": lang, "company": company or {}, "generated_on": _iso(now.date()),
        "return_number": view.number, "title": instance.title,
        "supplier": {"code": supplier.code if supplier else "", "name": supplier.name if supplier else "",
                     "contact_name": supplier.contact_name if supplier else "",
                     "email": supplier.email if supplier else "",
                     "status_text": _text(lang, supplier.status) if supplier else ""},
        "nonconformity": {"source_text": _text(lang, str(data.get("source") or "")),
                          "severity_text": _text(lang, str(data.get("severity") or "")),
                          "description": data.get("defect_description", ""), "found_on": data.get("found_on", ""),
                          "reference": data.get("reference", ""), "requirements": data.get("requirements", ""),
                          "contact": data.get("scar_contact", "")},
        "lots": [{"material": lot.material, "lot_number": lot.lot_number, "received_on": _iso(lot.received_on),
                  "expiry_on": _iso(lot.expiry_on), "status": lot.status,
                  "status_text": _text(lang, f"status_{lot.status}")} for lot in view.lots],
        "scar": {**(_scar_dict(scar, lang) if scar else {}), "response_url": response_url,
                 "link_expires_on": _iso(scar.token_expires_at.date()) if scar and scar.token_expires_at else "",
                 "previous": [_scar_dict(s, lang) for s in view.scars if scar and s.round < scar.round]},
        "return_note": {
            "rows": [{"material": r.material, "specification": r.specification, "lot_number": r.lot_number,
                      "quantity": f"{r.quantity:g}", "unit": r.unit, "expiry_on": _iso(r.expiry_on),
                      "reason": r.reason} for r in returns],
            "returned_on": _iso(returns[0].returned_on) if returns else "",
            "carrier": returns[0].carrier if returns else "", "tracking_no": returns[0].tracking_no if returns else "",
            "recipient": returns[0].recipient if returns else "",
            "authorisation_no": returns[0].authorisation_no if returns else "",
            "authorised_by": authorised.printed_name if authorised else "",
            "authorised_at": authorised.signed_at.isoformat(timespec="minutes") if authorised else ""},
    }


registry.register_form_checks({
    "supplier_return_lots": check_lots,
    "supplier_return_lines": check_lines,
    "scar_response_received": check_response_received,
})

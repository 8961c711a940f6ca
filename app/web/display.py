"""What signers and inspectors read: a step's facts labelled by its forms, a recall's figures, audit actions in
words and audit values as decoded text."""
from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flask_babel import lazy_gettext

from app.services.lots import lots
from app.services.procedures import recalls
from app.services.workflow import forms, tasks
from app.web.common import ui_lang

# Every action code passed to audit.record, in words; "login.failed" and "signature.failed" come from
# users.check_password's purpose.
ACTIONS: dict[str, Any] = {
    "backup.created": lazy_gettext("Backup made"),
    "backup.restored": lazy_gettext("Backup restored"),
    "calendar.day_removed": lazy_gettext("Calendar day removed"),
    "calendar.day_set": lazy_gettext("Calendar day set"),
    "deadline.escalated": lazy_gettext("Deadline escalated"),
    "deadline.met": lazy_gettext("Deadline met"),
    "deadline.started": lazy_gettext("Deadline started"),
    "document.stored": lazy_gettext("Document stored"),
    "document.tampered": lazy_gettext("Document found changed"),
    "draft.created": lazy_gettext("Draft created"),
    "draft.deleted": lazy_gettext("Draft deleted"),
    "evidence.exported": lazy_gettext("Evidence package exported"),
    "excursion.closed": lazy_gettext("Excursion closed (lots released or scrapped)"),
    "excursion.detected": lazy_gettext("Storage excursion detected"),
    "excursion.updated": lazy_gettext("Storage excursion extended by new readings"),
    "import.completed": lazy_gettext("Import completed"),
    "incident.raised": lazy_gettext("Incident raised"),
    "incident.retried": lazy_gettext("Incident retried"),
    "inspection.capa_opened": lazy_gettext("CAPA opened from an inspection"),
    "instance.cancelled": lazy_gettext("Instance cancelled"),
    "instance.completed": lazy_gettext("Instance completed"),
    "instance.migrated": lazy_gettext("Instance moved to another version"),
    "instance.started": lazy_gettext("Instance started"),
    "login.failed": lazy_gettext("Sign-in failed"),
    "login.succeeded": lazy_gettext("Signed in"),
    "lot.capa_opened": lazy_gettext("CAPA opened for a lot"),
    "lot.status_changed": lazy_gettext("Lot status changed"),
    "lot.sterilization_batch_set": lazy_gettext("Lot assigned to a sterilization batch"),
    "outbox.resent": lazy_gettext("E-mail queued to be sent again"),
    "process.deployed": lazy_gettext("Procedure deployed"),
    "process.approved": lazy_gettext("Procedure version approved (e-signature)"),
    "process.rejected": lazy_gettext("Procedure version rejected"),
    "process.released": lazy_gettext("Procedure released by the system at installation"),
    "process.withdrawn": lazy_gettext("Procedure version withdrawn by its author"),
    "readings.received": lazy_gettext("Sensor readings received"),
    "recall.acknowledged": lazy_gettext("Consignee acknowledged the recall"),
    "recall.affected_edited": lazy_gettext("Affected lots edited"),
    "recall.check_recorded": lazy_gettext("Effectiveness check recorded"),
    "recall.notice_delivered": lazy_gettext("Recall notice delivered"),
    "recall.notice_queued": lazy_gettext("Recall notice queued"),
    "recall.reminder_queued": lazy_gettext("Recall reminder queued"),
    "recall.return_recorded": lazy_gettext("Return recorded"),
    "recall.sample_drawn": lazy_gettext("Check sample drawn"),
    "recall.started_from_capa": lazy_gettext("Recall started from this CAPA"),
    "record.created": lazy_gettext("Record created"),
    "shipment.override_signed": lazy_gettext("Refused lot shipped by QA override (e-signature)"),
    "shipment.shipped": lazy_gettext("Shipped first expiry, first out (stock taken off)"),
    "signature.applied": lazy_gettext("Electronic signature applied"),
    "signature.failed": lazy_gettext("Signature password wrong"),
    "sterilization.bi_recorded": lazy_gettext("Biological indicator result recorded"),
    "sterilization.fail_signed": lazy_gettext("Sterilization batch failed by QA (e-signature)"),
    "sterilization.failed": lazy_gettext("Sterilization batch failed (lots held, CAPA opened)"),
    "sterilization.recorded": lazy_gettext("Sterilization batch recorded"),
    "sterilization.released": lazy_gettext("Sterilization batch released (e-signature)"),
    "stock.scrapped": lazy_gettext("Stock destroyed (scrap record)"),
    "studio_form.discarded": lazy_gettext("Studio form discarded"),
    "studio_form.saved": lazy_gettext("Studio form saved"),
    "supplier.status_changed": lazy_gettext("Supplier status changed"),
    "supplier_return.scar_answered": lazy_gettext("Supplier answered the SCAR"),
    "supplier_return.scar_reminded": lazy_gettext("SCAR reminder sent"),
    "supplier_return.scar_sent": lazy_gettext("SCAR sent to the supplier"),
    "supplier_return.scar_verified": lazy_gettext("SCAR answer verified"),
    "supplier_return.shipped": lazy_gettext("Return shipped"),
    "supplier_review.closed": lazy_gettext("Supplier review decided (e-signed)"),
    "supplier_review.escalated": lazy_gettext("Supplier review escalated: score below the limit"),
    "supplier_review.started": lazy_gettext("Supplier review started"),
    "task.automated": lazy_gettext("Automatic step done"),
    "task.cancelled": lazy_gettext("Step cancelled"),
    "task.claimed": lazy_gettext("Step claimed"),
    "task.completed": lazy_gettext("Step completed"),
    "task.created": lazy_gettext("Step created"),
    "task.released": lazy_gettext("Step released"),
    "timer.fired": lazy_gettext("Timer fired"),
    "token.issued": lazy_gettext("API token issued"),
    "token.revoked": lazy_gettext("API token revoked"),
    "password_change.failed": lazy_gettext("Password change refused: wrong current password"),
    "user.created": lazy_gettext("User created"),
    "user.deactivated": lazy_gettext("User deactivated"),
    "user.password_changed": lazy_gettext("Password changed by its user"),
    "user.password_reset": lazy_gettext("User's password reset"),
    "user.reactivated": lazy_gettext("User reactivated"),
    "user.updated": lazy_gettext("User changed"),
}

# The roles an account may hold (app.models.users.ROLES).
ROLE_LABELS: dict[str, Any] = {
    "admin": lazy_gettext("Administrator"),
    "process_owner": lazy_gettext("Process owner"),
    "staff": lazy_gettext("Staff"),
    "qa_releaser": lazy_gettext("QA releaser"),
    "auditor": lazy_gettext("Auditor (read-only)"),
}

# The meanings the shipped procedures sign with (signatureMeaning) and "rejected" (signatures.signed_meaning).
MEANINGS: dict[str, Any] = {
    "approved": lazy_gettext("Approved"),
    "authored": lazy_gettext("Authored"),
    "released": lazy_gettext("Released"),
    "reviewed": lazy_gettext("Reviewed"),
    "rejected": lazy_gettext("Rejected"),
}

RELEASE_CHECKS: dict[str, Any] = {
    "batch_record_complete": lazy_gettext("Batch record complete"),
    "final_inspection_passed": lazy_gettext("Final inspection passed"),
    "sterilization_record": lazy_gettext("Sterilization record"),
    "labels_udi": lazy_gettext("Labels with UDI checked"),
    "no_open_capa_or_deviation": lazy_gettext("No open CAPA or deviation"),
    "not_expired": lazy_gettext("Not expired"),
}


@dataclass(frozen=True)
class Fact:
    """One labelled value; a table of rows when the form field is a list of records."""

    label: str
    text: str = ""
    columns: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)


@dataclass(frozen=True)
class FactGroup:
    title: str
    facts: list[Fact]


def action_label(action: str) -> str:
    """Return an audit action code in the page language; a code not in ACTIONS stays as it is."""
    label = ACTIONS.get(action)
    return str(label) if label is not None else action


def role_label(role: str) -> str:
    """Return a role code in the page language."""
    label = ROLE_LABELS.get(role)
    return str(label) if label is not None else role


def meaning_label(meaning: str) -> str:
    """Return a signature meaning in the page language; an unknown one stays as the procedure wrote it."""
    label = MEANINGS.get(meaning)
    return str(label) if label is not None else meaning


def json_text(value: Any) -> str:
    """Return a stored value as JSON that reads as written: 批准, not \\u6279\\u51c6."""
    if value is None:
        return ""
    return json.dumps(value, ensure_ascii=False, default=str)


def step_facts(steps: Iterable[tasks.Task], lang: str, until: datetime | None = None) -> list[FactGroup]:
    """Return the answers of the completed steps (the latest of each, completed by `until`), labelled by their
    forms' titles.

    Signed gates are left out: their decision belongs to the signer of that gate, and must never read as the
    decision of the step being signed now. Signatures are listed on their own.
    """
    latest: dict[str, tasks.Task] = {}
    for step in steps:
        if (step.state == "completed" and step.form and step.data and not step.signature_meaning
                and (until is None or step.completed_at <= until)):
            latest.pop(step.element_id, None)  # a repeated step moves to where it was last answered
            latest[step.element_id] = step
    done = sorted(latest.values(), key=lambda s: (s.completed_at, s.id))
    groups = [FactGroup(_step_name(step, lang), _facts(step, lang)) for step in done]
    return [group for group in groups if group.facts]


def key_figures(instance: tasks.ProcessInstance) -> tuple[str, list[Fact]] | None:
    """Return the figures a procedure's signer weighs beyond the form answers, under a heading, if it has any."""
    key = instance.version.definition.key
    release = (instance.data or {}).get("release")
    if key == recalls.PROCESS_KEY:
        return str(lazy_gettext("Recall figures")), recall_figures(instance.id)
    if key == lots.RELEASE_PROCESS and isinstance(release, dict):
        return str(lazy_gettext("Release checks")), release_checks(release)
    return None


def release_checks(report: dict) -> list[Fact]:
    """Return a lot release's checks (lots.ReleaseReport.as_dict) as pass or fail with the reason."""
    facts = [Fact(str(lazy_gettext("Lot")), str(report.get("lot_number", "")))]
    for check in report.get("checks", []):
        verdict = str(lazy_gettext("pass") if check.get("passed") else lazy_gettext("fail"))
        detail = check.get("detail_zh") if ui_lang() == "zh-CN" and check.get("detail_zh") else check.get("detail")
        text = f"{verdict}: {detail}" if detail else verdict
        facts.append(Fact(release_check_label(check.get("code", "")), text))
    return facts


def release_check_label(code: str) -> str:
    label = RELEASE_CHECKS.get(code)
    return str(label) if label is not None else code


THRESHOLD_NAMES = {"level": lazy_gettext("effectiveness check level"),
                   "contacted": lazy_gettext("consignees contacted"),
                   "acknowledged": lazy_gettext("consignees acknowledged"),
                   "recovered": lazy_gettext("units recovered")}


def recall_figures(instance_id: int) -> list[Fact]:
    """Return what a recall signer weighs: its number, class, lots, consignees and the units back so far."""
    view = recalls.recall_view(instance_id)
    totals = view.totals
    data = view.instance.data or {}
    return [
        Fact(str(lazy_gettext("Recall number")), recalls.recall_number(instance_id)),
        Fact(str(lazy_gettext("Recall class")), str(data.get("recall_class") or "—")),
        Fact(str(lazy_gettext("Product")), view.product_name or "—"),
        Fact(str(lazy_gettext("Affected lots")), ", ".join(row.lot.lot_number for row in view.lots) or "—"),
        Fact(str(lazy_gettext("Consignees")), str(totals["consignees"])),
        Fact(str(lazy_gettext("Units shipped")), str(totals["quantity_shipped"])),
        Fact(str(lazy_gettext("Units returned")), str(totals["quantity_returned"])),
        Fact(str(lazy_gettext("Units destroyed")), str(totals["quantity_destroyed"])),
        Fact(str(lazy_gettext("Units recovered")), totals["recovered_pct"]),
        Fact(str(lazy_gettext("Consignees notified")), str(totals["notified"])),
        Fact(str(lazy_gettext("Consignees acknowledged")), f"{totals['acknowledged']} / {totals['notified']}"),
        Fact(str(lazy_gettext("Consignees contacted by the effectiveness check")),
             f"{totals['contacted']} / {totals['consignees']}"),
        *(Fact(str(lazy_gettext("Threshold: %(name)s", name=THRESHOLD_NAMES[t.name])),
               str(lazy_gettext("%(actual)s of at least %(required)s: met", actual=t.actual, required=t.required)
                   if t.met else lazy_gettext("%(actual)s of at least %(required)s: NOT met", actual=t.actual,
                                              required=t.required)))
          for t in view.thresholds),
    ]


def _step_name(step: tasks.Task, lang: str) -> str:
    return step.name_zh if lang == "zh-CN" and step.name_zh else step.name


def answer_facts(step: tasks.Task, lang: str, values: dict | None = None) -> list[Fact]:
    """Return a step's answers (or other values of its form's fields) as facts labelled by its form, signed
    gates included: the auditor's timeline shows every step as it was entered."""
    schema, ui_schema = tasks.task_form(step)
    facts = [_fact(f) for f in forms.form_fields(schema, ui_schema, step.data if values is None else values, {},
                                                 lang=lang)]
    return [fact for fact in facts if fact.text or fact.rows]


def _facts(step: tasks.Task, lang: str) -> list[Fact]:
    schema, ui_schema = tasks.task_form(step)
    facts = [_fact(f) for f in forms.form_fields(schema, ui_schema, step.data or {}, {}, lang=lang)]
    return [fact for fact in facts if fact.text or fact.rows]


def _fact(form_field: forms.Field) -> Fact:
    if form_field.widget == "array_table":
        rows = [[_text(cell) for cell in row] for row in form_field.rows]
        return Fact(form_field.label, columns=[c.label for c in form_field.columns],
                    rows=[row for row in rows if any(row)])
    return Fact(form_field.label, _text(form_field))


def _text(form_field: forms.Field) -> str:
    """Return a field's value as the words its form offers (option names, Yes/No), else as typed."""
    value = form_field.value
    if form_field.widget == "checkbox":
        value = "true" if value else "false"  # an unchecked box was answered "no"
    names = {option: name for option, name in form_field.options if option}
    return names.get(value, value) if isinstance(value, str) else str(value)

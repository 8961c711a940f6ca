"""Drive the shipped recall through the service layer step by step (shared by service, API and page tests)."""
from __future__ import annotations

import smtplib
from datetime import datetime

from app.extensions import db
from app.models import ProcessInstance, Task
from app.services import demo
from app.services.procedures import recalls
from app.services.workflow import instances, notifications, tasks

TRIGGER = {"source": "complaint", "material_lots": "M1", "description": "Leaking infusion sets reported by a hospital",
           "reporter": "Dr Wu", "reported_on": "2026-11-20"}
ASSESSMENT = {"hazard": "Air embolism if the set leaks during infusion", "risk": "Serious harm possible",
              "population": "Patients receiving infusions", "recall_class": "I", "scope": "recall",
              "countries": "CN"}
APPROVE = {"decision": "approve", "comment": "Agreed."}
REJECT = {"decision": "reject", "comment": "Assess the paediatric population too."}
# Each text in both languages: the consignees in China read Chinese, US1 reads English.
NOTICES = {"reason_zh": "输液器在输液过程中可能渗漏，有空气栓塞的风险。",
           "reason_en": "The infusion sets may leak during infusion, with a risk of air embolism.",
           "instructions_zh": "立即停止使用，隔离库存并全部退回。",
           "instructions_en": "Stop use, quarantine and return all units.",
           "notice_contact_zh": "质量热线 0512-0000", "notice_contact_en": "QA hotline 0512-0000",
           "forward_request": True}
SUBMISSION = {"authority": "Jiangsu MPA", "submitted_on": "2026-11-23", "reference": "JS-2026-001"}
PLAN = {"strategy": "Recover all units from distributors and hospitals", "depth": "hospital", "level": "A",
        "plan_contact": "Li Na", "plan_submitted_on": "2026-11-24"}
MONITOR = {"field_actions_done": True, "summary": "All consignees answered; returns recorded."}
EFFECTIVE = {"outcome": "met"}
DISPOSITION = {"disposition": [{"lot_number": "L1", "quantity": 80, "disposition": "destroy", "record": "DR-1"}]}

SIGNED = {"sign_assessment", "decision", "approve_plan", "effectiveness", "final_approval"}
WHO = {"trigger": "qa", "assessment": "qa", "sign_assessment": "qa", "decision": "rp", "prepare_notices": "qa",
       "submit_event_report": "qa", "recall_plan": "qa", "approve_plan": "head", "fda_806_report": "qa",
       "eu_fsca_report": "qa",
       "monitor": "qa", "effectiveness": "qa", "disposition": "qa", "final_approval": "head",
       "submit_progress": "qa", "escalation_undelivered": "head"}


def ready(instance_id: int, element: str) -> Task | None:
    return db.session.scalar(db.select(Task).where(Task.instance_id == instance_id, Task.element_id == element,
                                                   Task.state == "ready"))


def step(instance_id: int, element: str, data: dict, user, now: datetime) -> Task:
    """Complete the ready task of element as the user the procedure assigns it to (signing gates)."""
    task = ready(instance_id, element)
    assert task is not None, f"no ready task {element}"
    password = demo.DEMO_PASSWORD if element in SIGNED else None
    return tasks.complete_task(task.id, data, user(WHO[element]), password=password, now=now)


def mail_server(monkeypatch, refused: tuple[str, ...] = ()) -> None:
    """Stand in for the SMTP server: it accepts every e-mail but those to the refused addresses."""
    class Server:
        def __init__(self, *args, **kwargs) -> None:
            pass

        def __enter__(self) -> Server:
            return self

        def __exit__(self, *exc) -> None:
            return None

        def send_message(self, email) -> None:
            if email["To"] in refused:
                raise smtplib.SMTPRecipientsRefused({email["To"]: (550, b"mailbox unavailable")})

    monkeypatch.setattr(smtplib, "SMTP", Server)


def deliver_notices(instance_id: int, user, now: datetime, monkeypatch) -> None:
    """Have a mail server accept every queued notice, and a QA visit confirm those sent on paper."""
    mail_server(monkeypatch)
    notifications.send_due(now)
    for consignee in recalls.recall_view(instance_id).undelivered:
        recalls.record_check(instance_id, consignee.id, method="visit", effective=True, note="", actor=user("qa"),
                             now=now)


def start(user, now: datetime, trigger: dict = TRIGGER) -> ProcessInstance:
    instance = instances.start_instance("recall", user("qa"), {"title": "Leaking infusion sets"},
                                        title="Leaking infusion sets", language="en", now=now)
    step(instance.id, "trigger", trigger, user, now)
    return instance


def decide(user, now: datetime, assessment: dict = ASSESSMENT, trigger: dict = TRIGGER) -> ProcessInstance:
    """Start a recall and run it through the signed decision (lots recalled, deadlines started)."""
    instance = start(user, now, trigger)
    step(instance.id, "assessment", assessment, user, now)
    step(instance.id, "sign_assessment", APPROVE, user, now)
    step(instance.id, "decision", APPROVE, user, now)
    return instance

"""The in-process APScheduler: a due BPMN timer escalates without anyone calling `flask timers tick`."""
from __future__ import annotations

import time
from datetime import timedelta

from app.extensions import db
from app.models import AuditEvent, AuditHead
from app.models.types import utcnow
from app.scheduler import start_scheduler
from app.services.evidence import audit_checkpoints
from app.services.workflow import instances, tasks
from tests.integration.capa_steps import STEPS, ready_task


def test_scheduler_fires_an_overdue_action_plan_timer(app, seeded, user):
    six_days_ago = utcnow() - timedelta(days=6)
    instance = instances.start_instance("capa", user("qa"), title="Scheduled", now=six_days_ago)
    for element, username, data in STEPS[:3]:  # up to the action plan, whose 5-day timer is now overdue
        tasks.complete_task(ready_task(instance.id, element).id, data, user(username), now=six_days_ago)
    instance_id = instance.id
    db.session.remove()
    app.config["SCHEDULER_TIMER_SECONDS"] = 1
    scheduler = start_scheduler(app)
    try:
        deadline = time.monotonic() + 20
        escalation = None
        while escalation is None and time.monotonic() < deadline:
            time.sleep(0.5)
            escalation = ready_task(instance_id, "escalation_review")
            db.session.remove()  # end the read so the scheduler's thread can write
    finally:
        scheduler.shutdown(wait=True)
    assert escalation is not None, "the scheduler did not fire the due timer"
    assert escalation.group_name == "qa_management" and escalation.element_id == "escalation_review"


def test_scheduler_anchors_the_audit_trail_in_a_signed_checkpoint(app, seeded):
    head = db.session.get(AuditHead, 1).last_id
    db.session.remove()
    directory = app.config["AUDIT_CHECKPOINT_DIR"]
    scheduler = start_scheduler(app)
    try:
        deadline = time.monotonic() + 20
        while not list(directory.glob("checkpoint-*.json")) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        scheduler.shutdown(wait=True)
    (checkpoint,) = audit_checkpoints.load_checkpoints()
    assert (checkpoint.last_id, checkpoint.head_hash) == (head, db.session.get(AuditEvent, head).hash)

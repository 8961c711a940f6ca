"""Task due dates and the CAPA's overdue action-plan escalation through app.services.timers.fire_due_timers."""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from app.extensions import db
from app.models import AuditEvent, OutboxMessage, ProcessInstance, Task
from app.services.workflow import instances, tasks
from app.services.workflow.timers import fire_due_timers
from tests.conftest import T0
from tests.integration.capa_steps import STEPS, ready_task
from tests.integration.services.scenarios import count

PLAN_OVERDUE = T0 + timedelta(days=5)  # the action plan's boundary timer (P5D) of a CAPA reaching it at T0
MINUTE = timedelta(minutes=1)


def _capa_at_action_plan(user, now: datetime) -> ProcessInstance:
    """Start a CAPA at `now` and complete every step before the action plan at `now`."""
    instance = instances.start_instance("capa", user("qa"), title="Burr on hub", now=now)
    for element, username, data in STEPS[:3]:
        tasks.complete_task(ready_task(instance.id, element).id, data, user(username), now=now)
    return instance


def _escalations() -> list[Task]:
    return list(db.session.scalars(db.select(Task).where(Task.element_id == "escalation_review")))


def test_due_in_sets_each_task_due_date_from_its_creation(user):
    instance = instances.start_instance("capa", user("qa"), title="Burr on hub", now=T0)
    for hours, (element, username, data) in enumerate(STEPS[:3], start=1):
        tasks.complete_task(ready_task(instance.id, element).id, data, user(username), now=T0 + timedelta(hours=hours))

    due = {t.element_id: (t.created_at, t.due_at) for t in db.session.scalars(
        db.select(Task).where(Task.instance_id == instance.id, Task.kind == "user"))}
    hour = timedelta(hours=1)
    assert due == {
        "describe_problem": (T0, T0 + timedelta(days=2)),
        "containment": (T0 + hour, T0 + hour + timedelta(days=1)),
        "investigation": (T0 + 2 * hour, T0 + 2 * hour + timedelta(days=7)),
        "action_plan": (T0 + 3 * hour, T0 + 3 * hour + timedelta(days=5)),
    }


def test_timer_not_yet_due_fires_nothing(user):
    instance = _capa_at_action_plan(user, T0)
    assert instance.next_timer_at == PLAN_OVERDUE
    lock_version, task_rows = instance.lock_version, count(Task)

    assert fire_due_timers(PLAN_OVERDUE - MINUTE) == 0

    db.session.refresh(instance)
    assert (instance.lock_version, count(Task), count(OutboxMessage)) == (lock_version, task_rows, 0)
    assert _escalations() == []


def test_overdue_action_plan_escalates_exactly_once(user):
    instance = _capa_at_action_plan(user, T0)
    fired_at = PLAN_OVERDUE + MINUTE

    assert fire_due_timers(fired_at) == 1

    [escalation] = _escalations()
    assert (escalation.state, escalation.group_name, escalation.due_at) == (
        "ready", "qa_management", fired_at + timedelta(days=1))
    assert ready_task(instance.id, "action_plan") is not None  # non-interrupting: the plan is still open
    [notice] = db.session.scalars(db.select(OutboxMessage)).all()
    assert (notice.status, notice.instance_id, notice.subject) == (
        "queued", instance.id, "CAPA action plan overdue: Burr on hub")
    assert notice.recipients.split(",") == [f"{name}@qualiflow.example" for name in ("admin", "head", "releaser")]

    for later in (fired_at, fired_at + timedelta(hours=1), fired_at + timedelta(days=30)):
        assert fire_due_timers(later) == 0
    assert len(_escalations()) == 1
    assert count(OutboxMessage) == 1
    assert count(AuditEvent, AuditEvent.action == "timer.fired") == 1


def test_only_instances_with_a_due_timer_are_touched(user):
    due = _capa_at_action_plan(user, T0)
    later = _capa_at_action_plan(user, T0 + timedelta(days=3))
    untimed = instances.start_instance("capa", user("qa"), title="No timer yet", now=T0)
    assert (due.next_timer_at, later.next_timer_at, untimed.next_timer_at) == (
        PLAN_OVERDUE, T0 + timedelta(days=8), None)
    before = {i.id: i.lock_version for i in (due, later, untimed)}

    assert fire_due_timers(PLAN_OVERDUE + MINUTE) == 1

    db.session.expire_all()
    after = {i.id: i.lock_version for i in db.session.scalars(db.select(ProcessInstance))}
    assert after == {**before, due.id: before[due.id] + 1}
    assert [t.instance_id for t in _escalations()] == [due.id]


@pytest.mark.parametrize("completed_after", [timedelta(hours=1), timedelta(days=5) - MINUTE])
def test_completing_the_action_plan_in_time_cancels_the_timer(user, completed_after):
    instance = _capa_at_action_plan(user, T0)
    element, username, data = STEPS[3]
    tasks.complete_task(ready_task(instance.id, element).id, data, user(username), now=T0 + completed_after)

    db.session.refresh(instance)
    assert instance.next_timer_at is None or instance.next_timer_at > PLAN_OVERDUE
    assert fire_due_timers(PLAN_OVERDUE + timedelta(days=1)) == 0
    assert _escalations() == []
    assert count(OutboxMessage) == 0
    assert ready_task(instance.id, "do_action") is not None

"""An escalation task's page states what it escalates: each overdue open step of the instance with its due time,
how late it is and who holds it, in the page language."""
from __future__ import annotations

from datetime import timedelta

from app.services.workflow import instances, tasks, timers
from tests.conftest import T0, login
from tests.integration.capa_steps import STEPS, ready_task


def test_the_escalation_of_an_overdue_action_plan_names_the_step_its_due_time_and_who_holds_it(client, user):
    instance = instances.start_instance("capa", user("qa"), title="Burr on hub", now=T0)
    for element, username, data in STEPS[:3]:
        tasks.complete_task(ready_task(instance.id, element).id, data, user(username), now=T0)
    timers.fire_due_timers(T0 + timedelta(days=5, minutes=1))
    escalation = ready_task(instance.id, "escalation_review")
    plan = ready_task(instance.id, "action_plan")
    assert escalation is not None and plan is not None
    login(client, "head")
    page = client.get(f"/tasks/{escalation.id}?lang=en").get_data(as_text=True)
    overdue = page[page.index('data-testid="overdue-steps"'):]
    due = "2026-11-28 09:00 UTC"  # P5D from T0, on the plant clock (UTC in tests)
    assert f"Overdue step: {plan.name}, due {due}, " in overdue
    assert " late, held by the group Quality assurance." in overdue
    page = client.get(f"/tasks/{escalation.id}?lang=zh_CN").get_data(as_text=True)
    assert f"逾期步骤：{plan.name_zh}，截止 {due}，已逾期 " in page and "由 用户组“质量保证” 处理。" in page
    # The overdue step's own page does not list itself.
    login(client, "qa")
    assert f"Overdue step: {plan.name}," not in client.get(f"/tasks/{plan.id}?lang=en").get_data(as_text=True)

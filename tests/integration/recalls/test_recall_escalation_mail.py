"""A missed recall deadline e-mails the head of QA in each reader's language: the rule's text, then the deadline,
its due time on the plant clock, how late it is, the step that meets it and who holds that step."""
from __future__ import annotations

from datetime import timedelta

from app.extensions import db
from app.models import Deadline, OutboxMessage, User
from app.services.workflow import timers
from tests.conftest import T0, login
from tests.integration import recall_steps as steps


def test_a_missed_deadline_is_escalated_in_english_and_chinese(plant, user):
    db.session.execute(db.update(User).where(User.username == "head").values(language="zh-CN"))
    db.session.commit()
    instance = steps.decide(user, T0)
    steps.step(instance.id, "prepare_notices", steps.NOTICES, user, T0)
    deadline = db.session.scalar(db.select(Deadline).where(Deadline.instance_id == instance.id,
                                                           Deadline.key == "regulator_report"))
    timers.fire_due_timers(now=deadline.due_at + timedelta(hours=2, minutes=5))

    english, chinese = db.session.scalars(db.select(OutboxMessage).where(
        OutboxMessage.instance_id == instance.id, OutboxMessage.subject.contains("Recall event report")
        | OutboxMessage.subject.contains("召回事件报告")).order_by(OutboxMessage.id)).all()
    assert english.subject == "Recall deadline missed: Recall event report - Leaking infusion sets"
    assert sorted(english.recipients.split(",")) == ["admin@qualiflow.example", "releaser@qualiflow.example"]
    assert ("Deadline: Recall event report to the regulator, due 2026-11-24 09:00 UTC, 2 h 5 min late. "
            "The step that meets it: ") in english.body
    assert "now held by the group Regulatory affairs." in english.body
    assert chinese.subject == "召回时限已过：召回事件报告 - Leaking infusion sets"
    assert chinese.recipients == "head@qualiflow.example"
    assert "截止 2026-11-24 09:00 UTC，已逾期 2 小时 5 分钟。" in chinese.body
    assert "目前由 用户组“法规事务” 处理。" in chinese.body


def test_the_escalation_task_states_the_missed_deadline(client, plant, user):
    instance = steps.decide(user, T0)
    steps.step(instance.id, "prepare_notices", steps.NOTICES, user, T0)
    deadline = db.session.scalar(db.select(Deadline).where(Deadline.instance_id == instance.id,
                                                           Deadline.key == "regulator_report"))
    timers.fire_due_timers(now=deadline.due_at + timedelta(minutes=1))
    escalation = steps.ready(instance.id, "escalation_regulator_report")
    assert escalation is not None
    login(client, "head")
    page = client.get(f"/tasks/{escalation.id}?lang=en").get_data(as_text=True)
    notes = page[page.index('data-testid="escalations"'):]
    assert "Deadline: Recall event report to the regulator, due 2026-11-24 09:00 UTC" in notes
    assert "held by the group Regulatory affairs" in notes
    page = client.get(f"/tasks/{escalation.id}?lang=zh_CN").get_data(as_text=True)
    assert "已升级的时限" in page and "时限：向监管部门报告召回事件" in page

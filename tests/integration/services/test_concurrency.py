"""Two users acting on the same task at the same moment, each on its own connection: one wins, nothing doubles."""
from __future__ import annotations

from app.exceptions import Conflict, TaskNotClaimable
from app.extensions import db
from app.models import AuditEvent, ProcessInstance, Task
from app.services import users
from app.services.workflow import instances, tasks
from tests.conftest import T0
from tests.integration.capa_steps import STEPS, ready_task
from tests.integration.services.scenarios import count, run_together

RACERS = ("qa", "owner")  # both in group qa, which owns the first CAPA step
ROUNDS = 5


def _complete_as(username: str, task_id: int, data: dict):
    return lambda: tasks.complete_task(task_id, data, users.get_by_username(username), now=T0).id


def _claim_as(username: str, task_id: int):
    return lambda: tasks.claim_task(task_id, users.get_by_username(username), now=T0).id


def test_simultaneous_completions_advance_the_instance_one_step(app, user):
    element, _, data = STEPS[0]
    for round_ in range(ROUNDS):
        instance = instances.start_instance("capa", user("qa"), title=f"Race {round_}", now=T0)
        task = ready_task(instance.id, element)
        task_id, spiff_id, instance_id, lock_version = task.id, task.spiff_id, instance.id, instance.lock_version
        db.session.commit()  # hold no transaction (on SQLite, no write lock) while the racers run

        results = run_together(app, [_complete_as(name, task_id, data) for name in RACERS])

        [winner] = [name for name, result in zip(RACERS, results, strict=True) if result == task_id]
        [loser] = [result for result in results if result != task_id]
        assert isinstance(loser, Conflict) and loser.status == 409, repr(loser)
        db.session.expire_all()
        assert db.session.get(Task, task_id).completed_by.username == winner
        assert count(AuditEvent, AuditEvent.action == "task.completed", AuditEvent.object_id == spiff_id) == 1
        rows = db.session.scalars(db.select(Task).where(Task.instance_id == instance_id).order_by(Task.id)).all()
        assert [(r.element_id, r.state) for r in rows] == [
            (element, "completed"), ("containment", "ready"), ("link_source", "completed")]
        assert db.session.get(ProcessInstance, instance_id).lock_version == lock_version + 1


def test_simultaneous_claims_give_the_task_to_one_user(app, user):
    instance = instances.start_instance("capa", user("qa"), title="Claim race", now=T0)
    task = ready_task(instance.id, STEPS[0][0])
    task_id, spiff_id = task.id, task.spiff_id
    db.session.commit()

    results = run_together(app, [_claim_as(name, task_id) for name in RACERS])

    [winner] = [name for name, result in zip(RACERS, results, strict=True) if result == task_id]
    [loser] = [result for result in results if result != task_id]
    assert isinstance(loser, TaskNotClaimable), repr(loser)
    db.session.expire_all()
    assert db.session.get(Task, task_id).assignee.username == winner
    claimed = db.session.scalars(db.select(AuditEvent.new).where(AuditEvent.action == "task.claimed",
                                                                 AuditEvent.object_id == spiff_id)).all()
    assert claimed == [{"assignee": winner}]

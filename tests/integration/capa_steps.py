"""Drive the shipped CAPA through the service layer up to a chosen step (shared by several tests)."""
from __future__ import annotations

from app.extensions import db
from app.models import ProcessInstance, Task
from app.services import instances, tasks
from tests.conftest import T0

STEPS = [
    ("describe_problem", "qa", {"title": "Burr on hub", "source": "complaint", "severity": "major",
                                "description": "Burr found on the catheter hub", "reported_on": "2026-11-20",
                                "lot_numbers": "L2026-001"}),
    ("containment", "prod", {"containment_actions": "Hold lots L2026-001", "containment_done": True}),
    ("investigation", "qa", {"why_1": "Tool worn", "root_cause_category": "machine",
                             "root_cause": "Worn deburring tool at station 3"}),
    ("action_plan", "qa", {"actions": [{"description": "Replace tool", "owner": "prod", "due_date": "2026-12-01"}]}),
    ("implementation", "prod", {"implementation_summary": "Tool replaced", "completed_on": "2026-11-30"}),
    ("effectiveness", "qa", {"effectiveness_criterion": "No burr in 3 lots", "effectiveness_result": "0 of 300",
                             "effective": True}),
]


def ready_task(instance_id: int, element: str) -> Task:
    return db.session.scalar(db.select(Task).where(Task.instance_id == instance_id, Task.element_id == element,
                                                   Task.state == "ready"))


def run_capa_to_approval(user, now=T0) -> ProcessInstance:
    """Start a CAPA and complete every step before the e-signed QA approval."""
    instance = instances.start_instance("capa", user("qa"), title="Burr on hub", now=now)
    for element, username, data in STEPS:
        tasks.complete_task(ready_task(instance.id, element).id, data, user(username), now=now)
    return instance

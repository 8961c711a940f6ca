"""Drive the shipped CAPA through the service layer up to a chosen step (shared by several tests)."""
from __future__ import annotations

from datetime import datetime, timedelta

from app.extensions import db
from app.models import ProcessInstance, Task
from app.services.workflow import instances, tasks, timers
from tests.conftest import T0

PROBLEM = {"title": "Burr on hub", "source": "complaint", "source_reference": "CMP-2026-118", "severity": "major",
           "description": "Burr found on the catheter hub", "reported_on": "2026-10-20"}
CONTAINMENT = {"containment_actions": "Stock at the warehouse segregated and sorted", "containment_done": True}
INVESTIGATION = {"why_1": "The hub had a burr", "why_2": "The deburring tool was worn",
                 "why_3": "Tool wear is not checked", "root_cause_category": "machine",
                 "fishbone_machine": ["Worn deburring tool", "No tool-life counter"], "fishbone_method": ["No check"],
                 "root_cause": "Worn deburring tool at station 3"}
ACTION = {"description": "Replace tool", "type": "corrective", "owner": "prod", "due_date": "2026-12-01"}
PLAN = {"actions": [ACTION], "effectiveness_metric": "Burr complaints per 1000 hubs",
        "effectiveness_operator": "<=", "effectiveness_target": 0.5, "verification_period": "P30D"}
ACTION_DONE = {"action_done_note": "Tool replaced, tool-life counter set", "action_completed_on": "2026-10-25",
               "action_evidence": "MR-2026-311"}
MEASURED = {"measured_value": 0.2, "measured_on": "2026-11-23", "measurement_note": "Complaint database, 5,000 hubs"}
VERIFICATION_PERIOD = timedelta(days=30)

# (step, who, data) up to the wait for the verification period; do_action is the single action's task.
STEPS = [
    ("describe_problem", "qa", PROBLEM),
    ("containment", "prod", CONTAINMENT),
    ("investigation", "qa", INVESTIGATION),
    ("action_plan", "qa", PLAN),
    ("do_action", "prod", ACTION_DONE),
]


def ready_task(instance_id: int, element: str) -> Task:
    return db.session.scalar(db.select(Task).where(Task.instance_id == instance_id, Task.element_id == element,
                                                   Task.state == "ready").order_by(Task.id).limit(1))


def run_capa_to_approval(user, now: datetime = T0, language: str | None = None) -> ProcessInstance:
    """Run a CAPA (in language, default the starter's) so that its e-signed QA approval is waiting at `now`: the
    steps run one verification period (and a minute) earlier, the period's timer fires at `now` and the
    effectiveness is recorded then."""
    started = now - VERIFICATION_PERIOD - timedelta(minutes=1)
    instance = instances.start_instance("capa", user("qa"), title="Burr on hub", language=language, now=started)
    for element, username, data in STEPS:
        tasks.complete_task(ready_task(instance.id, element).id, data, user(username), now=started)
    timers.fire_due_timers(now)
    tasks.complete_task(ready_task(instance.id, "effectiveness").id, MEASURED, user("qa"), now=now)
    return instance

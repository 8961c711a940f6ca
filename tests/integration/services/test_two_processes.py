"""Steps run by different processes (a restart, a second worker, the scheduler) give the same instance."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta

from app.extensions import db
from app.models import Incident, ProcessInstance
from app.services.workflow import instances, tasks
from tests.conftest import ROOT, T0
from tests.integration.capa_steps import MEASURED, STEPS, ready_task


def _in_new_process(app, command: dict) -> dict:
    """Run one step in a fresh Python process on the same database; return what it printed."""
    db.session.commit()  # nothing of ours may hold the database while the other process writes
    result = subprocess.run(
        [sys.executable, "-m", "tests.integration.services.step_process", app.config["SQLALCHEMY_DATABASE_URI"],
         json.dumps(command)], cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr[-3000:]
    db.session.expire_all()
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_a_capa_run_across_three_processes_reaches_its_approval(seeded, user):
    instance = instances.start_instance("capa", user("qa"), title="Burr on hub", now=T0)
    for element, username, data in STEPS[:-1]:  # this process: warm caches from here on
        tasks.complete_task(ready_task(instance.id, element).id, data, user(username), now=T0)
    element, username, data = STEPS[-1]

    # A second process completes the multi-instance action task ...
    done = _in_new_process(seeded, {"complete": ready_task(instance.id, element).id, "as": username, "data": data,
                                    "now": T0.isoformat()})
    assert done["instance_status"] == "running"
    stored = db.session.get(ProcessInstance, instance.id)
    assert stored.next_timer_at is not None
    assert db.session.scalar(db.select(Incident).where(Incident.instance_id == instance.id)) is None

    # ... a third one (the scheduler) fires the verification period ...
    due = stored.next_timer_at
    fired = _in_new_process(seeded, {"tick": (due + timedelta(minutes=1)).isoformat()})
    assert fired == {"fired": 1, "failed": []}

    # ... and this one, whose cached spec saw none of that, goes on.
    tasks.complete_task(ready_task(instance.id, "effectiveness").id, MEASURED, user("qa"),
                        now=due + timedelta(minutes=2))
    assert ready_task(instance.id, "qa_approval") is not None

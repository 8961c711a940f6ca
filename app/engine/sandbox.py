"""SpiffWorkflow's script environment, running every script, condition and expression in a script worker.

The sandbox policy is in app/engine/script_policy.py; the worker processes and their limits in
app/engine/script_workers.py.
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Any

from SpiffWorkflow.bpmn.script_engine.python_environment import BasePythonScriptEngineEnvironment

from app.engine import script_workers
from app.engine.script_policy import HELPER_NAMES


class SandboxedEnvironment(BasePythonScriptEngineEnvironment):
    """Script environment for SpiffWorkflow that runs every script and expression in a worker process.

    now, holidays, workdays (make-up working days) and time_zone (the plant's) are what the helpers now(), today(),
    add_working_days() and working_days_between() use; the worker builds the helpers from them.
    """

    def __init__(self, now: datetime | None = None, holidays: tuple[date, ...] = (), time_limit: float = 1.0,
                 memory_limit_mb: int = 256, workers: int = 2, workdays: tuple[date, ...] = (),
                 time_zone: str | None = None) -> None:
        super().__init__({})
        self.now = now
        self.holidays = tuple(holidays)
        self.calendar = {"workdays": tuple(workdays), "time_zone": time_zone}
        self.time_limit = time_limit
        self.workers = script_workers.pool(workers, memory_limit_mb)

    def evaluate(self, expression: str, context: dict[str, Any], external_context: dict[str, Any] | None = None) -> Any:
        """Return the value of expression, with task data, helpers and external context visible as names."""
        return self.workers.evaluate(expression, context, external_context or {}, now=self.now,
                                     holidays=self.holidays, time_limit=self.time_limit, **self.calendar)

    def execute(self, script: str, context: dict[str, Any], external_context: dict[str, Any] | None = None) -> bool:
        """Run script so that the variables it assigns (and deletes) end up in the task data (context)."""
        external_context = external_context or {}
        clashes = (HELPER_NAMES | external_context.keys()) & context.keys()
        if clashes:  # the helper would become uncallable
            raise ValueError(
                f"Task data overwrites predefined function(s) {sorted(clashes)}; rename these variables or fields."
            )
        self.workers.execute(script, context, external_context, now=self.now, holidays=self.holidays,
                             time_limit=self.time_limit, **self.calendar)
        return True

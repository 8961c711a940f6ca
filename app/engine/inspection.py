"""Read-only views of a saved workflow: which diagram elements are done, active, waiting or failed."""
from __future__ import annotations

from SpiffWorkflow.util.task import TaskState

from app.engine.runner import load_spec
from app.engine.serializer import load_state
from app.models import ProcessInstance

# When one element has several engine tasks (a loop, a multi-instance), the strongest state wins.
STATE_ORDER = ("completed", "waiting", "active", "error")


def _state_of(task) -> str | None:
    if task.has_state(TaskState.ERROR):
        return "error"
    if task.has_state(TaskState.READY | TaskState.STARTED):  # a ready step, or a running subprocess
        return "active"
    if task.has_state(TaskState.WAITING):  # timers, message and signal catches, joins missing a branch
        return "waiting"
    if task.has_state(TaskState.COMPLETED):
        return "completed"
    return None  # predicted or cancelled paths are not where the instance stands


def strongest(first: str | None, second: str | None) -> str | None:
    """Return the state that wins when one element has both."""
    if first is None or second is None:
        return first or second
    return max(first, second, key=STATE_ORDER.index)


def element_states(instance: ProcessInstance) -> dict[str, str]:
    """Return the engine's state per BPMN element id of an instance's saved workflow, without changing it.

    Finished history is pruned from the saved tree (see pruning.py), so "completed" here covers only what
    the engine still holds; the task table keeps the rest.
    """
    if not instance.state_json:
        return {}
    spec, subprocess_specs = load_spec(instance.version)
    workflow = load_state(instance.state_json, spec, subprocess_specs)
    states: dict[str, str] = {}
    for wf in [workflow, *workflow.subprocesses.values()]:
        for task in wf.tasks.values():
            element_id = task.task_spec.bpmn_id  # None for the engine's own bookkeeping tasks
            state = _state_of(task)
            if element_id and state:
                states[element_id] = strongest(states.get(element_id), state)
    return states

"""Move a running instance onto another version of its process with SpiffWorkflow's spec diff.

An instance may move only when every task it stands at (ready, waiting, started or failed) still exists in the
target version; otherwise nothing changes. Open tasks keep their identity, data and timer due times, so the inbox
rows behind them stay the same rows; only what the new version says about them (name, form, lane...) changes.
"""
from __future__ import annotations

from copy import deepcopy
from dataclasses import dataclass

from SpiffWorkflow.bpmn.util.diff import diff_workflow, migrate_workflow
from SpiffWorkflow.util.task import TaskState

from app.engine.clock import engine_time
from app.engine.runner import (
    EngineContext,
    StepOutcome,
    _all_workflows,
    _load,
    _open_rows,
    _run,
    element_fields,
    load_spec,
)
from app.engine.serializer import spec_registry
from app.engine.validation import extension_properties
from app.exceptions import Conflict
from app.models import ProcessInstance, ProcessVersion

# The states of a task the instance stands at; predicted (future) tasks simply follow the new diagram.
_OPEN = TaskState.READY | TaskState.WAITING | TaskState.STARTED | TaskState.ERROR


class MigrationRefused(Conflict):
    """This instance cannot move to that version."""


@dataclass(frozen=True)
class MigrationOutcome:
    """What a migration did: the engine run after it and the elements whose settings changed under open tasks."""

    step: StepOutcome
    changed_elements: list[str]


def migrate(instance: ProcessInstance, target: ProcessVersion, ctx: EngineContext) -> MigrationOutcome:
    """Move instance onto target; raise MigrationRefused naming the open elements target lacks."""
    workflow = _load(instance, ctx)
    new_spec, new_subprocess_specs = load_spec(target)
    top_diff, subprocess_diffs = diff_workflow(spec_registry(), workflow, new_spec, new_subprocess_specs)
    missing = _missing_elements(workflow, top_diff)
    for sub_id, sub in workflow.subprocesses.items():
        missing += _missing_elements(sub, subprocess_diffs.get(sub_id))
    if missing:
        names = ", ".join(sorted(set(missing)))
        raise MigrationRefused(
            f"Version {target.version} of {target.definition.key} has no element {names}, where this instance "
            f"stands; finish or cancel that step first, or choose a version that still has it.")
    changed = sorted({_element(t) for d in (top_diff, *subprocess_diffs.values()) if d for t in d.changed
                      if t.has_state(_OPEN) and t.task_spec.bpmn_id})
    kept = {t.id: (deepcopy(t.data), deepcopy(t.internal_data))
            for wf in _all_workflows(workflow) for t in wf.tasks.values() if t.has_state(_OPEN)}
    with engine_time(ctx.now):  # re-predicting a branch may start a timer
        migrate_workflow(top_diff, workflow, new_spec)
        for sub_id, sub in workflow.subprocesses.items():
            migrate_workflow(subprocess_diffs[sub_id], sub, new_subprocess_specs[sub.spec.name])
    workflow.subprocess_specs = new_subprocess_specs
    # migrate_workflow resets open branches, which would drop a multi-instance item from its task's data and
    # restart waiting timers from now: open tasks get back what they had.
    for wf in _all_workflows(workflow):
        for task in wf.tasks.values():
            if task.id in kept and task.has_state(_OPEN):
                task.data, task.internal_data = kept[task.id]
    instance.version = target
    instance.version_id = target.id
    _refresh_rows(instance, workflow)
    return MigrationOutcome(step=_run(instance, workflow, ctx), changed_elements=changed)


def _element(task) -> str:
    return task.task_spec.bpmn_id or task.task_spec.name


def _missing_elements(workflow, diff) -> list[str]:
    """Return the elements open tasks of one (sub)workflow stand at that the target lacks.

    SpiffWorkflow also aligns a renamed element by its position in the flow; we do not: task rows, deadlines
    and four-eyes rules name elements by id, so an open task needs its element id in the target version.
    """
    # Engine-internal specs (a boundary event's parent, a subprocess's end join) have no BPMN id of their own.
    open_tasks = [t for t in workflow.tasks.values() if t.has_state(_OPEN) and t.task_spec.bpmn_id]
    if diff is None:  # the target has no such subprocess at all
        return [_element(t) for t in open_tasks]
    return [_element(t) for t in open_tasks
            if diff.alignment.get(t) is None or diff.alignment[t].bpmn_id != t.task_spec.bpmn_id]


def _refresh_rows(instance: ProcessInstance, workflow) -> None:
    """Copy what the target version says about each open task onto its row; due time and assignee stay."""
    live = {str(t.id): t for wf in _all_workflows(workflow) for t in wf.tasks.values()
            if t.has_state(TaskState.READY) and t.task_spec.manual}
    for row in _open_rows(instance):
        spiff_task = live.get(row.spiff_id)
        if spiff_task is None:
            continue  # _run cancels it
        fields = element_fields(spiff_task)
        if extension_properties(spiff_task.task_spec).get("subject"):
            # The row's name carries the subject evaluated when the task was created (one row per action).
            fields.pop("name"), fields.pop("name_zh")
        for name, value in fields.items():
            setattr(row, name, value)

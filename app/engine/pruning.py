"""Keep a workflow's task tree shallow: drop finished history above the lowest common ancestor of open tasks.

SpiffWorkflow nests every loop pass deeper in its task tree and its iterators stop at depth 1000, so a
long rework loop would make the library report the instance completed while a task is still READY. The
task table keeps the history we drop here, so nothing an auditor needs is lost, and the saved state (and
per-step cost) stays flat however long an instance runs.
"""
from __future__ import annotations

from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.task import Task as SpiffTask
from SpiffWorkflow.util.task import TaskState


def open_tasks(workflow) -> list[SpiffTask]:
    """Return every unfinished task of one (sub)workflow, at any depth."""
    return [t for t in workflow.tasks.values() if not t.has_state(TaskState.FINISHED_MASK)]


def _path_from_root(task: SpiffTask) -> list[SpiffTask]:
    path = []
    while task is not None:
        path.append(task)
        task = task.parent
    path.reverse()
    return path


def _pivot(workflow) -> SpiffTask | None:
    """Return the deepest finished task that is an ancestor of every open task, or None."""
    unfinished = open_tasks(workflow)
    if not unfinished:
        return None
    common = _path_from_root(unfinished[0])
    for task in unfinished[1:]:
        path = _path_from_root(task)
        size = 0
        for mine, theirs in zip(common, path, strict=False):
            if mine is not theirs:
                break
            size += 1
        common = common[:size]
    finished = [t for t in common if t.has_state(TaskState.FINISHED_MASK)]
    return finished[-1] if finished else None


def _subtree_ids(task: SpiffTask) -> set:
    ids, stack = set(), [task]
    while stack:
        current = stack.pop()
        ids.add(current.id)
        stack.extend(current.children)
    return ids


def prune_history(workflow: BpmnWorkflow) -> int:
    """Cut finished tasks above the pivot in the workflow and its subprocesses; return how many went."""
    removed = 0
    for wf in [workflow, *list(workflow.subprocesses.values())]:
        removed += _prune_one(workflow, wf)
    return removed


def _prune_one(top: BpmnWorkflow, wf) -> int:
    root = wf.task_tree
    pivot = _pivot(wf)
    if pivot is None or pivot is root or pivot.parent is root:
        return 0
    keep = _subtree_ids(pivot) | {root.id}
    dropped = [task_id for task_id in wf.tasks if task_id not in keep]
    for task_id in dropped:
        del wf.tasks[task_id]
        _drop_subprocess(top, task_id)
    root.children = [pivot]
    pivot.parent = root
    return len(dropped)


def _drop_subprocess(top: BpmnWorkflow, task_id) -> None:
    """Forget the (finished) subprocess a dropped call activity or subprocess task ran, if any."""
    sub = top.subprocesses.pop(task_id, None)
    if sub is None:
        return
    for nested_id in list(sub.tasks):
        _drop_subprocess(top, nested_id)


def hidden_open_task(workflow: BpmnWorkflow) -> SpiffTask | None:
    """Return an open task SpiffWorkflow cannot see when it says the workflow is completed, else None."""
    if not workflow.is_completed():
        return None
    for wf in [workflow, *workflow.subprocesses.values()]:
        unfinished = open_tasks(wf)
        if unfinished:
            return unfinished[0]
    return None

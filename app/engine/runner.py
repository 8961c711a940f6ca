"""The engine facade: start, complete, fire timers, retry - deserialize, step, prune, serialize, sync the task table.

Callers (app/services) own the transaction; nothing here commits.
"""
from __future__ import annotations

import hashlib
import json
import threading
import traceback
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any
from uuid import UUID

from lxml import etree
from SpiffWorkflow.bpmn.specs.event_definitions.multiple import MultipleEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from SpiffWorkflow.bpmn.specs.mixins.multiinstance_task import LoopTask
from SpiffWorkflow.bpmn.specs.mixins.service_task import ServiceTask
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.spiff.parser.process import SpiffBpmnParser
from SpiffWorkflow.task import Task as SpiffTask
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import bindparam, select
from sqlalchemy.orm.util import identity_key

from app.engine import data_check
from app.engine.clock import engine_time
from app.engine.pruning import hidden_open_task, open_tasks, prune_history
from app.engine.sandbox import SandboxedEnvironment
from app.engine.script_engine import QualiflowScriptEngine
from app.engine.serializer import as_restored, dump_state, load_state
from app.engine.validation import TASK_EXPRESSIONS, extension_properties, parse_duration
from app.exceptions import Conflict, ScriptRejected, TaskAlreadyCompleted, TaskNotClaimable
from app.extensions import db
from app.models import Incident, ProcessInstance, ProcessVersion, Task, User
from app.models.users import WORKER_ROLES


@dataclass(frozen=True)
class HandlerCall:
    """What a service task asks of a handler: the operator, its evaluated parameters and where it runs."""

    instance: ProcessInstance
    element_id: str
    spiff_id: str
    operator: str
    params: dict[str, Any]
    data: dict[str, Any]


@dataclass
class EngineContext:
    """Per-use-case inputs the engine needs from the service layer."""

    now: datetime
    call_handler: Any  # Callable[[HandlerCall], Any]; runs inside the caller's transaction
    script_time_limit: float = 1.0
    holidays: tuple[date, ...] = ()  # skipped by add_working_days / working_days_between in scripts
    workdays: tuple[date, ...] = ()  # weekend days worked instead (调休), counted by the same helpers
    time_zone: str | None = None  # the plant's zone: today() and the helpers count its local dates
    script_memory_limit_mb: int = 256  # per script worker process
    script_workers: int = 2  # processes running scripts and conditions, shared by the threads of this process


@dataclass
class StepOutcome:
    """What one engine run changed, for the caller's audit trail and notifications."""

    created: list[Task] = field(default_factory=list)
    cancelled: list[Task] = field(default_factory=list)
    automated: list[Task] = field(default_factory=list)
    incident: Incident | None = None
    completed: bool = False


_SPEC_CACHE: dict[int, tuple[str, Any, dict]] = {}
_SPEC_LOCK = threading.Lock()
_SAFE_XML = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def _process_id(version: ProcessVersion) -> str:
    return version.definition.key


def load_spec(version: ProcessVersion) -> tuple[Any, dict]:
    """Return the parsed (spec, subprocess specs) of a version, parsing its BPMN once per process."""
    with _SPEC_LOCK:
        cached = _SPEC_CACHE.get(version.id)
        if cached and cached[0] == version.content_hash:
            return cached[1], cached[2]
    parser = SpiffBpmnParser()
    for name, xml in version.decisions.items():  # the DMN files deployed with it
        parser.add_dmn_xml(etree.fromstring(xml.encode(), _SAFE_XML), filename=name)
    parser.add_bpmn_xml(etree.fromstring(version.bpmn_xml.encode(), _SAFE_XML), filename=version.filename)
    spec, subprocess_specs = as_restored(
        parser.get_spec(_process_id(version)),
        parser.get_subprocess_specs(_process_id(version), require_call_activity_specs=False))
    for callee in version.callees:  # call activities run the callee versions it was deployed against
        callee_spec, callee_subprocesses = load_spec(callee)
        subprocess_specs = {**callee_subprocesses, **subprocess_specs, callee.definition.key: callee_spec}
    with _SPEC_LOCK:
        _SPEC_CACHE[version.id] = (version.content_hash, spec, subprocess_specs)
    return spec, subprocess_specs


def _script_engine(instance: ProcessInstance, ctx: EngineContext) -> QualiflowScriptEngine:
    def call(spiff_task: SpiffTask, operator: str, params: dict[str, Any]) -> Any:
        return ctx.call_handler(HandlerCall(
            instance=instance, element_id=spiff_task.task_spec.bpmn_id or spiff_task.task_spec.name,
            spiff_id=str(spiff_task.id), operator=operator, params=params, data=dict(spiff_task.data)))

    environment = SandboxedEnvironment(now=ctx.now, holidays=ctx.holidays, workdays=ctx.workdays,
                                       time_zone=ctx.time_zone, time_limit=ctx.script_time_limit,
                                       memory_limit_mb=ctx.script_memory_limit_mb, workers=ctx.script_workers)
    return QualiflowScriptEngine(environment, call)


def _load(instance: ProcessInstance, ctx: EngineContext) -> BpmnWorkflow:
    spec, subprocess_specs = load_spec(instance.version)
    workflow = load_state(instance.state_json, spec, subprocess_specs)
    workflow.script_engine = _script_engine(instance, ctx)  # not serialized: reattach on every load
    return workflow


def start(instance: ProcessInstance, data: dict[str, Any], ctx: EngineContext) -> StepOutcome:
    """Create the workflow for a new (flushed) instance, run it to its first wait and save it."""
    spec, subprocess_specs = load_spec(instance.version)
    workflow = BpmnWorkflow(spec, subprocess_specs, script_engine=_script_engine(instance, ctx))
    first = workflow.get_next_task(state=TaskState.READY)
    if first is not None:
        first.data.update(data)
    return _run(instance, workflow, ctx)


def ready_task(instance: ProcessInstance, task: Task, ctx: EngineContext) -> tuple[BpmnWorkflow, SpiffTask]:
    """Load the instance and return its workflow and the READY user task behind a task row."""
    workflow = _load(instance, ctx)
    spiff_task = workflow.get_task_from_id(UUID(task.spiff_id))
    if spiff_task is None or spiff_task.has_state(TaskState.FINISHED_MASK):
        raise TaskAlreadyCompleted()
    if not spiff_task.has_state(TaskState.READY) or not spiff_task.task_spec.manual:
        raise TaskNotClaimable("This task is not waiting for a user.")
    return workflow, spiff_task


def complete(instance: ProcessInstance, task: Task, data: dict[str, Any], ctx: EngineContext) -> StepOutcome:
    """Complete a READY user task with data and run the engine to the next wait."""
    with engine_time(ctx.now):
        workflow, spiff_task = ready_task(instance, task, ctx)
        spiff_task.data.update(data)
        try:
            spiff_task.run()
        except Exception as err:  # e.g. a multi-instance that finds no output item in the completed child
            return _failed_completion(instance, task, data, err, ctx)
    return _run(instance, workflow, ctx)


_COMPLETION_FAILED = "qualiflow_completion_failed"  # internal data of a user task whose completion raised


def _failed_completion(instance: ProcessInstance, task: Task, data: dict[str, Any], err: Exception,
                       ctx: EngineContext) -> StepOutcome:
    """Stop the instance at the task with an incident: the state before this completion, the user's data kept on
    the task, which is left in ERROR so that a retry completes it again with that data."""
    workflow, spiff_task = ready_task(instance, task, ctx)  # reloaded: the failed run may have half-changed things
    spiff_task.data.update(data)
    spiff_task.internal_data[_COMPLETION_FAILED] = True
    spiff_task.error()
    element_id = spiff_task.task_spec.bpmn_id
    outcome = StepOutcome()
    outcome.incident = _record_incident(instance, element_id, f"Completing {element_id} failed: {_reason(err)}",
                                        "".join(traceback.format_exception(err)), ctx)
    return _run(instance, workflow, ctx, outcome)


def fire_timers(instance: ProcessInstance, ctx: EngineContext, open_rows: list[Task] | None = None) -> StepOutcome:
    """Let due timer events of one instance fire at ctx.now and run the engine on. `open_rows`: the instance's
    ready task rows when the caller read them already (open_rows_of, for many instances in one query)."""
    workflow = _load(instance, ctx)
    with engine_time(ctx.now):
        workflow.refresh_timers()
    return _run(instance, workflow, ctx, open_rows=open_rows)


def retry(instance: ProcessInstance, ctx: EngineContext) -> StepOutcome:
    """Put the failed tasks of an instance with an incident back to READY and run the engine again."""
    workflow = _load(instance, ctx)
    failed = [t for wf in _all_workflows(workflow) for t in wf.tasks.values() if t.has_state(TaskState.ERROR)]
    if not failed and instance.status != "incident":
        raise Conflict("This instance has no failed task to retry.")
    instance.status = "running"
    outcome = StepOutcome()
    with engine_time(ctx.now):
        try:
            for spiff_task in failed:
                spiff_task._set_state(TaskState.READY)
                if spiff_task.internal_data.pop(_COMPLETION_FAILED, False):
                    spiff_task.run()  # the user's completion, with the data they gave, goes through now
            _merge_stranded_children(workflow)
        except Exception as err:
            outcome.incident = _incident(instance, workflow, err, ctx)
    outcome = _run(instance, workflow, ctx, outcome)
    if outcome.incident is None:
        _resolve_incidents(instance, ctx)
    return outcome


def _resolve_incidents(instance: ProcessInstance, ctx: EngineContext) -> None:
    for incident in db.session.scalars(
            select(Incident).where(Incident.instance_id == instance.id, Incident.resolved_at.is_(None))):
        incident.resolved_at = ctx.now


def cancel(instance: ProcessInstance, ctx: EngineContext) -> StepOutcome:
    """Cancel a running instance: every open task is cancelled."""
    workflow = _load(instance, ctx)
    with engine_time(ctx.now):
        workflow.cancel()
    outcome = StepOutcome()
    _save(instance, workflow, outcome, ctx)
    for row in _open_rows(instance):
        row.state = "cancelled"
        outcome.cancelled.append(row)
    _resolve_incidents(instance, ctx)  # nothing is left to retry
    instance.status = "cancelled"
    instance.completed_at = ctx.now
    instance.next_timer_at = None
    return outcome


def _all_workflows(workflow: BpmnWorkflow) -> list:
    return [workflow, *workflow.subprocesses.values()]


def _merge_stranded_children(workflow: BpmnWorkflow) -> None:
    """Merge the completed children a loop or multi-instance task never merged.

    Before specs were wired as SpiffWorkflow's deserializer wires them, the last child completed in a new
    process left its parent STARTED for ever; a retry of such an instance finishes what was missed.
    """
    for wf in _all_workflows(workflow):
        for task in list(wf.tasks.values()):
            spec = task.task_spec
            if not isinstance(spec, LoopTask) or not task.has_state(TaskState.STARTED):
                continue
            merged = task.internal_data.get("merged", [])
            for child in list(task.children):
                if (child.task_spec.name == spec.task_spec and child.has_state(TaskState.COMPLETED)
                        and str(child.id) not in merged and task.has_state(TaskState.STARTED)):
                    spec.merge_child(child.workflow, child)


def _run(instance: ProcessInstance, workflow: BpmnWorkflow, ctx: EngineContext,
         outcome: StepOutcome | None = None, *, open_rows: list[Task] | None = None) -> StepOutcome:
    outcome = outcome or StepOutcome()
    automated: list[SpiffTask] = []

    def did_complete(spiff_task: SpiffTask) -> None:
        if isinstance(spiff_task.task_spec, ServiceTask):
            automated.append(spiff_task)

    with engine_time(ctx.now):
        try:
            workflow.do_engine_steps(did_complete_task=did_complete)
        except SpiffWorkflowException as err:
            outcome.incident = outcome.incident or _incident(instance, workflow, err, ctx)
        except Exception as err:  # a bug in a handler must not lose the instance either
            outcome.incident = outcome.incident or _incident(instance, workflow, err, ctx)
    prune_history(workflow)
    # before saving: a failed one leaves its task in ERROR
    assignments = _assignments(instance, workflow, outcome, ctx, open_rows)
    if outcome.incident is None:
        outcome.incident = _stuck(instance, workflow, ctx)
    _save(instance, workflow, outcome, ctx)
    _sync_tasks(instance, workflow, automated, outcome, ctx, assignments, open_rows)
    if outcome.incident is None and not any(open_tasks(wf) for wf in _all_workflows(workflow)):
        instance.status = "completed"
        instance.completed_at = ctx.now
        outcome.completed = True
    return outcome


def stalled_at(workflow: BpmnWorkflow) -> str | None:
    """Return the element an unfinished workflow is stuck at when nothing can move it on, else None.

    A running instance always waits for something: a ready user task, a timer, a message or signal.
    Open tasks with none of these (a multi-instance whose last child was never merged, a join whose
    branches are gone) would wait for ever without anyone noticing.
    """
    if _live_user_tasks(workflow) or workflow.event_manager.tasks:
        return None
    stuck = [t for wf in _all_workflows(workflow) for t in wf.tasks.values()
             if t.has_state(TaskState.DEFINITE_MASK) and t.task_spec.bpmn_id]
    if not stuck:
        return None
    # A started task (a loop, a multi-instance, a subprocess) is where the run stopped; the path ahead of it
    # is only FUTURE. Among those, the deepest is the most specific.
    rank = {TaskState.STARTED: 3, TaskState.WAITING: 2, TaskState.READY: 1}
    return max(stuck, key=lambda t: (rank.get(t.state, 0), t.workflow.depth, t.depth)).task_spec.bpmn_id


def _stuck(instance: ProcessInstance, workflow: BpmnWorkflow, ctx: EngineContext) -> Incident | None:
    """Turn a workflow that can no longer move (or that SpiffWorkflow would call completed too early) into an
    incident naming the element, rather than an instance that waits for ever."""
    hidden = hidden_open_task(workflow)
    if hidden is not None:
        return _record_incident(
            instance, hidden.task_spec.bpmn_id,
            f"The engine lost sight of task {hidden.task_spec.bpmn_id!r} at tree depth {hidden.depth}; "
            "the instance is held instead of being reported completed.", "", ctx)
    element_id = stalled_at(workflow)
    if element_id is None:
        return None
    return _record_incident(
        instance, element_id,
        f"Stalled at {element_id}: the instance is running but no task is ready and no timer, message or signal "
        "is awaited, so it would wait for ever. Retry it; if it stalls again, fix the diagram and migrate it.",
        "", ctx)


def record_failure(instance: ProcessInstance, err: Exception, ctx: EngineContext) -> StepOutcome:
    """Put an instance in incident for an error raised outside the engine's own handling (its step rolled back)."""
    message = f"The step failed and was undone: {err.__class__.__name__}: {_reason(err)}"
    return StepOutcome(incident=_record_incident(instance, None, message, "".join(traceback.format_exception(err)),
                                                 ctx))


def check(instance: ProcessInstance, ctx: EngineContext) -> StepOutcome:
    """Look at a running instance without moving it: an incident if it stalled, else nothing changes."""
    workflow = _load(instance, ctx)
    return StepOutcome(incident=_stuck(instance, workflow, ctx))


def _incident(instance: ProcessInstance, workflow: BpmnWorkflow, err: Exception, ctx: EngineContext) -> Incident:
    failed = [t for wf in _all_workflows(workflow) for t in wf.tasks.values() if t.has_state(TaskState.ERROR)]
    element_id = failed[0].task_spec.bpmn_id if failed else None
    inner = getattr(err, "exception", None)
    if isinstance(inner, ScriptRejected):  # SpiffWorkflow would prefix the class name and add its own notes
        message = f"Script rejected at {element_id}: {inner.message}"
    else:
        message = " ".join([str(err), *getattr(err, "__notes__", [])]).strip() or err.__class__.__name__
    return _record_incident(instance, element_id, message, "".join(traceback.format_exception(err)), ctx)


def _record_incident(instance: ProcessInstance, element_id: str | None, message: str, trace: str,
                     ctx: EngineContext) -> Incident:
    incident = db.session.scalar(
        select(Incident).where(Incident.instance_id == instance.id, Incident.resolved_at.is_(None)))
    if incident is None:
        incident = Incident(instance_id=instance.id, created_at=ctx.now, message=message)
        db.session.add(incident)
    else:
        incident.retry_count += 1
    incident.element_id = element_id
    incident.message = message[:4000]
    incident.traceback = trace
    instance.status = "incident"
    return incident


def _save(instance: ProcessInstance, workflow: BpmnWorkflow, outcome: StepOutcome, ctx: EngineContext) -> None:
    try:
        instance.state_json = dump_state(workflow)
    except (TypeError, ValueError, RecursionError, OverflowError) as err:  # a value task data cannot hold
        incident = _drop_unstorable(instance, workflow, err, ctx)
        outcome.incident = outcome.incident or incident
        instance.state_json = dump_state(workflow)
    instance.next_timer_at = _next_timer_at(workflow)
    instance.data = _json_safe(_latest_data(workflow))


def _drop_unstorable(instance: ProcessInstance, workflow: BpmnWorkflow, err: Exception,
                     ctx: EngineContext) -> Incident:
    """Remove the values task data cannot hold and raise an incident at the element that first stored one.

    The value is not kept (it could not be saved anyway); the instance stops there, so nobody works on
    with a step's result missing, until the diagram is fixed and the instance retried or migrated.
    """
    found: list[tuple[SpiffTask | None, str, str, str]] = []
    for wf in _all_workflows(workflow):
        found.extend((None, key, path, reason) for key, path, reason in data_check.problems(wf.data))
        for task in sorted(wf.tasks.values(), key=lambda t: t.last_state_change):
            found.extend((task, key, path, reason) for key, path, reason in data_check.problems(task.data))
    if not found:
        raise err  # not a data value: a defect of ours, let it surface
    task, key, path, reason = _producer(found)
    for wf in _all_workflows(workflow):
        for bad_key in {item[1] for item in found}:
            wf.data.pop(bad_key, None)
            for holder in wf.tasks.values():
                holder.data.pop(bad_key, None)
    element_id = task.task_spec.bpmn_id if task is not None else None
    where = element_id or "the process data"
    return _record_incident(
        instance, element_id,
        f'{where} stored "{path}" as {reason}; the value was not kept and the instance stopped here. '
        "Task data holds text, numbers, true/false, lists, objects with text keys, dates and durations. "
        "Fix the script (or handler), then retry.", "".join(traceback.format_exception(err)), ctx)


def _latest_data(workflow: BpmnWorkflow) -> dict[str, Any]:
    tasks = list(workflow.tasks.values())
    # A parallel join waiting for its other branches holds no data until it fires: it is no source.
    ready = [t for t in tasks if t.has_state(TaskState.READY | TaskState.WAITING | TaskState.ERROR) and t.data]
    finished = [t for t in tasks if t.has_state(TaskState.COMPLETED)]
    source = ready or finished
    return dict(max(source, key=lambda t: t.last_state_change).data) if source else {}


def _producer(found: list[tuple[SpiffTask | None, str, str, str]]) -> tuple[SpiffTask | None, str, str, str]:
    """Return the finding of the element that stored a bad value: the first holder whose parent did not hold it."""
    for item in found:
        task, key = item[0], item[1]
        if task is None or not task.task_spec.bpmn_id:
            continue
        parent = task.parent
        if parent is None or key not in parent.data or data_check.first_problem({key: parent.data[key]}) is None:
            return item
    return found[0]


def _plain(value: Any) -> Any:
    """Return what JSON holds for a stored non-JSON value: dates as ISO text, sets as lists, never a repr."""
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, set | frozenset):
        return list(value)
    if callable(value):
        return None
    return str(value)  # durations and UUIDs, the remaining types the engine state holds


def _json_safe(data: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(data, default=_plain))


def _next_timer_at(workflow: BpmnWorkflow) -> datetime | None:
    """Return when the earliest waiting timer event of the workflow (or its subprocesses) is due."""
    due: list[datetime] = []
    for spiff_task in workflow.event_manager.tasks.values():
        definition = getattr(spiff_task.task_spec, "event_definition", None)
        # An event-based gateway (or a multiple event) holds its timers inside one combined definition.
        inner = definition.event_definitions if isinstance(definition, MultipleEventDefinition) else [definition]
        if not any(isinstance(item, TimerEventDefinition) for item in inner):
            continue
        value = spiff_task._get_internal_data("event_value")
        if isinstance(value, dict):
            value = value.get("next") if value.get("cycles") else None
        if value:
            due.append(TimerEventDefinition.get_datetime(value))
    return min(due) if due else None


def _open_rows(instance: ProcessInstance, known: list[Task] | None = None) -> list[Task]:
    """Return the instance's ready task rows, as changed in this session (pending changes win); `known` are the
    rows the caller read already (open_rows_of), else they are read now."""
    if known is not None:
        return [row for row in known if row.state == "ready"]
    # No autoflush: rows already loaded keep their unflushed state, and all writes go out once at commit.
    with db.session.no_autoflush:
        rows = db.session.scalars(select(Task).where(Task.instance_id == instance.id, Task.state == "ready"))
        return [row for row in rows if row.state == "ready"]


# Built once, as every step runs it: building a statement and its cache key cost more than running it.
_READY_ROWS = select(Task.id, Task.spiff_id).where(Task.instance_id == bindparam("instance_id"), Task.state == "ready")


def _open_row_refs(instance: ProcessInstance, known: list[Task] | None = None) -> dict[str, Task | int]:
    """Map the spiff id of each of the instance's ready task rows to the row, or to its id when the row is not loaded.

    Most steps change none of those rows (parallel work goes on), so their ids are read as plain columns, not as
    objects (10 open tasks cost ~0.6 ms as ORM rows); `_row` loads one when it has to change. As `_open_rows`: pending
    changes win (a row this transaction completed is no longer ready), `known` rows are the caller's."""
    if known is not None:
        return {row.spiff_id: row for row in known if row.state == "ready"}
    session = db.session()
    refs: dict[str, Task | int] = {}
    found = session.connection().execute(_READY_ROWS, {"instance_id": instance.id}).all()  # no flush, no ORM
    identity_map = session.identity_map
    for row_id, spiff_id in found:
        loaded = identity_map.get(identity_key(Task, row_id))
        if loaded is None:
            refs[spiff_id] = row_id
        elif loaded.state == "ready":
            refs[spiff_id] = loaded
    return refs


def _row(ref: Task | int) -> Task:
    if isinstance(ref, Task):
        return ref
    with db.session.no_autoflush:
        return db.session.get(Task, ref)


def open_rows_of(instance_ids: list[int]) -> dict[int, list[Task]]:
    """The ready task rows of many instances in one query (the timer tick's batch), for fire_timers."""
    found: dict[int, list[Task]] = {instance_id: [] for instance_id in instance_ids}
    with db.session.no_autoflush:
        for row in db.session.scalars(select(Task).where(Task.instance_id.in_(instance_ids), Task.state == "ready")):
            found[row.instance_id].append(row)
    return found


def _live_user_tasks(workflow: BpmnWorkflow) -> dict[str, SpiffTask]:
    return {str(t.id): t for wf in _all_workflows(workflow) for t in wf.tasks.values()
            if t.has_state(TaskState.READY) and t.task_spec.manual}


@dataclass(frozen=True)
class Assignment:
    """What a new user task's `assignee`, `dueDate` and `subject` properties evaluated to."""

    assignee: User | None = None
    due_at: datetime | None = None
    subject: str = ""


def _assignments(instance: ProcessInstance, workflow: BpmnWorkflow, outcome: StepOutcome,
                 ctx: EngineContext, open_rows: list[Task] | None = None) -> dict[str, Assignment]:
    """Evaluate the task properties that are expressions over a new user task's own data (a multi-instance
    child sees its item), so each task can go to its own owner with its own due date.

    A failing expression stops the instance with an incident at that task (left in ERROR, so a retry
    evaluates it again) rather than creating a task nobody is meant to see.
    """
    candidates = []
    for spiff_id, spiff_task in _live_user_tasks(workflow).items():
        props = extension_properties(spiff_task.task_spec)
        if any(props.get(name) for name in TASK_EXPRESSIONS):
            candidates.append((spiff_id, spiff_task, props))
    # Only then ask which tasks already have their row: most steps have no such task and skip the query.
    known = _open_row_refs(instance, open_rows) if candidates else {}
    result: dict[str, Assignment] = {}
    for spiff_id, spiff_task, props in candidates:
        if spiff_id in known:
            continue
        try:
            result[spiff_id] = _assignment(spiff_task, props)
        except Exception as err:  # the sandbox raises its own errors, SpiffWorkflow wraps others
            spiff_task.error()
            if outcome.incident is None:
                element_id = spiff_task.task_spec.bpmn_id
                outcome.incident = _record_incident(
                    instance, element_id, f"Task properties of {element_id} failed: {_reason(err)}",
                    "".join(traceback.format_exception(err)), ctx)
    return result


def _reason(err: Exception) -> str:
    inner = getattr(err, "exception", None) or err
    return getattr(inner, "message", None) or str(inner) or inner.__class__.__name__


def _assignment(spiff_task: SpiffTask, props: dict[str, str]) -> Assignment:
    def value(name: str) -> Any:
        expression = props.get(name)
        return spiff_task.workflow.script_engine.evaluate(spiff_task, expression) if expression else None

    username, due, subject = value("assignee"), value("dueDate"), value("subject")
    assignee = None
    if username:
        assignee = db.session.scalar(select(User).where(User.username == str(username).strip()))
        # An unknown, inactive or read-only user cannot work on it: the task stays offered to its lane's group.
        if assignee is not None and not (assignee.active and assignee.has_role(*WORKER_ROLES)):
            assignee = None
    return Assignment(assignee=assignee, due_at=_due_moment(due) if due else None,
                      subject=str(subject).strip() if subject is not None else "")


def _due_moment(value: Any) -> datetime:
    """Turn a dueDate value into a UTC time: a date means the end of that day (UTC), a naive time is UTC."""
    if isinstance(value, str):
        text = value.strip()
        value = date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text)
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, date):
        return datetime.combine(value, time(23, 59, 59), UTC)
    raise ValueError(f"dueDate must be an ISO date or date-time, not {value!r}")


def _sync_tasks(instance: ProcessInstance, workflow: BpmnWorkflow, automated: list[SpiffTask],
                outcome: StepOutcome, ctx: EngineContext, assignments: dict[str, Assignment],
                open_rows: list[Task] | None = None) -> None:
    rows = _open_row_refs(instance, open_rows)
    live = _live_user_tasks(workflow)
    for spiff_id, ref in rows.items():
        if spiff_id not in live:
            row = _row(ref)
            row.state = "cancelled"
            outcome.cancelled.append(row)
    for spiff_id, spiff_task in live.items():
        if spiff_id not in rows:
            outcome.created.append(_new_row(instance, spiff_task, ctx, assignments.get(spiff_id)))
    for spiff_task in automated:
        row = _new_row(instance, spiff_task, ctx)
        row.state = "completed"
        row.completed_at = ctx.now
        result_variable = spiff_task.task_spec.result_variable
        row.data = _json_safe({result_variable: spiff_task.data.get(result_variable)})
        outcome.automated.append(row)


def _kind(spiff_task: SpiffTask) -> str:
    if isinstance(spiff_task.task_spec, ServiceTask):
        return "service"
    if spiff_task.task_spec.manual:
        return "user"
    return spiff_task.task_spec.__class__.__name__.lower()


def element_fields(spiff_task: SpiffTask) -> dict[str, Any]:
    """Return what a task row takes from its diagram element: id, names, kind, lane, form and gate settings."""
    spec = spiff_task.task_spec
    props = extension_properties(spec)
    return {
        "element_id": spec.bpmn_id or spec.name, "name": spec.bpmn_name or spec.bpmn_id or spec.name,
        "name_zh": props.get("name:zh-CN"), "kind": _kind(spiff_task), "lane": spec.lane, "group_name": spec.lane,
        "form": props.get("formJsonSchemaFilename"), "ui_form": props.get("formUiSchemaFilename"),
        "signature_meaning": props.get("signatureMeaning"), "evidence": props.get("evidence"),
        "four_eyes_with": props.get("fourEyesWith"),
    }


def _new_row(instance: ProcessInstance, spiff_task: SpiffTask, ctx: EngineContext,
             assignment: Assignment | None = None) -> Task:
    fields = element_fields(spiff_task)
    due_in = extension_properties(spiff_task.task_spec).get("dueIn")
    assignment = assignment or Assignment()
    if assignment.subject:  # several tasks of one step (a multi-instance) tell themselves apart by it
        fields["name"] = f"{fields['name']}: {assignment.subject}"[:300]
        fields["name_zh"] = f"{fields['name_zh']}：{assignment.subject}"[:300] if fields["name_zh"] else None
    due_at = assignment.due_at or (ctx.now + parse_duration(due_in) if due_in else None)
    row = Task(instance_id=instance.id, spiff_id=str(spiff_task.id), state="ready", created_at=ctx.now,
               due_at=due_at, assignee=assignment.assignee, **fields)
    db.session.add(row)
    return row


def data_hash(data: dict[str, Any]) -> str:
    """Return the SHA-256 of data in canonical JSON (sorted keys, no whitespace)."""
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()

"""The inbox: list my tasks, claim, release and complete them (with form validation and signatures)."""
from __future__ import annotations

from datetime import datetime

from flask_babel import gettext as _
from sqlalchemy import bindparam, select
from sqlalchemy.orm import contains_eager

from app import engine
from app.exceptions import (
    Conflict,
    NotFound,
    PermissionDenied,
    TaskAlreadyCompleted,
    TaskNotClaimable,
)
from app.extensions import db
from app.models import ProcessInstance, ProcessVersion, Task, User
from app.models.types import utcnow
from app.services.evidence import audit, signatures
from app.services.workflow import deadlines, form_checks, forms
from app.services.workflow.execution import engine_context
from app.services.workflow.inbox import InboxFilter, InboxPage, inbox  # noqa: F401 - the inbox's API
from app.services.workflow.instances import record_outcome, require_worker
from app.services.workflow.transaction import atomic, keep_loaded


def get_task(task_id: int) -> Task:
    task = db.session.get(Task, task_id)
    if task is None:
        raise NotFound(_("No task %(id)s.", id=task_id))
    return task


# Built once (every claim, release and completion runs it): building a statement and its cache key cost more CPU
# than running it.
_LOCKED_TASK = (select(Task).join(Task.instance).options(contains_eager(Task.instance))
                .where(Task.id == bindparam("task_id"))
                .with_for_update(of=[Task, ProcessInstance]).execution_options(populate_existing=True))


def _locked_task(task_id: int) -> Task:
    """Load a task and lock its instance row, so concurrent completions of one instance queue up."""
    task = db.session.scalar(_LOCKED_TASK, {"task_id": task_id})
    if task is None:
        raise NotFound(_("No task %(id)s.", id=task_id))
    return task


def can_work_on(task: Task, actor: User) -> bool:
    """Tell whether actor may claim or complete the task (group member or admin, never read-only)."""
    if not actor.has_role("admin", "process_owner", "staff", "qa_releaser"):
        return False
    return actor.has_role("admin") or task.group_name in actor.group_names or task.assignee_id == actor.id


def _check_workable(task: Task, actor: User) -> None:
    if task.state == "completed":
        raise TaskAlreadyCompleted()
    if task.state != "ready" or task.kind != "user":
        raise TaskNotClaimable("This task is no longer waiting for a user.")
    if not can_work_on(task, actor):
        raise PermissionDenied(_("This task belongs to the group %(group)s, which you are not in.",
                                 group=repr(task.group_name)))
    if task.assignee_id not in (None, actor.id):
        raise TaskNotClaimable(_("This task is claimed by %(name)s.", name=task.assignee.full_name))


def claim_task(task_id: int, actor: User, now: datetime | None = None) -> Task:
    """Assign a ready task of one of my groups to me."""
    with atomic():
        require_worker(actor)
        task = _locked_task(task_id)
        _check_workable(task, actor)
        if task.assignee_id != actor.id:
            task.assignee_id = actor.id
            audit.record(actor, "task.claimed", "task", task.spiff_id, instance_id=task.instance_id, at=now,
                         old={"assignee": None}, new={"assignee": actor.username})
        keep_loaded(task, actor)  # the answer shows them
    return task


def release_task(task_id: int, actor: User, now: datetime | None = None) -> Task:
    """Give a claimed task back to its group (the assignee or an admin)."""
    with atomic():
        task = _locked_task(task_id)
        if task.state != "ready":
            raise TaskNotClaimable("Only a waiting task can be released.")
        if task.assignee_id is None:
            raise Conflict("This task is not claimed.")
        if task.assignee_id != actor.id and not actor.has_role("admin"):
            raise PermissionDenied("Only the assignee or an administrator can release this task.")
        audit.record(actor, "task.released", "task", task.spiff_id, instance_id=task.instance_id, at=now,
                     old={"assignee": task.assignee.username}, new={"assignee": None})
        task.assignee_id = None
        keep_loaded(task)
    return task


_FORMS_CACHE: dict[tuple[int, str], dict] = {}


def _version_forms(version: ProcessVersion) -> dict:
    """Return a version's frozen forms; versions never change, so they are read from the database once."""
    key = (version.id, version.content_hash)
    if key not in _FORMS_CACHE:
        _FORMS_CACHE[key] = version.forms
    return _FORMS_CACHE[key]


def task_form(task: Task) -> tuple[dict, dict | None]:
    """Return the (JSON schema, UI schema) frozen with the task's process version."""
    version_forms = _version_forms(task.instance.version)
    schema = version_forms.get(task.form) if task.form else {"type": "object", "properties": {}}
    if schema is None:
        raise NotFound(_("Form %(form)s is missing from process version %(version)s.", form=repr(task.form),
                         version=task.instance.version.version))
    return schema, version_forms.get(task.ui_form) if task.ui_form else None


def form_values(task: Task, schema: dict) -> dict:
    """Return what a task's form shows: its own answers once completed, else the instance's values for its fields.

    An e-signed gate starts empty: a signer must choose the decision, never find an earlier one selected.
    """
    if task.data:
        return task.data
    if task.signature_meaning:
        return {}
    data = task.instance.data or {}
    return {name: data[name] for name in schema.get("properties", {}) if name in data}


def complete_task(task_id: int, data: dict, actor: User, *, password: str | None = None,
                  now: datetime | None = None, lang: str | None = None) -> Task:
    """Complete a ready task as actor: validate its form, sign it when it is a gate, run the engine on.

    Form messages come in `lang` (the page's language), by default the instance's.
    """
    now = now or utcnow()
    with atomic():
        require_worker(actor)
        task = _locked_task(task_id)
        _check_workable(task, actor)
        schema, _ = task_form(task)
        instance = task.instance
        forms.validate(schema, data, lang=lang or instance.language)
        form_checks.run_checks(schema, instance, data, lang or instance.language, now)
        if task.signature_meaning:
            signatures.check_signer(task, actor)
            signatures.authenticate_signer(actor, password, now)
        old = {key: instance.data.get(key) for key in data}
        task.state, task.completed_at, task.completed_by_id = "completed", now, actor.id
        task.assignee_id, task.data, task.data_hash = actor.id, data, engine.data_hash(data)
        # The gate is signed before the engine runs on, so the steps it authorizes (recalling lots) can name the signer.
        if task.signature_meaning:
            signatures.sign(task, actor, data, now)
        outcome = engine.complete(instance, task, data, engine_context(now))
        audit.record(actor, "task.completed", "task", task.spiff_id, instance_id=instance.id, at=now,
                     old=old, new={"element": task.element_id, "data": data})
        deadlines.mark_met(instance.id, [task.element_id], now)
        record_outcome(actor, instance, outcome, now)
        keep_loaded(task, actor)  # the answer shows them: no second transaction to read them back
    return task

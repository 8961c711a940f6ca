"""What awaits one person's approval: the pending versions of controlled procedures they may approve (QA approvers,
never the version's author), and the e-signature steps waiting on them (claimed by them, or unclaimed in one of
their groups) that they are allowed to sign (a release needs the QA releaser role; a four-eyes step refuses the
signer of the steps it is checked against). Read only; the approval itself happens on the version's review page
or the step's task page."""
from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import and_, func, literal_column, or_, select
from sqlalchemy.orm import joinedload

from app.exceptions import PermissionDenied
from app.extensions import db
from app.models import ProcessDefinition, ProcessInstance, ProcessVersion, Task, User
from app.models.processes import VERSION_PENDING
from app.services.evidence import signatures
from app.services.workflow import procedure_control, tasks

LIMIT = 200  # of each list; the count says how many there are in all


@dataclass
class Awaiting:
    versions: list[ProcessVersion] = field(default_factory=list)  # pending procedure versions, oldest first
    steps: list[Task] = field(default_factory=list)  # e-signature steps, earliest due first
    more_versions: int = 0  # beyond LIMIT
    more_steps: int = 0

    @property
    def count(self) -> int:
        return len(self.versions) + len(self.steps) + self.more_versions + self.more_steps


def _version_query(actor: User):
    return (select(ProcessVersion).join(ProcessDefinition, ProcessDefinition.id == ProcessVersion.definition_id)
            .where(ProcessVersion.status == VERSION_PENDING,
                   or_(ProcessVersion.author_id.is_(None), ProcessVersion.author_id != actor.id)))


def _step_query(actor: User):
    visible = [Task.assignee_id == actor.id]
    if actor.group_names:
        visible.append(and_(Task.assignee_id.is_(None), Task.group_name.in_(sorted(actor.group_names))))
    # Literals, as the partial index ix_tasks_awaiting_signature says them: a planner matches a partial index's
    # condition only against the query's own text, never a bound parameter.
    return select(Task).where(Task.state == literal_column("'ready'"), Task.kind == literal_column("'user'"),
                              Task.signature_meaning.is_not(None), Task.signature_meaning != literal_column("''"),
                              or_(*visible))


def may_sign(task: Task, actor: User) -> bool:
    """Tell whether actor may sign the step now: may work on it, and the gate's signer rules allow them."""
    if not tasks.can_work_on(task, actor):
        return False
    try:
        signatures.check_signer(task, actor)
    except PermissionDenied:
        return False
    return True


def awaiting(actor: User) -> Awaiting:
    """What awaits actor's approval: procedure versions (QA approvers only) and e-signature steps."""
    found = Awaiting()
    if not actor.is_authenticated or not actor.is_active:
        return found
    if procedure_control.may_approve(actor):
        found.versions = list(db.session.scalars(
            _version_query(actor).options(joinedload(ProcessVersion.definition), joinedload(ProcessVersion.author))
            .order_by(ProcessVersion.created_at, ProcessVersion.id).limit(LIMIT)))
        if len(found.versions) == LIMIT:
            found.more_versions = db.session.scalar(
                select(func.count()).select_from(_version_query(actor).subquery())) - LIMIT
    if actor.group_names or actor.id is not None:
        candidates = db.session.scalars(
            _step_query(actor).options(joinedload(Task.instance).joinedload(ProcessInstance.version)
                                       .joinedload(ProcessVersion.definition), joinedload(Task.assignee))
            .order_by(Task.due_at.is_(None), Task.due_at, Task.id).limit(LIMIT * 2))
        signable = [task for task in candidates if may_sign(task, actor)]
        found.steps = signable[:LIMIT]
        found.more_steps = max(len(signable) - LIMIT, 0)
    return found


def count(actor: User) -> int:
    """How many things await actor's approval (the inbox's badge)."""
    return awaiting(actor).count

"""Running procedures: the instance with its serialized engine state, its task table and incidents."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.processes import ProcessVersion
from app.models.types import UTCDateTime, utcnow
from app.models.users import User

INSTANCE_STATES = ("running", "completed", "incident", "cancelled")
OPEN_STATES = ("running", "incident")  # an instance in incident is stopped at a step, not finished
TASK_STATES = ("ready", "waiting", "completed", "cancelled", "error")
# The inbox's rows and their order; queries must spell the condition with literals for the partial indexes.
OPEN_USER_TASK = "state = 'ready' AND kind = 'user'"
# After the order, what the filters read, then the partial condition's columns: SQLite reads an index alone only
# when it holds every column the query names, those of a condition the index's own WHERE already implies too.
INBOX_ORDER_AND_FILTERS = (text("(due_at IS NULL)"), "due_at", "id", "instance_id", "name", "name_zh", "state", "kind")
OPEN_SIGNATURE_STEP = f"{OPEN_USER_TASK} AND signature_meaning IS NOT NULL AND signature_meaning <> ''"


class ProcessInstance(db.Model):
    __tablename__ = "process_instances"
    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("process_versions.id"), index=True)
    title: Mapped[str] = mapped_column(String(300), default="")
    status: Mapped[str] = mapped_column(String(20), default="running", index=True)
    language: Mapped[str] = mapped_column(String(10), default="en")
    state_json: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict] = mapped_column(JSON, default=dict)  # latest business data, for pages and reports
    # Incremented on every save; a stale writer's UPDATE matches no row and becomes a 409.
    lock_version: Mapped[int] = mapped_column(default=1)
    next_timer_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    started_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    version: Mapped[ProcessVersion] = relationship(lazy="joined")
    started_by: Mapped[User | None] = relationship()
    tasks: Mapped[list[Task]] = relationship(back_populates="instance", order_by="Task.id")

    __mapper_args__ = {"version_id_col": lock_version}
    # The timer tick's query (status = 'running' AND next_timer_at <= now, in due order) reads only the due rows.
    __table_args__ = (Index("ix_process_instances_status_timer", "status", "next_timer_at"),)


class Task(db.Model):
    """One engine task as the inbox, dashboards and auditors see it; history stays here after pruning."""

    __tablename__ = "tasks"
    __table_args__ = (
        UniqueConstraint("instance_id", "spiff_id"),
        # The inbox (services/workflow/inbox.py): one index range per "assigned to me" and per "offered to my
        # group", already in the inbox's order (dated first, by due date, then id) and holding every column its
        # filters read, so a page or a bounded count never visits the task rows. Partial: open user tasks only,
        # split by claimed or not, so each range has exactly one index a planner can pick.
        Index("ix_tasks_inbox_assignee", "assignee_id", *INBOX_ORDER_AND_FILTERS,
              sqlite_where=text(f"{OPEN_USER_TASK} AND assignee_id IS NOT NULL"),
              postgresql_where=text(f"{OPEN_USER_TASK} AND assignee_id IS NOT NULL")),
        Index("ix_tasks_inbox_group", "group_name", *INBOX_ORDER_AND_FILTERS, "assignee_id",
              sqlite_where=text(f"{OPEN_USER_TASK} AND assignee_id IS NULL"),
              postgresql_where=text(f"{OPEN_USER_TASK} AND assignee_id IS NULL")),
        # Awaiting my approval (services/workflow/approvals.py, the inbox's badge on every inbox view): the open
        # e-signature steps alone, a few among many open tasks, so the badge never walks a group's whole range.
        Index("ix_tasks_awaiting_signature", "assignee_id", "group_name",
              sqlite_where=text(OPEN_SIGNATURE_STEP), postgresql_where=text(OPEN_SIGNATURE_STEP)),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("process_instances.id"), index=True)
    spiff_id: Mapped[str] = mapped_column(String(36))
    element_id: Mapped[str] = mapped_column(String(120))
    name: Mapped[str] = mapped_column(String(300), default="")
    name_zh: Mapped[str | None] = mapped_column(String(300))  # from the diagram's "name:zh-CN" property
    kind: Mapped[str] = mapped_column(String(40))  # user, service, script, manual
    state: Mapped[str] = mapped_column(String(20))
    lane: Mapped[str | None] = mapped_column(String(120))
    group_name: Mapped[str | None] = mapped_column(String(80))
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    form: Mapped[str | None] = mapped_column(String(200))
    ui_form: Mapped[str | None] = mapped_column(String(200))
    signature_meaning: Mapped[str | None] = mapped_column(String(40))
    evidence: Mapped[str | None] = mapped_column(String(200))
    # Four-eyes: whoever signed one of these steps (element ids) of the instance may not sign this one.
    four_eyes_with: Mapped[str | None] = mapped_column(String(300))
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    completed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    data: Mapped[dict | None] = mapped_column(JSON)  # what the user submitted
    data_hash: Mapped[str | None] = mapped_column(String(64))
    instance: Mapped[ProcessInstance] = relationship(back_populates="tasks")
    assignee: Mapped[User | None] = relationship(foreign_keys=[assignee_id])
    completed_by: Mapped[User | None] = relationship(foreign_keys=[completed_by_id])

    def is_overdue(self, now: datetime) -> bool:
        return self.state == "ready" and self.due_at is not None and self.due_at < now


class Incident(db.Model):
    """A handler or engine failure that stops an instance at a task until an admin retries it."""

    __tablename__ = "incidents"
    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("process_instances.id"), index=True)
    element_id: Mapped[str | None] = mapped_column(String(120))
    message: Mapped[str] = mapped_column(Text)
    traceback: Mapped[str] = mapped_column(Text, default="")
    retry_count: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    instance: Mapped[ProcessInstance] = relationship()

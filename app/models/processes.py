"""Process definitions and their immutable, versioned BPMN (with the forms and DMN decision tables they use, and
the versions of the processes their call activities call). A version is a controlled document: pending until QA
approves it with an e-signature, effective from its effective date (see services/workflow/procedure_control.py)."""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, Column, Date, ForeignKey, String, Table, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.types import UTCDateTime, utcnow
from app.models.users import User

VERSION_PENDING, VERSION_APPROVED, VERSION_REJECTED, VERSION_WITHDRAWN = "pending", "approved", "rejected", "withdrawn"
VERSION_STATUSES = (VERSION_PENDING, VERSION_APPROVED, VERSION_REJECTED, VERSION_WITHDRAWN)
VERSION_CLOSED = (VERSION_REJECTED, VERSION_WITHDRAWN)  # never used, never a base or a callee pin


class ProcessDefinition(db.Model):
    __tablename__ = "process_definitions"
    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(120), unique=True)  # the BPMN process id
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    versions: Mapped[list[ProcessVersion]] = relationship(
        back_populates="definition", order_by="ProcessVersion.version.desc()")

    @property
    def latest(self) -> ProcessVersion | None:
        return self.versions[0] if self.versions else None


# A caller version is pinned to the callee versions that were latest when it was deployed.
process_version_calls = Table(
    "process_version_calls", db.metadata,
    Column("caller_id", ForeignKey("process_versions.id"), primary_key=True),
    Column("callee_id", ForeignKey("process_versions.id"), primary_key=True, index=True),
)


class ProcessVersion(db.Model):
    __tablename__ = "process_versions"
    __table_args__ = (UniqueConstraint("definition_id", "version"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    definition_id: Mapped[int] = mapped_column(ForeignKey("process_definitions.id"), index=True)
    version: Mapped[int]
    filename: Mapped[str] = mapped_column(String(255))
    # Deferred: instances load their version on every step, but these are read once per process (cached).
    bpmn_xml: Mapped[str] = mapped_column(Text, deferred=True)
    forms: Mapped[dict] = mapped_column(JSON, default=dict, deferred=True)  # form file name -> JSON, frozen with it
    decisions: Mapped[dict] = mapped_column(JSON, default=dict, deferred=True)  # .dmn file name -> XML text
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    change_note: Mapped[str] = mapped_column(Text, default="")
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))  # None: the system at installation
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Document control: pending -> approved (effective from effective_at; superseded by a newer effective one),
    # or rejected / withdrawn. Versions deployed before document control count as approved at their deployment.
    status: Mapped[str] = mapped_column(String(20), default=VERSION_PENDING, server_default="approved")
    effective_on: Mapped[date | None] = mapped_column(Date())  # the effective date chosen at approval (plant date)
    effective_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # from when new instances start on it
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))  # approver, rejecter or withdrawer
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    decision_reason: Mapped[str] = mapped_column(Text, default="", server_default="")  # rejection/withdrawal/release
    # The approval's e-signature manifest: printed name, meaning and the hash it is bound to.
    signed_name: Mapped[str | None] = mapped_column(String(200))
    signed_meaning: Mapped[str | None] = mapped_column(String(40))
    signed_hash: Mapped[str | None] = mapped_column(String(64))
    definition: Mapped[ProcessDefinition] = relationship(back_populates="versions")
    author: Mapped[User | None] = relationship(foreign_keys=[author_id])
    decided_by: Mapped[User | None] = relationship(foreign_keys=[decided_by_id])
    callees: Mapped[list[ProcessVersion]] = relationship(
        secondary=process_version_calls, primaryjoin=lambda: ProcessVersion.id == process_version_calls.c.caller_id,
        secondaryjoin=lambda: ProcessVersion.id == process_version_calls.c.callee_id)

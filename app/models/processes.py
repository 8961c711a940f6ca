"""Process definitions and their immutable, versioned BPMN (with the forms and DMN decision tables they use, and
the versions of the processes their call activities call)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column, ForeignKey, String, Table, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.types import UTCDateTime, utcnow
from app.models.users import User


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
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    definition: Mapped[ProcessDefinition] = relationship(back_populates="versions")
    author: Mapped[User | None] = relationship()
    callees: Mapped[list[ProcessVersion]] = relationship(
        secondary=process_version_calls, primaryjoin=lambda: ProcessVersion.id == process_version_calls.c.caller_id,
        secondaryjoin=lambda: ProcessVersion.id == process_version_calls.c.callee_id)

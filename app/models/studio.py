"""What process owners edit in the studio before it is deployed: BPMN drafts and forms.

A draft is a working copy of a diagram (new, or based on a deployed version); deploying it makes an immutable
ProcessVersion. A studio form is a JSON Schema (or UI schema) file kept in the database; it overrides the
same-named file in forms/ when a diagram is validated or deployed, and each deployed version freezes the forms
it uses, so editing a form never changes a running instance.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.processes import ProcessVersion
from app.models.types import UTCDateTime, utcnow
from app.models.users import User


class ProcessDraft(db.Model):
    __tablename__ = "process_drafts"
    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(120), index=True)  # the BPMN process id in the draft
    name: Mapped[str] = mapped_column(String(200))
    bpmn_xml: Mapped[str] = mapped_column(Text)
    base_version_id: Mapped[int | None] = mapped_column(ForeignKey("process_versions.id"))
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    deployed_version_id: Mapped[int | None] = mapped_column(ForeignKey("process_versions.id"))
    base_version: Mapped[ProcessVersion | None] = relationship(foreign_keys=[base_version_id])
    deployed_version: Mapped[ProcessVersion | None] = relationship(foreign_keys=[deployed_version_id])
    author: Mapped[User | None] = relationship()


class StudioForm(db.Model):
    __tablename__ = "studio_forms"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)  # e.g. capa_problem.schema.json
    content: Mapped[dict] = mapped_column(JSON)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    author: Mapped[User | None] = relationship()

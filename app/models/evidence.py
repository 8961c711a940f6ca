"""Evidence linked to stage gates: rendered documents and electronic signatures."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, deferred, mapped_column, relationship

from app.extensions import db
from app.models.types import UTCDateTime, utcnow
from app.models.users import User

DOCX_MIMETYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


class Document(db.Model):
    """A rendered document; never overwritten - a re-render is a new revision."""

    __tablename__ = "documents"
    __table_args__ = (UniqueConstraint("instance_id", "kind", "revision"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("process_instances.id"), index=True)
    task_spiff_id: Mapped[str | None] = mapped_column(String(36))
    element_id: Mapped[str | None] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(80))
    revision: Mapped[int] = mapped_column(default=1)
    filename: Mapped[str] = mapped_column(String(255))
    template_name: Mapped[str] = mapped_column(String(120))
    template_version: Mapped[str] = mapped_column(String(64))
    language: Mapped[str] = mapped_column(String(10))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int]
    context: Mapped[dict] = mapped_column(JSON, default=dict)  # the data the document was rendered from
    content: Mapped[bytes] = deferred(mapped_column(LargeBinary))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Signature(db.Model):
    """A Part 11 style signature manifest bound to the hash of what was signed."""

    __tablename__ = "signatures"
    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("process_instances.id"), index=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    printed_name: Mapped[str] = mapped_column(String(200))
    meaning: Mapped[str] = mapped_column(String(40))
    signed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    signed_hash: Mapped[str] = mapped_column(String(64))
    documents: Mapped[list] = mapped_column(JSON, default=list)  # [{"id", "filename", "sha256"}]
    user: Mapped[User] = relationship()

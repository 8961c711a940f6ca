"""Evidence linked to stage gates: rendered documents and electronic signatures."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, LargeBinary, String, Text, UniqueConstraint
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


class ExportJob(db.Model):
    """An evidence package built in the background: who asked for what, how far it got, and the file it made (with
    its SHA-256, checked again at every download). Progress is written by the worker in short transactions of its
    own, so every web worker shows it; a running job whose heartbeat is older than IMPORT_STALE_MINUTES lost its
    worker and is failed with the reason."""

    __tablename__ = "export_jobs"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))  # product_lot, material_lot, search
    scope: Mapped[dict] = mapped_column(JSON, default=dict)  # what to export: the lot, or the search's filters
    title: Mapped[str] = mapped_column(String(300), default="")
    language: Mapped[str] = mapped_column(String(10), default="en")
    status: Mapped[str] = mapped_column(String(20), default="running", index=True)  # running, succeeded, failed
    done: Mapped[int] = mapped_column(default=0)
    total: Mapped[int] = mapped_column(default=0)
    message: Mapped[str] = mapped_column(Text, default="")
    download_name: Mapped[str] = mapped_column(String(255), default="")
    stored_name: Mapped[str] = mapped_column(String(80), default="")
    sha256: Mapped[str] = mapped_column(String(64), default="")
    size: Mapped[int] = mapped_column(default=0)
    attempts: Mapped[int] = mapped_column(default=0)
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_by: Mapped[User] = relationship()

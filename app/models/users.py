"""Users, groups (BPMN lanes name them), roles and API tokens."""
from __future__ import annotations

from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import Column, ForeignKey, String, Table, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.types import UTCDateTime, utcnow

ROLES = ("admin", "process_owner", "staff", "qa_releaser", "auditor")
WORKER_ROLES = ("admin", "process_owner", "staff", "qa_releaser")  # who may work on tasks: all but the auditor
OWNER_ROLES = ("admin", "process_owner")  # who deploys, edits in the studio, moves and cancels instances

user_groups = Table(
    "user_groups", db.metadata,
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("group_id", ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True),
)


class Group(db.Model):
    __tablename__ = "groups"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    label: Mapped[str] = mapped_column(String(200), default="")
    label_zh: Mapped[str] = mapped_column(String(200), default="")


class User(UserMixin, db.Model):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    full_name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(254), default="")
    password_hash: Mapped[str] = mapped_column(String(255))
    roles_csv: Mapped[str] = mapped_column("roles", String(200), default="staff")
    language: Mapped[str] = mapped_column(String(10), default="en")
    active: Mapped[bool] = mapped_column(default=True)
    failed_logins: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # An administrator set the password (a new account, a reset): the user chooses their own at the next sign-in.
    password_change_required: Mapped[bool] = mapped_column(default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    groups: Mapped[list[Group]] = relationship(secondary=user_groups, lazy="selectin", order_by=Group.name)

    @property
    def roles(self) -> set[str]:
        return {r for r in self.roles_csv.split(",") if r}

    def has_role(self, *roles: str) -> bool:
        return bool(self.roles.intersection(roles))

    @property
    def group_names(self) -> set[str]:
        return {g.name for g in self.groups}

    @property
    def is_active(self) -> bool:
        return self.active


class ApiToken(db.Model):
    """A bearer token for the API; only its SHA-256 is stored. It works until it is revoked or expires, and
    not while its user is deactivated or locked out."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # None: never
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    user: Mapped[User] = relationship()

    @property
    def state(self) -> str:
        """Say whether the token works now: "active", "revoked" or "expired"."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= utcnow():
            return "expired"
        return "active"


class UserSession(db.Model):
    """A browser's sign-in: its session cookie carries a random key whose SHA-256 is the id here. Signing out
    ends the row, so a copy of the cookie taken before the sign-out no longer signs anyone in."""

    __tablename__ = "user_sessions"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

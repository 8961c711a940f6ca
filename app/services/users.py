"""Accounts: password hashing (argon2), sign-in with lockout, re-authentication for signatures, API tokens."""
from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select

from app.exceptions import NotFound, PermissionDenied, QualiflowError
from app.extensions import db
from app.models import ROLES, ApiToken, Group, User
from app.models.types import utcnow
from app.services.evidence import audit

_hasher = PasswordHasher()


class LoginFailed(QualiflowError):
    """Wrong user name or password."""

    status = 401


class AccountLocked(LoginFailed):
    """Too many failed attempts: the account is locked for a while."""


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def _password_matches(user: User, password: str) -> bool:
    try:
        return _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def check_password(user: User, password: str | None, *, now: datetime, max_failures: int,
                   lockout: timedelta, purpose: str) -> None:
    """Verify a password for sign-in or signing; count failures and lock the account. Does not commit."""
    if user.locked_until and user.locked_until > now:
        raise AccountLocked(f"The account is locked until {user.locked_until:%Y-%m-%d %H:%M} UTC.")
    if password and _password_matches(user, password):
        user.failed_logins = 0
        user.locked_until = None
        return
    user.failed_logins += 1
    locked = user.failed_logins >= max_failures
    if locked:
        user.locked_until = now + lockout
        user.failed_logins = 0
    audit.record(user, f"{purpose}.failed", "user", user.id, new={"locked": locked}, at=now)
    raise AccountLocked("Too many failed attempts: the account is locked.") if locked else LoginFailed()


def authenticate(username: str, password: str, *, max_failures: int, lockout: timedelta,
                 now: datetime | None = None) -> User:
    """Sign a user in: one transaction that records success or the failure (and a lockout)."""
    now = now or utcnow()
    user = db.session.scalar(select(User).where(User.username == username))
    if user is None or not user.active:
        audit.record(None, "login.failed", "user", username, actor_name=username, at=now)
        db.session.commit()
        raise LoginFailed()
    try:
        check_password(user, password, now=now, max_failures=max_failures, lockout=lockout, purpose="login")
    except LoginFailed:
        db.session.commit()
        raise
    audit.record(user, "login.succeeded", "user", user.id, at=now)
    db.session.commit()
    return user


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(username: str, actor: User | None = None) -> str:
    """Create an API token for a user; only its hash is stored, so it is shown once."""
    user = get_by_username(username)
    token = secrets.token_urlsafe(32)
    row = ApiToken(user_id=user.id, token_hash=_token_hash(token))
    db.session.add(row)
    db.session.flush()
    audit.record(actor, "token.issued", "api_token", row.id, new={"user": username})
    db.session.commit()
    return token


def user_for_token(token: str) -> User | None:
    row = db.session.scalar(select(ApiToken).where(ApiToken.token_hash == _token_hash(token),
                                                   ApiToken.revoked_at.is_(None)))
    return row.user if row and row.user.active else None


def get_by_username(username: str) -> User:
    user = db.session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"No user named {username!r}.")
    return user


def get_active_user(user_id: int) -> User | None:
    """Return the user with this id when the account is active (for the session's user loader)."""
    user = db.session.get(User, user_id)
    return user if user and user.active else None


def ensure_group(name: str, label: str = "", label_zh: str = "") -> Group:
    """Return the group, creating it when missing (no commit)."""
    group = db.session.scalar(select(Group).where(Group.name == name))
    if group is None:
        group = Group(name=name, label=label or name, label_zh=label_zh or label or name)
        db.session.add(group)
        db.session.flush()
    return group


def ensure_user(username: str, *, full_name: str, password: str, email: str, roles: list[str],
                groups: list[str], language: str = "en") -> tuple[User, bool]:
    """Return (user, created); an existing user is left as it is so demo loading is idempotent (no commit)."""
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise PermissionDenied(f"Unknown role(s): {', '.join(sorted(unknown))}.")
    user = db.session.scalar(select(User).where(User.username == username))
    if user is not None:
        return user, False
    user = User(username=username, full_name=full_name, email=email, password_hash=hash_password(password),
                roles_csv=",".join(roles), language=language,
                groups=[ensure_group(g) for g in groups])
    db.session.add(user)
    db.session.flush()
    audit.record(None, "user.created", "user", user.id, new={"username": username, "roles": roles, "groups": groups})
    return user, True


def group_labels() -> dict[str, tuple[str, str]]:
    """Return group name -> (English label, Chinese label)."""
    return {g.name: (g.label, g.label_zh) for g in db.session.scalars(select(Group))}

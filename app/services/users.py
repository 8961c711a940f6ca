"""Accounts: password hashing (argon2), sign-in with lockout and server-side sessions, re-authentication for
signatures, API tokens (expiry, last use, revocation)."""
from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app, has_request_context, request
from flask_babel import gettext as _
from sqlalchemy import delete, or_, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import joinedload

from app.exceptions import NotFound, PermissionDenied, QualiflowError, ValidationFailed
from app.extensions import db
from app.models import ROLES, ApiToken, Group, User, UserSession
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


def issue_token(username: str, actor: User | None = None, *, name: str = "", days: int | None = None,
                now: datetime | None = None) -> str:
    """Create an API token for a user; only its hash is stored, so it is shown once. It expires after `days`
    (default API_TOKEN_DAYS; 0: never)."""
    user = get_by_username(username)
    now = now or utcnow()
    days = current_app.config["API_TOKEN_DAYS"] if days is None else days
    token = secrets.token_urlsafe(32)
    row = ApiToken(user_id=user.id, token_hash=_token_hash(token), name=name.strip()[:100], created_at=now,
                   expires_at=now + timedelta(days=days) if days else None)
    db.session.add(row)
    db.session.flush()
    audit.record(actor, "token.issued", "api_token", row.id, new={
        "user": username, "name": row.name, "expires_at": row.expires_at.isoformat() if row.expires_at else None})
    db.session.commit()
    return token


def issue_own_token(user: User, *, name: str, days: str) -> str:
    """Issue a token to the signed-in user (the API tokens page), valid for 1 to API_TOKEN_DAYS days (any
    number of days, or none for never, when API_TOKEN_DAYS is 0)."""
    longest = current_app.config["API_TOKEN_DAYS"]
    text = (days or "").strip()
    chosen = int(text) if text.isascii() and text.isdigit() else None
    if not text:
        chosen = longest
    elif chosen is None or chosen < 1 or (longest and chosen > longest):
        raise ValidationFailed(_("A token is valid for 1 to %(days)s days.", days=longest) if longest
                               else _("A token is valid for a whole number of days (at least 1)."))
    return issue_token(user.username, user, name=name, days=chosen)


def list_tokens(user: User, *, everyone: bool = False) -> list[ApiToken]:
    """Return the user's API tokens, newest first (every user's for an admin's listing)."""
    query = select(ApiToken).order_by(ApiToken.id.desc())
    if not everyone:
        query = query.where(ApiToken.user_id == user.id)
    return list(db.session.scalars(query))


def revoke_token(token_id: int, actor: User) -> ApiToken:
    """Revoke one of the actor's tokens (any token for an admin): it stops working at once. Another user's token
    answers as if it did not exist."""
    row = db.session.get(ApiToken, token_id)
    if row is None or (row.user_id != actor.id and not actor.has_role("admin")):
        raise NotFound(_("No such API token."))
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        audit.record(actor, "token.revoked", "api_token", row.id, new={"user": row.user.username})
        db.session.commit()
    return row


LAST_USE_PRECISION = timedelta(minutes=1)  # a token's last use is written at most once a minute


def user_for_token(token: str, now: datetime | None = None) -> User | None:
    """Return the token's user while the token works: not revoked, not expired, and its user active and not
    locked out. Note the use (last_used_at)."""
    now = now or utcnow()
    # The user (and its groups, selectin) comes with the token: every API request asks, one query fewer.
    row = db.session.scalar(select(ApiToken).options(joinedload(ApiToken.user))
                            .where(ApiToken.token_hash == _token_hash(token)))
    if row is None or row.state != "active" or not row.user.active:
        return None
    if row.user.locked_until and row.user.locked_until > now:
        return None
    if row.last_used_at is None or now - row.last_used_at >= LAST_USE_PRECISION:
        _note_use(row, now)
    return row.user


def _note_use(row: ApiToken, now: datetime) -> None:
    """Write a token's last use. A change request writes it with its change; a read (GET) commits it at once, but
    never waits for SQLite's write lock (an import may hold it for minutes): then the next request notes it."""
    row.last_used_at = now
    if has_request_context() and request.method not in ("GET", "HEAD"):
        return
    try:
        with _no_lock_wait():
            db.session.flush()
        db.session.commit()
    except OperationalError:
        db.session.rollback()


@contextmanager
def _no_lock_wait() -> Iterator[None]:
    """On SQLite, fail at once instead of waiting for another connection's write lock (PostgreSQL: no change)."""
    if db.engine.dialect.name != "sqlite":
        yield
        return
    connection = db.session.connection()
    waited = connection.exec_driver_sql("PRAGMA busy_timeout").scalar()
    connection.exec_driver_sql("PRAGMA busy_timeout=0")
    try:
        yield
    finally:
        connection.exec_driver_sql(f"PRAGMA busy_timeout={int(waited)}")


# --- browser sessions --------------------------------------------------------------------------------------------

def start_session(user: User, now: datetime | None = None) -> str:
    """Open a server-side session for a sign-in and return the key its cookie carries (only its hash is stored).
    The user's ended sessions, and those older than SESSION_MAX_HOURS, are cleared away."""
    now = now or utcnow()
    oldest = now - timedelta(hours=current_app.config["SESSION_MAX_HOURS"])
    db.session.execute(delete(UserSession).where(
        UserSession.user_id == user.id, or_(UserSession.ended_at.is_not(None), UserSession.created_at < oldest)))
    key = secrets.token_urlsafe(32)
    db.session.add(UserSession(id=_token_hash(key), user_id=user.id, created_at=now))
    db.session.commit()
    return key


def session_user(user_id: int, key: str | None, now: datetime | None = None) -> User | None:
    """Return the user a session cookie names while its server-side session is open (not signed out, younger than
    SESSION_MAX_HOURS) and the account active."""
    if not key:
        return None
    row = db.session.get(UserSession, _token_hash(key))
    if row is None or row.user_id != user_id or row.ended_at is not None:
        return None
    if row.created_at < (now or utcnow()) - timedelta(hours=current_app.config["SESSION_MAX_HOURS"]):
        return None
    return get_active_user(user_id)


def end_session(key: str | None, now: datetime | None = None) -> None:
    """Sign a session out on the server: its cookie, and any copy of it, no longer signs anyone in."""
    if not key:
        return
    row = db.session.get(UserSession, _token_hash(key))
    if row is not None and row.ended_at is None:
        row.ended_at = now or utcnow()
        db.session.commit()


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

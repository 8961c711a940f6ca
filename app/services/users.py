"""Accounts: password hashing (argon2), sign-in with lockout and server-side sessions, re-authentication for
signatures, API tokens (expiry, last use, revocation)."""
from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app, has_request_context, request
from flask_babel import gettext as _
from sqlalchemy import bindparam, delete, func, or_, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import joinedload

from app.exceptions import Conflict, FormInvalid, NotFound, PermissionDenied, QualiflowError
from app.extensions import db
from app.models import ROLES, ApiToken, Group, User, UserSession
from app.models.types import utcnow
from app.services.evidence import audit
from app.services.workflow.transaction import atomic, keep_loaded

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
        raise AccountLocked(_("The account is locked until %(until)s UTC.",
                              until=f"{user.locked_until:%Y-%m-%d %H:%M}"))
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
    raise AccountLocked(_("Too many failed attempts: the account is locked.")) if locked else LoginFailed()


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


TOKEN_DAYS_MAX = 3650  # ten years: the longest QUALIFLOW_API_TOKEN_DAYS (a token always expires)


def token_days_setting(value: object) -> int:
    """Read QUALIFLOW_API_TOKEN_DAYS: a whole number of days from 1 to TOKEN_DAYS_MAX; raise ValueError with the
    reason otherwise (create_app refuses to start with it)."""
    text = str(value).strip()
    if isinstance(value, bool) or not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= TOKEN_DAYS_MAX:
        raise ValueError(f"QUALIFLOW_API_TOKEN_DAYS must be a whole number of days from 1 to {TOKEN_DAYS_MAX}, not "
                         f"{str(value)[:40]!r}: API tokens always expire (there is no 'never').")
    return int(text)


def _token_days_refused(longest: int) -> FormInvalid:
    """A token's days outside 1..API_TOKEN_DAYS: 422 with the reason on the field."""
    message = _("A token is valid for 1 to %(days)s days.", days=longest)
    return FormInvalid({"days": [message]}, message)


def issue_token(username: str, actor: User | None = None, *, name: str = "", days: int | None = None,
                now: datetime | None = None) -> str:
    """Create an API token for a user; only its hash is stored, so it is shown once. It expires after `days`,
    1 to API_TOKEN_DAYS (default API_TOKEN_DAYS); any other value is refused before anything is written."""
    longest = current_app.config["API_TOKEN_DAYS"]
    days = longest if days is None else days
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= longest:
        raise _token_days_refused(longest)
    user = get_by_username(username)
    now = now or utcnow()
    token = secrets.token_urlsafe(32)
    row = ApiToken(user_id=user.id, token_hash=_token_hash(token), name=name.strip()[:100], created_at=now,
                   expires_at=now + timedelta(days=days))
    db.session.add(row)
    db.session.flush()
    audit.record(actor, "token.issued", "api_token", row.id, new={
        "user": username, "name": row.name, "expires_at": row.expires_at.isoformat()})
    db.session.commit()
    return token


def issue_own_token(user: User, *, name: str, days: str) -> str:
    """Issue a token to the signed-in user (the API tokens page), valid for 1 to API_TOKEN_DAYS days (empty: the
    longest); text that is not a whole number in that range is refused."""
    longest = current_app.config["API_TOKEN_DAYS"]
    text = (days or "").strip()
    if not text:
        return issue_token(user.username, user, name=name, days=longest)
    if not (text.isascii() and text.isdigit()) or len(text) > 6:
        raise _token_days_refused(longest)
    return issue_token(user.username, user, name=name, days=int(text))


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


# The user and its groups come with the token in one statement, built once: every API request asks.
_TOKEN_WITH_USER = (select(ApiToken).options(joinedload(ApiToken.user).joinedload(User.groups))
                    .where(ApiToken.token_hash == bindparam("token_hash")))


def user_for_token(token: str, now: datetime | None = None) -> User | None:
    """Return the token's user while the token works: not revoked, not expired, and its user active and not
    locked out. Note the use (last_used_at)."""
    now = now or utcnow()
    row = db.session.scalars(_TOKEN_WITH_USER, {"token_hash": _token_hash(token)}).unique().first()
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
        raise NotFound(_("No user named %(name)s.", name=repr(username)))
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


# --- user administration (admins) ----------------------------------------------------------------------------------

LANGUAGES = ("en", "zh-CN")
USERNAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,79}")
EMAIL_PATTERN = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def _require_admin(actor: User | None) -> None:
    """None is the command line, which runs as the operating system's administrator."""
    if actor is not None and not actor.has_role("admin"):
        raise PermissionDenied(_("Administrators only."))


def password_problems(password: str, username: str) -> list[str]:
    """Say what the password policy finds wrong with a password: at least PASSWORD_MIN_LENGTH characters (12 by
    default), at most 200, not containing the user name, not one character repeated."""
    shortest = current_app.config["PASSWORD_MIN_LENGTH"]
    problems = []
    if len(password) < shortest:
        problems.append(_("A password has at least %(count)s characters.", count=shortest))
    if len(password) > 200:
        problems.append(_("A password has at most 200 characters."))
    if username and username.casefold() in password.casefold():
        problems.append(_("A password must not contain the user name."))
    if password and len(set(password)) == 1:
        problems.append(_("A password is not one character repeated."))
    return problems


def search_users(text: str = "", *, page: int = 1, per_page: int = 20, include_inactive: bool = True):
    """Return a page of users by user name, those whose user name, printed name or e-mail contain the text."""
    query = select(User).order_by(User.username)
    text = text.strip()[:100]
    if text:
        pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(or_(User.username.ilike(pattern, escape="\\"), User.full_name.ilike(pattern, escape="\\"),
                                User.email.ilike(pattern, escape="\\")))
    if not include_inactive:
        query = query.where(User.active.is_(True))
    return db.paginate(query, page=max(page, 1), per_page=per_page, error_out=False)


def list_groups() -> list[Group]:
    return list(db.session.scalars(select(Group).order_by(Group.name)))


def get_user(user_id: int) -> User:
    user = db.session.get(User, user_id)
    if user is None:
        raise NotFound(_("No such user."))
    return user


def _checked_account(errors: dict[str, list[str]], *, full_name: str, email: str, language: str,
                     roles: list[str], groups: list[str]) -> tuple[str, str, list[Group]]:
    """Check the fields a create and an edit share; return (printed name, e-mail, groups)."""
    full_name = " ".join(full_name.split())
    email = email.strip()
    if not full_name:
        errors["full_name"] = [_("Enter the printed name (it appears on signatures).")]
    elif len(full_name) > 200:
        errors["full_name"] = [_("A printed name has at most 200 characters.")]
    if email and (len(email) > 254 or not EMAIL_PATTERN.fullmatch(email)):
        errors["email"] = [_("Enter an e-mail address like name@example.com, or leave it empty.")]
    if language not in LANGUAGES:
        errors["language"] = [_("Choose English or Chinese.")]
    if not roles:
        errors["roles"] = [_("Choose at least one role.")]
    elif set(roles) - set(ROLES):
        errors["roles"] = [_("Unknown role: %(roles)s.", roles=", ".join(sorted(set(roles) - set(ROLES))))]
    known = {g.name: g for g in list_groups()}
    unknown = sorted(set(groups) - set(known))
    if unknown:
        errors["groups"] = [_("Unknown group: %(groups)s.", groups=", ".join(unknown))]
    return full_name, email, [known[name] for name in sorted(set(groups)) if name in known]


def _roles_csv(roles: list[str]) -> str:
    return ",".join(role for role in ROLES if role in roles)  # in the one order ROLES gives


def create_user(actor: User | None, *, username: str, full_name: str, email: str, language: str,
                roles: list[str], groups: list[str], password: str) -> User:
    """Create an account (admins): a unique user name, a printed name, roles, groups (the BPMN lanes), a language
    and an initial password that follows the password policy. Audited as user.created."""
    _require_admin(actor)
    username = username.strip()
    errors: dict[str, list[str]] = {}
    if not USERNAME_PATTERN.fullmatch(username):
        errors["username"] = [_("A user name has 2 to 80 letters, digits, dots, hyphens or underscores, "
                                "starting with a letter or digit.")]
    full_name, email, group_rows = _checked_account(errors, full_name=full_name, email=email, language=language,
                                                    roles=roles, groups=groups)
    problems = password_problems(password, username)
    if problems:
        errors["password"] = problems
    with atomic():
        if "username" not in errors and db.session.scalar(
                select(User.id).where(func.lower(User.username) == username.lower())) is not None:
            errors["username"] = [_("The user name %(name)s is taken.", name=username)]
        if errors:
            raise FormInvalid(errors, _("The user was not created: the form has errors."))
        user = User(username=username, full_name=full_name, email=email, password_hash=hash_password(password),
                    roles_csv=_roles_csv(roles), language=language, groups=group_rows,
                    password_change_required=actor is not None)
        db.session.add(user)
        db.session.flush()
        audit.record(actor, "user.created", "user", user.id, new={
            "username": username, "full_name": full_name, "email": email, "language": language,
            "roles": sorted(user.roles), "groups": sorted(user.group_names)})
        keep_loaded(user)
    return user


def _active_admin_ids() -> set[int]:
    """The active administrators, their rows locked until the use case ends (PostgreSQL; SQLite's writing
    transaction holds the database), so two admins cannot each remove "the other" last admin at once."""
    rows = db.session.scalars(select(User).where(User.active.is_(True), User.roles_csv.like("%admin%"))
                              .with_for_update())
    return {user.id for user in rows if user.has_role("admin")}


def _refuse_losing_the_last_admin(user: User) -> None:
    if _active_admin_ids() <= {user.id}:
        raise Conflict(_("%(name)s is the last active administrator: make another user an administrator first.",
                         name=user.full_name))


def update_user(actor: User | None, user_id: int, *, full_name: str, email: str, language: str, roles: list[str],
                groups: list[str]) -> User:
    """Change a user's printed name, e-mail, language, roles and groups (admins). An admin does not take the admin
    role from themselves, and the last active admin keeps it. Audited as user.updated with old and new values."""
    _require_admin(actor)
    errors: dict[str, list[str]] = {}
    full_name, email, group_rows = _checked_account(errors, full_name=full_name, email=email, language=language,
                                                    roles=roles, groups=groups)
    with atomic():
        user = get_user(user_id)
        if errors:
            raise FormInvalid(errors, _("The user was not changed: the form has errors."))
        if user.has_role("admin") and "admin" not in roles:
            if actor is not None and actor.id == user.id:
                raise Conflict(_("You cannot take the administrator role from yourself; another admin can."))
            if user.active:
                _refuse_losing_the_last_admin(user)
        old = {"full_name": user.full_name, "email": user.email, "language": user.language,
               "roles": sorted(user.roles), "groups": sorted(user.group_names)}
        user.full_name, user.email, user.language = full_name, email, language
        user.roles_csv = _roles_csv(roles)
        user.groups = group_rows
        new = {"full_name": full_name, "email": email, "language": language, "roles": sorted(user.roles),
               "groups": sorted(g.name for g in group_rows)}
        if new != old:
            changed = [key for key in new if new[key] != old[key]]
            audit.record(actor, "user.updated", "user", user.id, old={k: old[k] for k in changed},
                         new={k: new[k] for k in changed})
        keep_loaded(user)
    return user


def _end_sessions(user: User, now: datetime) -> int:
    rows = list(db.session.scalars(select(UserSession).where(UserSession.user_id == user.id,
                                                             UserSession.ended_at.is_(None))))
    for row in rows:
        row.ended_at = now
    return len(rows)


def set_active(actor: User | None, user_id: int, active: bool, *, reason: str = "",
               now: datetime | None = None) -> User:
    """Deactivate or reactivate an account (admins). A deactivated user cannot sign in; their open sessions end
    and their API tokens stop working (user_for_token asks for an active user) until they are reactivated.
    An admin does not deactivate themselves, nor the last active admin. Audited (user.deactivated /
    user.reactivated, with the reason)."""
    _require_admin(actor)
    now = now or utcnow()
    reason = " ".join(reason.split())[:500]
    with atomic():
        user = get_user(user_id)
        if user.active == active:
            keep_loaded(user)
            return user
        if not active:
            if actor is not None and actor.id == user.id:
                raise Conflict(_("You cannot deactivate your own account."))
            if user.has_role("admin"):
                _refuse_losing_the_last_admin(user)
            if not reason:
                raise FormInvalid({"reason": [_("Say why the account is deactivated.")]},
                                  _("The account was not deactivated: say why."))
            ended = _end_sessions(user, now)
            user.active = False
            audit.record(actor, "user.deactivated", "user", user.id, old={"active": True},
                         new={"active": False, "sessions_ended": ended}, reason=reason, at=now)
        else:
            user.active = True
            user.failed_logins = 0
            user.locked_until = None
            audit.record(actor, "user.reactivated", "user", user.id, old={"active": False}, new={"active": True},
                         reason=reason, at=now)
        keep_loaded(user)
    return user


def reset_password(actor: User | None, user_id: int, password: str, now: datetime | None = None) -> User:
    """Give a user a new password (admins) that follows the password policy; the lock-out is lifted, the user's
    open sessions end and they choose their own password at the next sign-in. Audited as user.password_reset
    (never the password)."""
    _require_admin(actor)
    now = now or utcnow()
    with atomic():
        user = get_user(user_id)
        problems = password_problems(password, user.username)
        if problems:
            raise FormInvalid({"password": problems}, _("The password was not changed: %(problems)s",
                                                        problems=" ".join(problems)))
        user.password_hash = hash_password(password)
        user.failed_logins = 0
        user.locked_until = None
        user.password_change_required = actor is not None and actor.id != user.id
        ended = _end_sessions(user, now)
        audit.record(actor, "user.password_reset", "user", user.id, new={"sessions_ended": ended}, at=now)
        keep_loaded(user)
    return user


def user_tokens(actor: User | None, user_id: int) -> list[ApiToken]:
    """Return one user's API tokens, newest first (admins)."""
    _require_admin(actor)
    return list(db.session.scalars(select(ApiToken).where(ApiToken.user_id == user_id)
                                   .order_by(ApiToken.id.desc())))


def open_sessions(user_id: int, now: datetime | None = None) -> int:
    """Count a user's signed-in browser sessions (not signed out, younger than SESSION_MAX_HOURS)."""
    oldest = (now or utcnow()) - timedelta(hours=current_app.config["SESSION_MAX_HOURS"])
    return db.session.scalar(select(func.count()).select_from(UserSession).where(
        UserSession.user_id == user_id, UserSession.ended_at.is_(None), UserSession.created_at >= oldest)) or 0


def locked_out(user: User, now: datetime | None = None) -> bool:
    """Say whether wrong passwords have locked the account for now."""
    return user.locked_until is not None and user.locked_until > (now or utcnow())


def change_own_password(user: User, *, current: str, new: str, confirm: str, session_key: str | None = None,
                        now: datetime | None = None) -> User:
    """A user replaces their password: the current one is checked (a wrong one counts toward the lock-out, as
    at sign-in), the new one follows the password policy, differs from the current one and is typed twice. The
    user's other sessions end; the one that changed it stays. Audited as user.password_changed."""
    now = now or utcnow()
    config = current_app.config
    with atomic():
        user = get_user(user.id)
        try:
            check_password(user, current, now=now, max_failures=config["LOGIN_MAX_FAILURES"],
                           lockout=timedelta(minutes=config["LOGIN_LOCKOUT_MINUTES"]), purpose="password_change")
        except LoginFailed as err:
            db.session.commit()  # the failed attempt (and a lock-out) is recorded, as a failed sign-in is
            raise FormInvalid({"current": [_("The current password is wrong.") if not isinstance(err, AccountLocked)
                                           else _("Too many wrong passwords: the account is locked for now.")]},
                              _("The password was not changed.")) from None
        errors: dict[str, list[str]] = {}
        problems = password_problems(new, user.username)
        if problems:
            errors["new"] = problems
        elif new == current:
            errors["new"] = [_("Choose a password other than the current one.")]
        if new != confirm:
            errors["confirm"] = [_("The two new passwords differ.")]
        if errors:
            raise FormInvalid(errors, _("The password was not changed."))
        user.password_hash = hash_password(new)
        user.password_change_required = False
        kept = _token_hash(session_key) if session_key else None
        ended = 0
        for row in db.session.scalars(select(UserSession).where(UserSession.user_id == user.id,
                                                                UserSession.ended_at.is_(None))):
            if row.id != kept:
                row.ended_at = now
                ended += 1
        audit.record(user, "user.password_changed", "user", user.id, new={"other_sessions_ended": ended}, at=now)
        keep_loaded(user)
    return user

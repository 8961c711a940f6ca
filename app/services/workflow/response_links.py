"""Single-use response links for people outside the company - a consignee's recall acknowledgment, a
supplier's SCAR answer: an unguessable token goes out in the e-mail and only its SHA-256 is stored.
A forged link is 404, a used one 409, an expired one 410 (the latter two in the recipient's language)."""
from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select

from app.exceptions import Conflict, Gone, NotFound
from app.extensions import db


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue(row: Any, expires_at: datetime) -> str:
    """Give the row (with token_hash and token_expires_at) a new token, replacing any earlier one; return it."""
    token = secrets.token_urlsafe(32)
    row.token_hash = token_hash(token)
    row.token_expires_at = expires_at
    return token


def find(model: Any, token: str, *, answered_at: str, now: datetime, message: Callable[[str, str], str],
         options: Iterable[Any] = ()) -> Any:
    """Return the row a link belongs to, if it is unused (its answered_at attribute is empty) and unexpired."""
    row = db.session.scalar(select(model).where(model.token_hash == token_hash(token)).options(*options)) \
        if token else None
    if row is None:
        raise NotFound(message("en", "link_invalid"))
    if getattr(row, answered_at) is not None:
        raise Conflict(message(row.language, "link_used"))
    if row.token_expires_at is None or row.token_expires_at < now:
        raise Gone(message(row.language, "link_expired"))
    return row


def language(model: Any, token: str) -> str | None:
    """Return the language of the row a link was sent with (also once used or expired), None if forged."""
    return db.session.scalar(select(model.language).where(model.token_hash == token_hash(token))) if token else None

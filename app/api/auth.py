"""Bearer-token authentication for the API (tokens from `flask users token NAME`)."""
from __future__ import annotations

from flask import g, request

from app.exceptions import QualiflowError
from app.services import users


class Unauthorized(QualiflowError):
    """Send 'Authorization: Bearer <token>' with a valid API token."""

    status = 401


def authenticate_request() -> None:
    """Resolve the bearer token to a user (in g.api_user) or answer 401."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    user = users.user_for_token(token.strip()) if scheme.lower() == "bearer" and token.strip() else None
    if user is None:
        raise Unauthorized()
    g.api_user = user


def api_user() -> users.User:
    return g.api_user

"""Bearer-token authentication for the API (tokens from the API tokens page or `flask users token NAME`)."""
from __future__ import annotations

from flask import g, request

from app import security
from app.exceptions import QualiflowError
from app.services import users


class Unauthorized(QualiflowError):
    """Send 'Authorization: Bearer <token>' with a valid API token."""

    status = 401


def authenticate_request() -> None:
    """Resolve the bearer token to a user (in g.api_user) or answer 401; an address whose tokens were refused too
    often lately gets 429 before its token is looked at (RATELIMIT_API_TOKEN)."""
    security.refuse_after_failed_tokens()
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    presented = scheme.lower() == "bearer" and token.strip()
    user = users.user_for_token(token.strip()) if presented else None
    if user is None:
        if presented:
            security.count_failed_token()
        raise Unauthorized()
    g.api_user = user


def api_user() -> users.User:
    return g.api_user

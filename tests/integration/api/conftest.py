"""API test fixtures: bearer tokens for demo users, and the recall tests' plant."""
from __future__ import annotations

import pytest

from app.services import users
from tests.integration.recalls.conftest import plant  # noqa: F401 - the recall API tests use the same plant


@pytest.fixture
def auth(seeded):
    """Return a function giving the Authorization header of a demo user's API token (one token per user and test,
    so a test can act as several users)."""
    tokens: dict[str, str] = {}

    def headers(username: str) -> dict[str, str]:
        if username not in tokens:
            tokens[username] = users.issue_token(username)
        return {"Authorization": f"Bearer {tokens[username]}"}

    return headers

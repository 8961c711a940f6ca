"""API test fixtures: bearer tokens for demo users."""
from __future__ import annotations

import pytest

from app.services import users


@pytest.fixture
def auth(seeded):
    """Return a function giving the Authorization header of a fresh API token for a demo user."""

    def headers(username: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {users.issue_token(username)}"}

    return headers

"""Fixtures of the service-layer integration tests."""
from __future__ import annotations

import pytest
from argon2 import PasswordHasher

from app.services import users


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch):
    """Hash demo passwords with minimal argon2 cost: seeding seven users otherwise dominates each test's time."""
    monkeypatch.setattr(users, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))

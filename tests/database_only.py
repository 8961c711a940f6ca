"""A pytest plugin for CI's second pass on PostgreSQL: leave out the unit tests that use no database.

    pytest -p tests.database_only tests/unit tests/integration

A unit test reaches the database only through the `app` fixture (directly or through `client`, `seeded`, ...:
fixturenames holds the whole closure), which creates the database of TEST_DATABASE_URL; the others (parsers,
sandbox rules, templates, layer rules) give the same answer on every database and already ran in the SQLite pass.
Integration tests all run again: some reach the database through servers and apps of their own.
"""
from __future__ import annotations

from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parent / "unit"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skipped = [item for item in items
               if UNIT in Path(item.fspath).parents and "app" not in getattr(item, "fixturenames", ())]
    if skipped:
        left_out = set(map(id, skipped))
        config.hook.pytest_deselected(items=skipped)
        items[:] = [item for item in items if id(item) not in left_out]

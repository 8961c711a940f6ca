"""Migrations are the only way the schema changes: upgrading a fresh database gives exactly the models."""
from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT


def test_migrations_create_the_schema_the_models_describe(tmp_path):
    env = {**os.environ, "FLASK_APP": "wsgi", "DATABASE_URL": f"sqlite:///{tmp_path / 'migrated.sqlite'}"}
    flask = [sys.executable, "-m", "flask"]
    upgrade = subprocess.run([*flask, "db", "upgrade"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert upgrade.returncode == 0, upgrade.stderr
    check = subprocess.run([*flask, "db", "check"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert check.returncode == 0, check.stderr + check.stdout
    assert "No new upgrade operations detected" in check.stdout + check.stderr

"""Migration 0024 opens the stock ledger with one opening-balance row per stock level already held, so the ledger adds
up to the levels from the first day, and makes the ledger append-only; its downgrade removes it again."""
from __future__ import annotations

import os
import sqlite3
import subprocess
import sys

import pytest

from tests.conftest import ROOT

LEVELS = [(1, "A-01", 40), (1, "B-01", 0), (2, "A-01", 7)]


def _flask(database: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "FLASK_APP": "wsgi", "DATABASE_URL": f"sqlite:///{database}"}
    return subprocess.run([sys.executable, "-m", "flask", "db", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True)


def test_the_upgrade_writes_an_opening_balance_per_stock_level_and_guards_the_ledger(tmp_path):
    database = tmp_path / "plant.sqlite"
    assert _flask(str(database), "upgrade", "0023").returncode == 0
    with sqlite3.connect(database) as connection:
        connection.execute("INSERT INTO products (id, name, model, specification, registration_no, device_class, "
                           "sterile, excursion_tolerance_minutes) VALUES (1, 'Kit', '', '', '', 'II', 0, 30)")
        connection.executemany("INSERT INTO product_lots (id, product_id, lot_number, quantity, status, "
                               "batch_record_complete, labels_checked) VALUES (?, 1, ?, 50, 'released', 0, 0)",
                               [(1, "L1"), (2, "L2")])
        connection.executemany("INSERT INTO stock_levels (product_lot_id, location, quantity) VALUES (?, ?, ?)",
                               LEVELS)
    upgraded = _flask(str(database), "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    with sqlite3.connect(database) as connection:
        rows = connection.execute("SELECT product_lot_id, location, change, balance, kind, actor_id, at "
                                  "FROM stock_movements ORDER BY id").fetchall()
        assert [row[:5] for row in rows] == [(lot, location, quantity, quantity, "opening")
                                             for lot, location, quantity in LEVELS]
        assert all(row[5] is None and row[6] for row in rows)
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            connection.execute("UPDATE stock_movements SET change = 1")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            connection.execute("DELETE FROM stock_movements")
    downgraded = _flask(str(database), "downgrade", "0023")
    assert downgraded.returncode == 0, downgraded.stderr
    with sqlite3.connect(database) as connection:
        assert connection.execute("SELECT count(*) FROM sqlite_master WHERE name LIKE 'stock_movements%'").fetchone() \
            == (0,)
        assert connection.execute("SELECT count(*) FROM stock_levels").fetchone() == (3,)

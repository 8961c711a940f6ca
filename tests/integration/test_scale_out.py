"""Scale-out, small: 2 gunicorn workers and 2 schedulers on PostgreSQL, 60 completions from 6 API clients; every
instance consistent, one audit row per completion, each timer fired once (bench/scale_out.py is the full run).
It makes a database of its own; it runs in the PostgreSQL pass only (TEST_DATABASE_URL)."""
from __future__ import annotations

import os
import uuid

import pytest

from bench import scale_out

pytestmark = pytest.mark.postgres


def test_workers_and_schedulers_share_one_database_without_losing_or_doubling_a_step(tmp_path):
    if not os.environ.get("TEST_DATABASE_URL", "").startswith("postgresql"):
        pytest.skip("runs in the PostgreSQL pass (TEST_DATABASE_URL), once per CI run")
    if not scale_out.postgres_answers():
        pytest.skip("PostgreSQL does not answer on 127.0.0.1:5432")
    name = f"qualiflow_scale_{uuid.uuid4().hex[:8]}"
    url = scale_out.create_database(name)
    try:
        report = scale_out.run(workers=2, schedulers=2, completions=60, clients=6, database_url=url,
                               workdir=tmp_path)
    finally:
        scale_out.drop_database(name)
    assert report["problems"] == []
    assert (report["instances"], report["completions"]) == (30, 60)
    assert report["stall_check"] == "Checked 0 running instance(s): 0 stalled."

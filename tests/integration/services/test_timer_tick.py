"""The timer tick at scale: it reads only the due rows (through the (status, next_timer_at) index, with and without
planner statistics), and the statistics are gathered after migrations and by the scheduler."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import event, text

from app.extensions import db
from app.models import ProcessInstance
from app.scheduler import start_scheduler
from app.services import maintenance
from app.services.workflow import processes
from app.services.workflow.timers import due_instance_ids
from tests.conftest import T0

MINUTE = timedelta(minutes=1)


def _waiting(status: str, due: timedelta | None) -> int:
    instance = ProcessInstance(version=processes.get_version("capa"), title=f"{status} {due}", status=status,
                               started_at=T0, next_timer_at=T0 + due if due is not None else None)
    db.session.add(instance)
    db.session.flush()
    return instance.id


def test_the_tick_picks_the_running_instances_whose_timer_is_due_earliest_first(seeded):
    late = _waiting("running", -MINUTE)
    earlier = _waiting("running", -2 * MINUTE)
    now_due = _waiting("running", timedelta(0))
    _waiting("running", MINUTE)  # not yet
    _waiting("running", None)  # no timer
    _waiting("incident", -MINUTE)  # stopped: an administrator retries it
    _waiting("completed", -MINUTE)
    db.session.commit()

    assert due_instance_ids(T0) == [earlier, late, now_due]
    assert due_instance_ids(T0, limit=2) == [earlier, late]
    assert due_instance_ids(T0 - 3 * MINUTE) == []


def _due_query_plan() -> list[str]:
    statements = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        statements.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", capture)
    try:
        due_instance_ids(T0)
    finally:
        event.remove(db.engine, "before_cursor_execute", capture)
        db.session.rollback()  # SQLite: the session's transaction holds the write lock the EXPLAIN waits for
    [(statement, parameters)] = [s for s in statements if "next_timer_at" in s[0]]
    with db.engine.connect() as connection:
        return [row[3] for row in connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)]


def test_the_tick_reads_one_index_range_with_or_without_statistics(seeded):
    if db.engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL plans by its own statistics (autovacuum gathers them)")
    for n in range(30):
        _waiting("running", timedelta(days=n + 1))
        _waiting("completed", None)
    db.session.commit()

    for statistics in ("none", "gathered"):
        if statistics == "gathered":
            maintenance.refresh_statistics()
            db.session.remove()
            db.engine.dispose()  # SQLite reads its statistics when a connection opens
        plan = _due_query_plan()
        assert plan == ["SEARCH process_instances USING COVERING INDEX ix_process_instances_status_timer "
                        "(status=? AND next_timer_at<?)"], (statistics, plan)


def test_refreshing_statistics_analyzes_the_tables(seeded):
    _waiting("running", MINUTE)
    db.session.commit()  # SQLite keeps no statistics of an empty table

    maintenance.refresh_statistics()

    if db.engine.dialect.name == "sqlite":
        analyzed = set(db.session.scalars(text("SELECT DISTINCT tbl FROM sqlite_stat1")))
    else:
        analyzed = set(db.session.scalars(text(
            "SELECT relname FROM pg_stat_user_tables WHERE last_analyze IS NOT NULL")))
    assert {"users", "process_instances"} <= analyzed


def test_the_scheduler_refreshes_statistics_every_few_hours(app):
    app.config["ANALYZE_HOURS"] = 6
    scheduler = start_scheduler(app)
    try:
        job = scheduler.get_job("analyze")
        assert job is not None and job.trigger.interval == timedelta(hours=6)
    finally:
        scheduler.shutdown(wait=True)

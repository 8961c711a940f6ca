"""Shared by the scale benchmarks (bench/inbox.py, bench/timers.py): a seeded database kept between runs, SQLite
or PostgreSQL, latency percentiles and the EXPLAIN plans of the statements a call ran."""
from __future__ import annotations

import hashlib
import os
import platform
import socket
import sqlite3
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.engine import BenchError  # noqa: E402 - needs the project on the path

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
WORKDIR = Path(os.environ.get("QUALIFLOW_BENCH_DIR", "/tmp/qualiflow-bench-scale"))

__all__ = ["BenchError", "DEFAULT_PG_URL", "ROOT", "WORKDIR", "bench_database", "captured_sql", "environment",
           "explain", "percentiles", "postgres_answers", "progress", "timed"]


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def postgres_answers(url: str = DEFAULT_PG_URL) -> bool:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    try:
        with socket.create_connection((parsed.host or "127.0.0.1", parsed.port or 5432), timeout=1):
            return True
    except OSError:
        return False


def _postgres_database(url: str, name: str, fresh: bool) -> str:
    """Return the URL of a database of its own for the benchmark, created next to `url`'s (so the test suite,
    which drops the public schema of its database, never takes the benchmark's objects with it)."""
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            exists = connection.exec_driver_sql("SELECT 1 FROM pg_database WHERE datname = %(name)s",
                                                {"name": name}).first()
            if exists and fresh:
                connection.exec_driver_sql(f'DROP DATABASE "{name}" WITH (FORCE)')
                exists = None
            if not exists:
                connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    finally:
        admin.dispose()
    return make_url(url).set(database=name).render_as_string(hide_password=False)


@contextmanager
def bench_database(backend: str, name: str, marker: str, seed: Callable[[], None], *, fresh: bool = False,
                   pg_url: str = DEFAULT_PG_URL, config: dict | None = None) -> Iterator[Any]:
    """Yield an app on the benchmark's database (SQLite file WORKDIR/name.sqlite, or PostgreSQL database `name`),
    seeded by `seed()` in an app context unless the database already carries the same marker."""
    from app import create_app
    from app.extensions import db
    from app.models.audit import install_append_only

    if backend == "sqlite":
        WORKDIR.mkdir(parents=True, exist_ok=True)
        path = WORKDIR / f"{name}.sqlite"
        if fresh:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        uri = f"sqlite:///{path}"
    else:
        uri = _postgres_database(pg_url, name, fresh)
    app = create_app("testing", {"SQLALCHEMY_DATABASE_URI": uri, "SMTP_PORT": 1, **(config or {})})
    with app.app_context():
        marker = f"{marker} schema={_schema_hash(db)}"  # a model change (a new index) seeds again
        with db.engine.begin() as connection:
            connection.exec_driver_sql("CREATE TABLE IF NOT EXISTS bench_marker (marker VARCHAR(500))")
            found = connection.exec_driver_sql("SELECT marker FROM bench_marker").scalar()
        if found != marker:
            progress(f"{backend}: seeding {name} (kept for the next run)")
            db.drop_all()
            with db.engine.begin() as connection:
                connection.exec_driver_sql("DELETE FROM bench_marker")
            db.create_all()
            with db.engine.begin() as connection:
                install_append_only(connection)
            started = time.perf_counter()
            seed()
            db.session.remove()
            if backend == "postgresql":  # what autovacuum does to a table at rest: index-only scans need it
                with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                    connection.exec_driver_sql("VACUUM ANALYZE")
            with db.engine.begin() as connection:
                connection.exec_driver_sql("INSERT INTO bench_marker (marker) VALUES (:m)"
                                           if backend == "sqlite" else "INSERT INTO bench_marker VALUES (%(m)s)",
                                           {"m": marker})
            progress(f"{backend}: seeded in {time.perf_counter() - started:.0f} s")
        db.session.remove()
    try:
        yield app
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def _schema_hash(db) -> str:
    from sqlalchemy.schema import CreateIndex, CreateTable

    dialect = db.engine.dialect
    ddl = [str(CreateTable(table).compile(dialect=dialect)) for table in db.metadata.sorted_tables]
    ddl += sorted(str(CreateIndex(index).compile(dialect=dialect))
                  for table in db.metadata.sorted_tables for index in table.indexes)
    return hashlib.sha256("\n".join(ddl).encode()).hexdigest()[:12]


def percentiles(seconds: list[float], cpu: list[float] | None = None) -> dict[str, float]:
    """p50/p95/max of wall-clock seconds, in ms; with `cpu`, the median CPU time of this process too (steadier
    than the wall clock on a machine other work keeps busy)."""
    ordered = sorted(seconds)
    p95 = statistics.quantiles(ordered, n=20)[-1] if len(ordered) >= 2 else ordered[0]
    result = {"p50_ms": round(statistics.median(ordered) * 1000, 2), "p95_ms": round(p95 * 1000, 2),
              "max_ms": round(ordered[-1] * 1000, 2), "n": len(ordered)}
    if cpu:
        result["cpu_p50_ms"] = round(statistics.median(cpu) * 1000, 2)
    return result


def timed(call: Callable[[], Any], repeats: int, warmup: int = 2) -> dict[str, float]:
    for _ in range(warmup):
        call()
    seconds, cpu = [], []
    for _ in range(repeats):
        started, started_cpu = time.perf_counter(), time.process_time()
        call()
        seconds.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    return percentiles(seconds, cpu)


@contextmanager
def captured_sql(engine) -> Iterator[list[tuple[str, Any]]]:
    """Collect the (statement, parameters) the engine sends while the block runs."""
    from sqlalchemy import event

    statements: list[tuple[str, Any]] = []

    def before(conn, cursor, statement, parameters, context, executemany):
        statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", before)


def explain(engine, statement: str, parameters: Any) -> list[str]:
    """The plan of one captured statement: EXPLAIN QUERY PLAN on SQLite, EXPLAIN (ANALYZE) on PostgreSQL."""
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            rows = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()
            depth = {0: 0}
            lines = []
            for node, parent, _, detail in rows:
                depth[node] = depth.get(parent, 0) + 1
                lines.append("  " * (depth[node] - 1) + detail)
            return lines
        rows = connection.exec_driver_sql("EXPLAIN (ANALYZE, COSTS OFF, SUMMARY OFF) " + statement,
                                          parameters).all()
        return [row[0] for row in rows]


def environment(backends: list[str]) -> dict[str, str]:
    env = {"python": platform.python_version(), "sqlite": sqlite3.sqlite_version, "cpus": str(os.cpu_count()),
           "machine": f"{platform.system()} {platform.machine()}"}
    if "postgresql" in backends:
        env["postgresql"] = "127.0.0.1:5432"
    return env

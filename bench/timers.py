#!/usr/bin/env python3
"""Timer tick benchmark: 100,000 instances waiting on a timer, 100 of them due.

    python bench/timers.py [--postgres] [--waiting N] [--due N] [--batches N] [--no-lateness] [--json]

A fresh database each run (the ticks move the instances on): the demo users and a diagram that waits on a timer
(start -> timer `wait_for` -> a user task -> end). --batches x --due real instances (default 6 x 100) are started
through the service layer at T0, batch k waiting k hours; the rest of --waiting (default 100,000) are copies of
one of them (its saved engine state) waiting days longer, inserted with Core. The planner's statistics are
gathered as the app does after migrations and from its scheduler.

Measured with `timers.tick` as the scheduler calls it:
- idle tick: nothing due (T0 + 30 min), p50/p95 over --repeats;
- due tick: batch k due at T0 + k h + 1 s, one tick fires its --due instances (timers.BATCH per transaction, with
  their audit rows), p50/p95 over the batches; each tick must fire exactly --due instances. Every other batch is
  fired with one transaction per instance (as before the tick batched them) for the same run's ratio;
- before: the idle tick without the (status, next_timer_at) index and without statistics, as before issue 21;
- lateness: the in-process scheduler (interval 1 s) running 20 instances whose timers fall due 2 to 6 s from now:
  when each fired after it fell due (from the audit trail's timer.fired rows), against 2x the interval.

Goals (issue 21): idle tick < 5 ms, 100 due < 200 ms, lateness < 2x the interval. A miss prints MISS and still
exits 0; a tick that fires the wrong number of instances exits 1.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.engine import FORM, _lane  # noqa: E402 - needs the project on the path
from bench.scale import (  # noqa: E402
    DEFAULT_PG_URL,
    BenchError,
    bench_database,
    captured_sql,
    environment,
    explain,
    percentiles,
    postgres_answers,
    progress,
)

IDLE_GOAL_MS, DUE_GOAL_MS = 5.0, 200.0
# A month ahead: the scheduler of the lateness run ticks at the real time, when none of these is due yet.
T0 = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
TIMER_ID = "bench_timer"
TIMER_BPMN = f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" id="bench_timer_defs"
    targetNamespace="https://qualiflow.example/bench">
  <bpmn:process id="{TIMER_ID}" name="Bench: wait, then act" isExecutable="true">
    <bpmn:laneSet id="lanes">{_lane("lane_qa", "qa", "start wait act end")}</bpmn:laneSet>
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="wait"/>
    <bpmn:intermediateCatchEvent id="wait" name="Wait">
      <bpmn:timerEventDefinition id="wait_timer">
        <bpmn:timeDuration>wait_for</bpmn:timeDuration>
      </bpmn:timerEventDefinition>
    </bpmn:intermediateCatchEvent>
    <bpmn:sequenceFlow id="f2" sourceRef="wait" targetRef="act"/>
    <bpmn:userTask id="act" name="Act on it"><bpmn:extensionElements><spiffworkflow:properties>
      <spiffworkflow:property name="formJsonSchemaFilename" value="{FORM}"/>
    </spiffworkflow:properties></bpmn:extensionElements></bpmn:userTask>
    <bpmn:sequenceFlow id="f3" sourceRef="act" targetRef="end"/>
    <bpmn:endEvent id="end"/>
  </bpmn:process>
</bpmn:definitions>"""


def _start(wait_for: str, now: datetime, title: str) -> int:
    from app.extensions import db
    from app.services import users
    from app.services.workflow import instances

    instance_id = instances.start_instance(TIMER_ID, users.get_by_username("qa"), {"wait_for": wait_for},
                                           title=title, now=now).id
    db.session.remove()
    return instance_id


def seed(waiting: int, due: int, batches: int) -> None:
    from sqlalchemy import insert, select

    from app.extensions import db
    from app.models import ProcessInstance
    from app.models.search import analyze
    from app.services import demo
    from app.services.workflow import processes

    demo.seed_people()
    processes.deploy_file(TIMER_BPMN.encode(), f"{TIMER_ID}.bpmn", None, "benchmark", release="benchmark")
    db.session.remove()
    for batch in range(1, batches + 1):
        for number in range(due):
            _start(f"PT{batch}H", T0, f"Timer batch {batch} #{number}")
        progress(f"  batch {batch}: {due} instances waiting {batch} h")
    template = db.session.scalars(select(ProcessInstance).limit(1)).one()
    row = {"version_id": template.version_id, "status": "running", "language": "en", "data": template.data,
           "state_json": template.state_json, "lock_version": 1, "started_by_id": template.started_by_id,
           "started_at": T0, "completed_at": None}
    db.session.remove()
    copies = waiting - batches * due
    chunk = 10_000
    for start in range(0, copies, chunk):
        rows = [{**row, "title": f"Waiting copy {n}", "next_timer_at": T0 + timedelta(days=2, seconds=n)}
                for n in range(start, min(start + chunk, copies))]
        with db.engine.begin() as connection:
            connection.execute(insert(ProcessInstance.__table__), rows)
    progress(f"  {copies:,} copies waiting days longer")
    with db.engine.begin() as connection:
        analyze(connection)


def _tick(app, now: datetime):
    from app.extensions import db
    from app.services.workflow import timers

    with app.app_context():
        started, started_cpu = time.perf_counter(), time.process_time()
        report = timers.tick(now)
        seconds, cpu = time.perf_counter() - started, time.process_time() - started_cpu
        db.session.remove()
    _tick.cpu = cpu
    return seconds, report


def _idle(app, repeats: int) -> dict[str, float]:
    for _ in range(2):
        _tick(app, T0 + timedelta(minutes=30))
    seconds, cpu = [], []
    for _ in range(repeats):
        elapsed, report = _tick(app, T0 + timedelta(minutes=30))
        if report.fired or report.failed:
            raise BenchError(f"an idle tick fired {report.fired} and failed {report.failed}")
        seconds.append(elapsed)
        cpu.append(_tick.cpu)
    return percentiles(seconds, cpu)


def _plan(app) -> list[str]:
    from app.extensions import db

    with app.app_context():
        engine = db.engine
    with captured_sql(engine) as statements:
        _tick(app, T0 + timedelta(minutes=30))
    due_query = next(s for s in statements if "next_timer_at <=" in s[0] and "ORDER BY" in s[0])
    return [" ".join(due_query[0].split()), *explain(engine, *due_query)]


def _before(app, backend: str, repeats: int) -> dict[str, Any]:
    """The idle tick as before issue 21: no (status, next_timer_at) index and, on SQLite, no statistics."""
    from app.extensions import db

    with app.app_context():
        with db.engine.begin() as connection:
            connection.exec_driver_sql("DROP INDEX ix_process_instances_status_timer")
            if backend == "sqlite":
                connection.exec_driver_sql("DROP TABLE IF EXISTS sqlite_stat1")
        db.engine.dispose()  # SQLite reads its statistics when a connection opens
    try:
        return {**_idle(app, max(3, repeats // 5)), "plan": _plan(app)[1:]}
    finally:
        with app.app_context():
            with db.engine.begin() as connection:
                connection.exec_driver_sql("CREATE INDEX ix_process_instances_status_timer "
                                           "ON process_instances (status, next_timer_at)")


def _lateness(app, count: int = 20) -> dict[str, Any]:
    """Start instances whose timers fall due 2-6 s from now and let the in-process scheduler fire them."""
    from sqlalchemy import select

    from app.extensions import db
    from app.models import AuditEvent
    from app.scheduler import start_scheduler

    interval = app.config["SCHEDULER_TIMER_SECONDS"]
    with app.app_context():
        ids = [_start(f"PT{2 + n % 5}S", datetime.now(UTC), f"Lateness {n}") for n in range(count)]
    scheduler = start_scheduler(app)
    try:
        deadline = time.monotonic() + 6 + 4 * interval + 10
        while time.monotonic() < deadline:
            time.sleep(0.5)
            with app.app_context():
                fired = list(db.session.scalars(select(AuditEvent).where(
                    AuditEvent.action == "timer.fired", AuditEvent.instance_id.in_(ids))))
                db.session.remove()
            if len(fired) == count:
                break
    finally:
        scheduler.shutdown(wait=True)
    if len(fired) != count:
        raise BenchError(f"the scheduler fired {len(fired)} of {count} timers")
    late = [(event.at - datetime.fromisoformat(event.new["due_at"])).total_seconds() for event in fired]
    return {"interval_s": interval, "timers": count, "p50_s": round(sorted(late)[count // 2], 2),
            "max_s": round(max(late), 2), "goal_s": 2 * interval,
            "status": "PASS" if max(late) < 2 * interval else "MISS"}


def run_backend(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    marker = f"timers {time.time()}"  # always fresh: the ticks move the instances on
    # The scheduler of the lateness run writes an audit checkpoint at start: into a folder of this run's own.
    checkpoints = tempfile.TemporaryDirectory(prefix="qualiflow-bench-checkpoints-")
    config = {"SCHEDULER_TIMER_SECONDS": 1, "EXPIRY_CHECK_MINUTES": 10_000, "AUDIT_CHECKPOINT_MINUTES": 10_000,
              "AUDIT_CHECKPOINT_DIR": Path(checkpoints.name)}
    with checkpoints, bench_database(backend, "qualiflow_bench_timers", marker,
                                     lambda: seed(args.waiting, args.due, args.batches), fresh=True,
                                     pg_url=args.pg_url, config=config) as app:
        idle = _idle(app, args.repeats)
        plan = _plan(app)
        from app.services.workflow import timers

        # Alternating: odd batches as the tick runs (timers.BATCH instances per transaction), even ones with one
        # transaction per instance, as before issue 21's batching: the same run gives their ratio.
        measured = {"batched": ([], []), "per_instance": ([], [])}
        batch_size = timers.BATCH
        for batch in range(1, args.batches + 1):
            way = "batched" if batch % 2 or not args.compare else "per_instance"
            timers.BATCH = batch_size if way == "batched" else 1
            try:
                elapsed, report = _tick(app, T0 + timedelta(hours=batch, seconds=1))
            finally:
                timers.BATCH = batch_size
            if report.fired != args.due or report.failed:
                raise BenchError(f"batch {batch}: fired {report.fired}, failed {report.failed}, "
                                 f"expected {args.due}")
            measured[way][0].append(elapsed)
            measured[way][1].append(_tick.cpu)
        due = percentiles(*measured["batched"])
        single = percentiles(*measured["per_instance"]) if measured["per_instance"][0] else None
        before = _before(app, backend, args.repeats) if args.before else None
        lateness = _lateness(app) if args.lateness else None
    return {
        "backend": backend, "waiting": args.waiting, "due": args.due,
        "idle_tick": {**idle, "goal": f"< {IDLE_GOAL_MS} ms", "status": "PASS" if idle["p95_ms"] < IDLE_GOAL_MS
                      else "MISS"},
        "due_tick": {**due, "per_instance_ms": round(due["p50_ms"] / args.due, 2), "goal": f"< {DUE_GOAL_MS} ms",
                     "status": "PASS" if due["p95_ms"] < DUE_GOAL_MS else "MISS"},
        "per_instance_transactions": single, "batch_size": batch_size,
        "plan": plan, "before": before, "lateness": lateness,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    backends = [] if args.skip_sqlite else ["sqlite"]
    if args.postgres:
        if postgres_answers(args.pg_url):
            backends.append("postgresql")
        else:
            progress("PostgreSQL does not answer: SQLite only")
    load_before = os.getloadavg()[0]
    runs = [run_backend(backend, args) for backend in backends]
    return {"runs": runs, "environment": {**environment(backends),
                                          "load_average_1m": f"{load_before:.2f} -> {os.getloadavg()[0]:.2f}"}}


def print_table(result: dict[str, Any]) -> None:
    for backend in result["runs"]:
        idle, due, before = backend["idle_tick"], backend["due_tick"], backend["before"]
        print(f"\n## {backend['backend']}: {backend['waiting']:,} instances waiting on a timer")
        print(f"idle tick:      p50 {idle['p50_ms']:7.2f} ms, p95 {idle['p95_ms']:7.2f} ms, CPU p50 "
              f"{idle['cpu_p50_ms']:6.2f} ms   goal {idle['goal']}: {idle['status']}")
        print(f"{backend['due']} due tick:   p50 {due['p50_ms']:7.1f} ms, p95 {due['p95_ms']:7.1f} ms, CPU p50 "
              f"{due['cpu_p50_ms']:6.1f} ms   goal {due['goal']}: {due['status']} ({due['per_instance_ms']} ms "
              "per instance)")
        single = backend["per_instance_transactions"]
        if single:
            print(f"  same run, one transaction per instance (before batching): p50 {single['p50_ms']:.1f} ms, CPU "
                  f"p50 {single['cpu_p50_ms']:.1f} ms: batches of {backend['batch_size']} take "
                  f"{due['p50_ms'] / single['p50_ms']:.2f}x the time, {due['cpu_p50_ms'] / single['cpu_p50_ms']:.2f}x "
                  "the CPU")
        if before:
            print(f"before (no index, no statistics), idle tick: p50 {before['p50_ms']:.1f} ms, p95 "
                  f"{before['p95_ms']:.1f} ms: {before['p50_ms'] / max(idle['p50_ms'], 0.001):.0f}x slower")
        if backend["lateness"]:
            late = backend["lateness"]
            print(f"lateness, scheduler every {late['interval_s']} s, {late['timers']} timers: p50 {late['p50_s']} s, "
                  f"max {late['max_s']} s   goal < {late['goal_s']} s: {late['status']}")
        print("the tick's due query:", backend["plan"][0])
        for line in backend["plan"][1:]:
            print(f"    {line}")
        if before:
            print("  before:")
            for line in before["plan"]:
                print(f"    {line}")
    env = result["environment"]
    print(f"\nPython {env['python']}, SQLite {env['sqlite']}, {env['machine']}, {env['cpus']} CPUs, "
          f"load {env['load_average_1m']}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--waiting", type=int, default=100_000, help="instances waiting on a timer")
    parser.add_argument("--due", type=int, default=100, help="instances due per tick")
    parser.add_argument("--batches", type=int, default=6, help="due ticks measured (with --compare, every other "
                        "one with one transaction per instance)")
    parser.add_argument("--no-compare", dest="compare", action="store_false",
                        help="every due tick as the tick runs (no per-instance comparison)")
    parser.add_argument("--repeats", type=int, default=50, help="idle ticks measured")
    parser.add_argument("--postgres", action="store_true", help="also on PostgreSQL (127.0.0.1:5432)")
    parser.add_argument("--skip-sqlite", action="store_true", help="with --postgres: PostgreSQL only")
    parser.add_argument("--pg-url", default=os.environ.get("QUALIFLOW_BENCH_PG_URL", DEFAULT_PG_URL))
    parser.add_argument("--no-before", dest="before", action="store_false", help="skip the index-less idle tick")
    parser.add_argument("--no-lateness", dest="lateness", action="store_false", help="skip the scheduler run")
    parser.add_argument("--quick", action="store_true", help="smoke: 5,000 waiting, 20 due, 4 batches")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.quick:
        args.waiting, args.due, args.batches, args.repeats = 5_000, 20, 4, 10
    if args.waiting < args.due * args.batches:
        parser.error("--waiting must be at least --due x --batches")
    return args


def main(argv: list[str] | None = None) -> int:
    from bench.engine import bench_main

    return bench_main(parse_args, run, print_table, argv)


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Inbox benchmark: GET /api/v1/tasks and the HTML inbox `/` with 100,000 open tasks, of which user qa sees 50,000.

    python bench/inbox.py [--postgres] [--repeats N] [--open N] [--fresh] [--no-before] [--plans] [--json]

The database is seeded once with Core bulk inserts and kept for the next run (SQLite: a file under
/tmp/qualiflow-bench-scale; PostgreSQL: a database of its own, qualiflow_bench_inbox, next to `test`): the demo
users and the shipped procedures, --open instances (default 100,000) each with one ready user task and a 3.5 KB
saved engine state, and as many completed tasks as history. qa (groups qa and regulatory) sees 40% offered to qa,
5% to regulatory and 5% claimed by qa: 50,000; the other tasks belong to other groups or are claimed by others.
70% of the tasks have a due date (a month overdue to two months ahead), the rest none. The planner's statistics
are refreshed after seeding, as the app does after migrations and from its scheduler.

Every request goes through Flask's test client with the real authentication (a bearer token; a signed-in
session for the HTML page), p50/p95 over --repeats (default 30) after two warm-ups: the first page, a deep page
read the way the Next link and the API's `next` read it (a cursor: page 2001, after page 2000's last task) and, for
comparison, by number (`page=2000`, OFFSET, kept for compatibility), searches (a lot number one instance has, a
word 1 title in 8 has, a task name, nothing), the procedure and overdue filters. "before" runs the inbox query as
it was before issue 21 (a four-table join with the instance's saved state, an exact COUNT over it, OFFSET) at the
service level, beside today's at the same level: their ratio is the speed-up. --plans prints the EXPLAIN plan of
every inbox statement of four requests.

Goal (issue 21): p95 < 100 ms for the API and the page, first page and a deep page, on SQLite and PostgreSQL; the
cursor's deep page as fast as the first (the table's last line: their ratio). A miss
prints MISS and still exits 0; a request that fails exits 1.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.scale import (  # noqa: E402 - needs the project on the path
    DEFAULT_PG_URL,
    BenchError,
    bench_database,
    captured_sql,
    environment,
    explain,
    postgres_answers,
    progress,
    timed,
)

GOAL_P95_MS = 100.0
SEED_VERSION = 3
NAMES = [("Describe the problem", "描述问题"), ("Containment (hold affected lots)", "遏制（隔离受影响批次）"),
         ("Root-cause investigation", "根本原因调查"), ("Action plan", "行动计划"),
         ("QA approval and closure (e-signature)", "QA 批准并关闭（电子签名）"), ("Impact assessment", "影响评估"),
         ("Recall decision (e-signature)", "召回决定（电子签名）"), ("Release checks", "放行检查")]
SUBJECTS = ["Burr on housing", "Seal leak", "Label mix-up", "Sterility deviation", "Particle in vial",
            "Torque out of range", "Wrong IFU version", "Cracked connector"]
PROCESSES = ["capa", "change_control", "recall", "lot_release", "supplier_return"]
# (share of the open tasks, group, assignee): qa sees the first three rows.
VISIBILITY = [(0.40, "qa", None), (0.05, "regulatory", None), (0.05, "qa", "qa"), (0.02, "qa", "head"),
              (0.20, "production", None), (0.05, "production", "prod"), (0.10, "qa_management", None),
              (0.13, "responsible_person", None)]


def _lot(number: int) -> str:
    return f"L{(number * 7919) % 1_000_000:06d}"


def seed(open_tasks: int, rng_seed: int = 21) -> None:
    """Users, procedures, instances with one ready task each and a completed task each, by Core bulk inserts."""
    from sqlalchemy import insert, select

    from app.extensions import db
    from app.models import ProcessDefinition, ProcessInstance, ProcessVersion, Task, User
    from app.models.search import analyze
    from app.services import demo
    from app.services.workflow import processes

    rng = random.Random(rng_seed)
    demo.seed_people()
    processes.deploy_directory(ROOT / "processes", None, "benchmark", release="benchmark")
    versions = dict(db.session.execute(select(ProcessDefinition.key, ProcessVersion.id).join(
        ProcessVersion.definition)).all())
    user_ids = dict(db.session.execute(select(User.username, User.id)).all())
    db.session.commit()
    now = datetime.now(UTC)
    state = json.dumps({"serializer_version": "bench", "filler": "x" * 3400})
    plan = [(group, assignee) for share, group, assignee in VISIBILITY for _ in range(round(share * open_tasks))]
    plan = (plan + [("qa", None)] * open_tasks)[:open_tasks]
    rng.shuffle(plan)
    chunk = 10_000
    for start in range(0, open_tasks, chunk):
        numbers = range(start + 1, min(start + chunk, open_tasks) + 1)
        instances, tasks = [], []
        for number in numbers:
            key = PROCESSES[number % len(PROCESSES)]
            subject = SUBJECTS[rng.randrange(len(SUBJECTS))]
            instances.append({
                "id": number, "version_id": versions[key], "status": "running", "language": "en",
                "title": f"{key.upper()}-2026-{number:06d} {subject}, lot {_lot(number)}",
                "state_json": state, "data": {"severity": number % 5}, "lock_version": 1, "next_timer_at": None,
                "started_by_id": user_ids["qa"], "started_at": now - timedelta(days=60), "completed_at": None})
            name, name_zh = NAMES[rng.randrange(len(NAMES))]
            group, assignee = plan[number - 1]
            due = None if rng.random() < 0.3 else now + timedelta(minutes=rng.randint(-30 * 1440, 60 * 1440))
            common = {"instance_id": number, "kind": "user", "lane": group, "group_name": group,
                      "form": "capa_escalation.schema.json", "ui_form": None, "signature_meaning": None,
                      "evidence": None, "four_eyes_with": None, "data_hash": None}
            tasks.append({**common, "id": number, "spiff_id": str(uuid.UUID(int=rng.getrandbits(128))),
                          "element_id": f"step_{name[:8].lower()}", "name": name, "name_zh": name_zh,
                          "state": "ready", "assignee_id": user_ids[assignee] if assignee else None, "due_at": due,
                          "created_at": now - timedelta(days=1), "completed_at": None, "completed_by_id": None,
                          "data": None})
            tasks.append({**common, "id": open_tasks + number, "spiff_id": str(uuid.UUID(int=rng.getrandbits(128))),
                          "element_id": "step_earlier", "name": "Earlier step", "name_zh": "先前步骤",
                          "state": "completed", "assignee_id": user_ids["qa"], "due_at": None,
                          "created_at": now - timedelta(days=50), "completed_at": now - timedelta(days=40),
                          "completed_by_id": user_ids["qa"], "data": {"ok": True}})
        with db.engine.begin() as connection:
            connection.execute(insert(ProcessInstance.__table__), instances)
            connection.execute(insert(Task.__table__), tasks)
        progress(f"  {numbers[-1]:,} / {open_tasks:,} instances")
    with db.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql("SELECT setval('process_instances_id_seq', %(n)s)", {"n": open_tasks})
            connection.exec_driver_sql("SELECT setval('tasks_id_seq', %(n)s)", {"n": 2 * open_tasks})
        analyze(connection)


def old_inbox(actor, page: int, per_page: int = 20):
    """The inbox query before issue 21 (commit efa2035), unfiltered: kept here to measure the speed-up."""
    from sqlalchemy import or_, select
    from sqlalchemy.orm import contains_eager, selectinload

    from app.extensions import db
    from app.models import ProcessInstance, ProcessVersion, Task

    mine = Task.assignee_id == actor.id
    offered = Task.group_name.in_(actor.group_names) & Task.assignee_id.is_(None)
    query = (select(Task).join(Task.instance).join(ProcessInstance.version).join(ProcessVersion.definition)
             .options(contains_eager(Task.instance).contains_eager(ProcessInstance.version)
                      .contains_eager(ProcessVersion.definition), selectinload(Task.assignee))
             .where(Task.state == "ready", Task.kind == "user", or_(mine, offered))
             .order_by(Task.due_at.is_(None), Task.due_at, Task.id))
    return db.paginate(query, page=page, per_page=per_page, error_out=False)


def deep_page(open_tasks: int) -> int:
    """The page read by number for the deep-page rows: 2000, or the last but one qa has with fewer tasks (--quick)."""
    return max(1, min(2000, open_tasks * _qa_sees() // 100 // 20 - 1))


def _requests(rare_lot: str, deep: str, page: int) -> list[tuple[str, str, str, bool]]:
    """(key, label, path, part of the goal); `deep` is page `page`'s next cursor (where page `page` + 1 starts)."""
    return [
        ("api_first", "API first page", "/api/v1/tasks", True),
        ("api_deep_cursor", f"API page {page + 1} by cursor (after=)", f"/api/v1/tasks?after={deep}", True),
        ("api_deep_number", f"API page {page} by number (page=, OFFSET)", f"/api/v1/tasks?page={page}", False),
        ("html_first", "HTML first page", "/", True),
        ("html_deep_cursor", f"HTML page {page + 1} by cursor (Next link)", f"/?after={deep}", True),
        ("html_deep_number", f"HTML page {page} by number", f"/?page={page}", False),
        ("api_search_lot", f"API search: a lot number (1 title: {rare_lot})", f"/api/v1/tasks?q={rare_lot}", False),
        ("api_search_word", "API search: a word 1 title in 8 has (Burr)", "/api/v1/tasks?q=Burr", False),
        ("api_search_task", "API search: a task name (Root-cause)", "/api/v1/tasks?q=Root-cause", False),
        ("api_search_none", "API search: no match", "/api/v1/tasks?q=zzz-no-match", False),
        ("html_search_lot", "HTML search: a lot number", f"/?q={rare_lot}", False),
        ("api_filter_process", "API filter: procedure (recall, 1 in 5)", "/api/v1/tasks?process=recall", False),
        ("api_filter_overdue", "API filter: overdue", "/api/v1/tasks?overdue=true", False),
    ]


def run_backend(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    from sqlalchemy import select

    from app.extensions import db
    from app.models import Task
    from app.services import demo, users
    from app.services.workflow import inbox

    marker = f"inbox v{SEED_VERSION} open={args.open}"
    name = "qualiflow_bench_inbox"
    config = {"RATELIMIT_ENABLED": False}
    with bench_database(backend, name, marker, lambda: seed(args.open), fresh=args.fresh, pg_url=args.pg_url,
                        config=config) as app:
        with app.app_context():
            token = users.issue_token("qa")
            qa_id = users.get_by_username("qa").id
            # Its lot number is searched for: an instance about 7/9 in whose task qa's group is offered.
            rare_instance = db.session.scalar(select(Task.instance_id).where(
                Task.state == "ready", Task.group_name == "qa", Task.assignee_id.is_(None),
                Task.instance_id >= args.open * 7 // 9).order_by(Task.instance_id).limit(1))
            db.session.remove()
        client = app.test_client()
        answer = client.post("/login", data={"username": "qa", "password": demo.DEMO_PASSWORD})
        if answer.status_code != 302:
            raise BenchError(f"{backend}: sign-in answered {answer.status_code}")
        headers = {"Authorization": f"Bearer {token}"}
        rare_lot = _lot(rare_instance)

        def get(path: str) -> Any:
            response = client.get(path, headers=headers if path.startswith("/api/") else {})
            if response.status_code != 200:
                raise BenchError(f"{backend}: GET {path} answered {response.status_code}: "
                                 f"{response.get_data(as_text=True)[:300]}")
            return response

        first = get("/api/v1/tasks").get_json()
        found = get(f"/api/v1/tasks?q={rare_lot}").get_json()
        if args.open // 2 > inbox.COUNT_CAP and (first["total"], first["total_exact"]) != (inbox.COUNT_CAP, False):
            raise BenchError(f"{backend}: qa's inbox should count '10,000+', got {first['total']}")
        if not any(item["instance_id"] == rare_instance for item in found["items"]):
            raise BenchError(f"{backend}: the search for {rare_lot} did not find instance {rare_instance}")
        # The cursor a client holds on page 2000: its next_cursor. Page 2001 by cursor is then checked against
        # page 2001 by number (the same tasks while nothing changes).
        page = deep_page(args.open)
        deep = get(f"/api/v1/tasks?page={page}").get_json()["next_cursor"]
        if not deep:
            raise BenchError(f"{backend}: page {page} has no next page")
        by_number = [item["id"] for item in get(f"/api/v1/tasks?page={page + 1}").get_json()["items"]]
        if [item["id"] for item in get(f"/api/v1/tasks?after={deep}").get_json()["items"]] != by_number:
            raise BenchError(f"{backend}: page {page + 1} by cursor is not page {page + 1} by number")
        results = []
        for key, label, path, goal in _requests(rare_lot, deep, page):
            figures = timed(lambda path=path: get(path), args.repeats)
            status = ("PASS" if figures["p95_ms"] < GOAL_P95_MS else "MISS") if goal else ""
            results.append({"key": key, "request": label, "path": path, **figures, "goal": status})
        plans = _plans(app, get, rare_lot, deep, page) if args.plans else []
        before = _before(app, qa_id, args, page) if args.before else None
    return {"backend": backend, "open_tasks": args.open, "qa_sees": _qa_sees(), "deep_page": page,
            "requests": results, "before": before, "plans": plans}


def _qa_sees() -> int:
    return round(sum(share for share, group, assignee in VISIBILITY[:3]) * 100)


def _before(app, qa_id: int, args: argparse.Namespace, deep: int) -> list[dict[str, Any]]:
    """The old and the new inbox query at the service level, same harness: a fresh session per call."""
    from app.extensions import db
    from app.models import User
    from app.services.workflow import inbox

    def call(function, page: int):
        def once():
            with app.app_context():
                function(db.session.get(User, qa_id), page)
                db.session.remove()
        return once

    def new(actor, page):
        return inbox.inbox(actor, inbox.InboxFilter(), page=page)

    rows = []
    for page, repeats in ((1, args.before_repeats), (deep, args.before_repeats)):
        progress(f"  before/after at the service level, page {page}")
        old = timed(call(old_inbox, page), repeats, warmup=1)
        ours = timed(call(new, page), max(repeats, 10), warmup=1)
        rows.append({"page": page, "before": old, "after": ours,
                     "speedup_p50": round(old["p50_ms"] / max(ours["p50_ms"], 0.01), 1)})
    return rows


def _plans(app, get, rare_lot: str, deep: str, page: int) -> list[dict[str, Any]]:
    from app.extensions import db

    plans = []
    with app.app_context():
        engine = db.engine
    for label, path in (("first page", "/api/v1/tasks"), (f"page {page + 1} by cursor", f"/api/v1/tasks?after={deep}"),
                        (f"page {page} by number", f"/api/v1/tasks?page={page}"),
                        ("search for a lot number", f"/api/v1/tasks?q={rare_lot}")):
        with captured_sql(engine) as statements:
            get(path)
        for statement, parameters in statements:
            if not statement.lstrip().upper().startswith("SELECT") or not any(
                    word in statement for word in ("FROM tasks", "process_instances_fts", "FROM process_instances")):
                continue
            plans.append({"request": label, "sql": " ".join(statement.split())[:400],
                          "plan": explain(engine, statement, parameters)})
    return plans


def run(args: argparse.Namespace) -> dict[str, Any]:
    backends = [] if args.skip_sqlite else ["sqlite"]
    if args.postgres:
        if postgres_answers(args.pg_url):
            backends.append("postgresql")
        else:
            progress("PostgreSQL does not answer: SQLite only")
    load_before = os.getloadavg()[0]
    runs = [run_backend(backend, args) for backend in backends]
    return {"runs": runs, "goal_p95_ms": GOAL_P95_MS,
            "environment": {**environment(backends),
                            "load_average_1m": f"{load_before:.2f} -> {os.getloadavg()[0]:.2f}"}}


def print_table(result: dict[str, Any]) -> None:
    for backend in result["runs"]:
        print(f"\n## {backend['backend']}: {backend['open_tasks']:,} open tasks, qa sees {backend['qa_sees']}% "
              f"(p95 goal < {result['goal_p95_ms']:.0f} ms where marked)")
        print(f"{'request':<52} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'CPU p50':>8}  goal")
        for row in backend["requests"]:
            print(f"{row['request']:<52} {row['p50_ms']:>8.1f} {row['p95_ms']:>8.1f} {row['max_ms']:>8.1f} "
                  f"{row['cpu_p50_ms']:>8.1f}  {row['goal']}")
        rows = {row["key"]: row for row in backend["requests"]}
        for side in ("api", "html"):
            first, deep = rows[f"{side}_first"], rows[f"{side}_deep_cursor"]
            number = rows[f"{side}_deep_number"]
            print(f"{side.upper()}: deep page by cursor / first page, p50 {deep['p50_ms'] / first['p50_ms']:.2f}x "
                  f"(by number: {number['p50_ms'] / first['p50_ms']:.2f}x)")
        if backend["before"]:
            print("\nservice level, old query (join + exact COUNT) vs now:")
            for row in backend["before"]:
                print(f"  page {row['page']:>4}: before p50 {row['before']['p50_ms']:.1f} / p95 "
                      f"{row['before']['p95_ms']:.1f} ms (CPU {row['before']['cpu_p50_ms']:.1f}), now p50 "
                      f"{row['after']['p50_ms']:.1f} / p95 {row['after']['p95_ms']:.1f} ms (CPU "
                      f"{row['after']['cpu_p50_ms']:.1f}): {row['speedup_p50']}x")
        for plan in backend["plans"]:
            print(f"\n[{backend['backend']}, {plan['request']}] {plan['sql']}")
            for line in plan["plan"]:
                print(f"    {line}")
    env = result["environment"]
    print(f"\nPython {env['python']}, SQLite {env['sqlite']}, {env['machine']}, {env['cpus']} CPUs, "
          f"load {env['load_average_1m']}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--open", type=int, default=100_000, help="open tasks (and instances) to seed")
    parser.add_argument("--repeats", type=int, default=30, help="timed requests per row")
    parser.add_argument("--postgres", action="store_true", help="also on PostgreSQL (127.0.0.1:5432)")
    parser.add_argument("--skip-sqlite", action="store_true", help="with --postgres: PostgreSQL only")
    parser.add_argument("--pg-url", default=os.environ.get("QUALIFLOW_BENCH_PG_URL", DEFAULT_PG_URL))
    parser.add_argument("--fresh", action="store_true", help="seed again even if the kept database matches")
    parser.add_argument("--no-before", dest="before", action="store_false",
                        help="skip the old query (its page 2000 takes seconds per call)")
    parser.add_argument("--before-repeats", type=int, default=3)
    parser.add_argument("--plans", action="store_true", help="print the EXPLAIN plans of the inbox statements")
    parser.add_argument("--quick", action="store_true", help="smoke: 6,000 open tasks, 5 repeats")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.quick:
        args.open, args.repeats = 6_000, 5
    if args.open < 1000:
        parser.error("--open must be at least 1,000")
    return args


def main(argv: list[str] | None = None) -> int:
    from bench.engine import bench_main

    return bench_main(parse_args, run, print_table, argv)


if __name__ == "__main__":
    sys.exit(main())

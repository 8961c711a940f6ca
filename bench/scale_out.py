"""Scale-out on PostgreSQL: gunicorn web workers and separate schedulers, driven over the API by client threads.

    .venv/bin/python bench/scale_out.py [--workers 3] [--schedulers 2] [--completions 1000] [--clients 20]

Creates the database `qualiflow_scale` on 127.0.0.1:5432 (user postgres; --database-url to change), migrates it,
seeds the demo people and deploys a small procedure: start -> step A -> a 1 s timer -> step B -> end. It starts
`gunicorn wsgi:app` with N workers and M `flask scheduler run` processes (1 s ticks), then each client thread starts
instances with an API token and completes their two steps, step B once a scheduler fired the timer. Afterwards:
every instance completed with its engine state completed and its task rows completed (the task table agrees with
the engine), `flask instances check` finds nothing stalled, exactly one `task.completed` audit row per completion
(nothing lost or done twice) and exactly one `timer.fired` per instance (each timer fired once, by one of the
schedulers). Prints the throughput and the latency percentiles of the completions; exits 1 if a check failed.
tests/integration/test_scale_out.py runs a small version of it.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as a script: the project is the import root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.cluster import (  # noqa: E402 - after the path; re-exported for tests/integration/test_scale_out.py
    ADMIN_URL,
    STEP_DATA,
    Client,
    Deployment,
    create_database,
    drop_database,
    percentile,
    postgres_answers,
    sequence_diagram,
    timer_event,
    user_task,
)

__all__ = ["create_database", "drop_database", "postgres_answers", "run"]

PROCESS = "scale_step"
BPMN = sequence_diagram(PROCESS, "Scale: step, wait, step", [
    ("step_a", user_task("step_a", "Step A")), ("wait", timer_event("wait", "PT1S")),
    ("step_b", user_task("step_b", "Step B"))])


@dataclass
class Drive:
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    instances: list[int] = field(default_factory=list)
    seconds: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _ready_task(client: Client, instance_id: int, element_id: str, timeout: float = 60) -> int | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, body = client.call("GET", f"/api/v1/instances/{instance_id}")
        if status == 200:
            for task in body["tasks"]:
                if task["element_id"] == element_id and task["state"] in ("ready", "claimed"):
                    return task["id"]
        time.sleep(0.2)
    return None


def drive(base_url: str, token: str, completions: int, clients: int) -> Drive:
    """Each client thread starts its share of instances and completes step A of each, then step B of each (its
    timer has fired meanwhile); two completions per instance."""
    result = Drive()
    per_client = [completions // 2 // clients + (1 if i < completions // 2 % clients else 0) for i in range(clients)]

    def complete(client: Client, instance_id: int, element_id: str) -> None:
        task_id = _ready_task(client, instance_id, element_id)
        if task_id is None:
            result.errors.append(f"instance {instance_id}: {element_id} never became ready")
            return
        began = time.perf_counter()
        status, body = client.call("POST", f"/api/v1/tasks/{task_id}/complete", {"data": STEP_DATA})
        elapsed = time.perf_counter() - began
        with result.lock:
            if status == 200:
                result.latencies.append(elapsed)
            else:
                result.errors.append(f"instance {instance_id} {element_id}: HTTP {status} {body}")

    def work(number: int) -> None:
        client = Client(base_url, token)
        mine = []
        for i in range(per_client[number]):
            status, body = client.call("POST", "/api/v1/instances",
                                       {"process": PROCESS, "title": f"Scale {number}-{i}", "data": {}})
            if status != 201:
                result.errors.append(f"start: HTTP {status} {body}")
                continue
            mine.append(body["id"])
            complete(client, body["id"], "step_a")
        for instance_id in mine:
            complete(client, instance_id, "step_b")
        with result.lock:
            result.instances += mine

    threads = [threading.Thread(target=work, args=(n,)) for n in range(clients)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.seconds = time.perf_counter() - began
    return result


def check(database_url: str, instance_ids: list[int]) -> list[str]:
    """Every instance completed in the engine and in the task table, one audit row per completion, one timer each."""
    from sqlalchemy import func, select

    from app import create_app
    from app.engine import runner
    from app.extensions import db
    from app.models import AuditEvent, ProcessInstance, Task
    from app.services.workflow.instances import engine_context

    problems = []
    app = create_app("testing", {"SQLALCHEMY_DATABASE_URI": database_url})
    with app.app_context():
        completed = Counter(dict(db.session.execute(
            select(AuditEvent.instance_id, func.count()).where(AuditEvent.action == "task.completed")
            .group_by(AuditEvent.instance_id)).all()))
        fired = Counter(dict(db.session.execute(
            select(AuditEvent.instance_id, func.count()).where(AuditEvent.action == "timer.fired")
            .group_by(AuditEvent.instance_id)).all()))
        context = engine_context(None)
        for instance_id in instance_ids:
            instance = db.session.get(ProcessInstance, instance_id)
            tasks = db.session.scalars(select(Task).where(Task.instance_id == instance_id)).all()
            states = sorted((t.element_id, t.state) for t in tasks)
            workflow = runner._load(instance, context)
            if instance.status != "completed" or not workflow.is_completed():
                problems.append(f"instance {instance_id}: {instance.status}, engine completed "
                                f"{workflow.is_completed()}")
            if states != [("step_a", "completed"), ("step_b", "completed")]:
                problems.append(f"instance {instance_id}: task rows {states}")
            if completed[instance_id] != 2:
                problems.append(f"instance {instance_id}: {completed[instance_id]} task.completed audit rows, not 2")
            if fired[instance_id] != 1:
                problems.append(f"instance {instance_id}: timer fired {fired[instance_id]} times, not once")
            db.session.expunge_all()
        incidents = db.session.scalar(select(func.count()).select_from(ProcessInstance)
                                      .where(ProcessInstance.status == "incident"))
        if incidents:
            problems.append(f"{incidents} instance(s) in incident")
        db.session.remove()
        db.engine.dispose()
    return problems


def run(workers: int, schedulers: int, completions: int, clients: int, database_url: str,
        workdir: Path) -> dict:
    deployment = Deployment(database_url, workers, schedulers, workdir)
    token = deployment.prepare(BPMN, f"{PROCESS}.bpmn")
    deployment.start()
    try:
        deployment.wait_ready()
        driven = drive(deployment.base_url, token, completions, clients)
        time.sleep(2)  # let the schedulers finish a tick in flight
        stall_check = deployment.flask("instances", "check")
    finally:
        deployment.stop()
    problems = list(driven.errors)
    if stall_check.returncode or " 0 stalled" not in stall_check.stdout:
        problems.append(f"flask instances check: {stall_check.stdout.strip()} {stall_check.stderr.strip()[-500:]}")
    problems += check(database_url, driven.instances)
    lat = driven.latencies
    return {"workers": workers, "schedulers": schedulers, "clients": clients, "instances": len(driven.instances),
            "completions": len(lat), "seconds": round(driven.seconds, 2),
            "throughput_per_s": round(len(lat) / driven.seconds, 1) if driven.seconds else 0.0,
            "p50_ms": round(percentile(lat, 0.5) * 1000, 1), "p95_ms": round(percentile(lat, 0.95) * 1000, 1),
            "mean_ms": round(statistics.fmean(lat) * 1000, 1) if lat else 0.0,
            "stall_check": stall_check.stdout.strip(), "problems": problems}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--schedulers", type=int, default=2)
    parser.add_argument("--completions", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--database", default="qualiflow_scale")
    parser.add_argument("--admin-url", default=ADMIN_URL, help="a database to connect to for CREATE DATABASE")
    args = parser.parse_args()
    if not postgres_answers():
        print("PostgreSQL does not answer on 127.0.0.1:5432", file=sys.stderr)
        return 2
    url = create_database(args.database, args.admin_url)
    report = run(args.workers, args.schedulers, args.completions, args.clients, url,
                 Path(os.environ.get("QUALIFLOW_BENCH_DIR", "/tmp/qualiflow-scale-out")))
    problems = report.pop("problems")
    print(json.dumps(report, indent=2))
    for problem in problems[:50]:
        print("PROBLEM:", problem)
    print(f"{'FAILED' if problems else 'OK'}: {report['completions']} completions by {report['clients']} clients on "
          f"{report['workers']} gunicorn workers and {report['schedulers']} schedulers, {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

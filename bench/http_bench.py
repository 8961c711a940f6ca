#!/usr/bin/env python3
"""HTTP benchmark of completing a task: `POST /api/v1/tasks/<id>/complete` through a real server.

    python bench/http_bench.py [--clients 1] [--instances 30] [--workers 1] [--postgres] [--profile] [--json]

A database of the run's own (SQLite file in a temporary folder, or with --postgres a PostgreSQL database
`qualiflow_bench_http` on the server of QUALIFLOW_BENCH_ADMIN_URL), migrated with `flask db upgrade`, the demo people
and one procedure: start -> a parallel split into 10 user tasks (each with the shipped one-field form) -> join ->
end, so all ten tasks of an instance are ready at its start and the timed phase is completions alone. The server
is `gunicorn wsgi:app` with deploy/gunicorn.conf.py (--workers, 1 thread each, no access log); each of --clients
threads starts its share of --instances instances (untimed) and then completes their tasks one request at a time
with a bearer token (a new connection per request, as urllib does).

Prints the completions' p50/p95/p99 and throughput as the clients saw them and the server's CPU per completion (the
workers' user+system time over the timed phase, from /proc, divided by the completions); each completion must
answer 200 and every instance must end completed. --profile instead runs the same completions in this process
through Flask's test client under cProfile (no server) and prints where the time goes.

Goal (issue 21): p95 < 10 ms at low load (one client); server CPU <= 5 ms per completion. A miss prints MISS and
still exits 0; a failed request exits 1.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.cluster import (  # noqa: E402 - needs the project on the path
    ADMIN_URL,
    STEP_DATA,
    Client,
    Deployment,
    create_database,
    drop_database,
    percentile,
    postgres_answers,
    user_task,
)

GOAL_P95_MS, GOAL_CPU_MS = 10.0, 5.0
TASKS = 10
PROCESS = "bench_http"


def parallel_diagram(tasks: int = TASKS) -> str:
    """start -> parallel split -> `tasks` user tasks -> join -> end, in the qa lane."""
    ids = [f"t{n}" for n in range(1, tasks + 1)]
    nodes = ["start", "split", *ids, "join", "end"]
    flows = ['<bpmn:sequenceFlow id="f_start" sourceRef="start" targetRef="split"/>',
             '<bpmn:sequenceFlow id="f_end" sourceRef="join" targetRef="end"/>']
    for task_id in ids:
        flows += [f'<bpmn:sequenceFlow id="f_in_{task_id}" sourceRef="split" targetRef="{task_id}"/>',
                  f'<bpmn:sequenceFlow id="f_out_{task_id}" sourceRef="{task_id}" targetRef="join"/>']
    refs = "".join(f"<bpmn:flowNodeRef>{node}</bpmn:flowNodeRef>" for node in nodes)
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" id="{PROCESS}_defs"
    targetNamespace="https://qualiflow.example/bench">
  <bpmn:process id="{PROCESS}" name="Bench: ten tasks at once" isExecutable="true">
    <bpmn:laneSet id="lanes"><bpmn:lane id="lane_qa" name="qa">{refs}</bpmn:lane></bpmn:laneSet>
    <bpmn:startEvent id="start"/>
    <bpmn:parallelGateway id="split"/>
    {"".join(user_task(task_id, f"Step {task_id}") for task_id in ids)}
    <bpmn:parallelGateway id="join"/>
    <bpmn:endEvent id="end"/>
    {"".join(flows)}
  </bpmn:process>
</bpmn:definitions>"""


def _cpu_seconds(pids: list[int]) -> float:
    """User + system time of these processes so far (Linux /proc)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
    return total / os.sysconf("SC_CLK_TCK")


def _start_instances(client: Client, count: int) -> list[list[int]]:
    """Start count instances; return each one's ready task ids."""
    found = []
    for number in range(count):
        status, body = client.call("POST", "/api/v1/instances", {"process": PROCESS, "title": f"HTTP bench {number}"})
        if status != 201:
            raise RuntimeError(f"starting an instance answered {status}: {body}")
        found.append([task["id"] for task in body["tasks"] if task["state"] == "ready"])
        if len(found[-1]) != TASKS:
            raise RuntimeError(f"an instance started with {len(found[-1])} ready tasks, not {TASKS}")
    return found


def run_server(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="qualiflow-bench-http-"))
    if args.postgres:
        url = create_database("qualiflow_bench_http", args.admin_url)
    else:
        url = f"sqlite:///{workdir / 'http.sqlite'}"
    deployment = Deployment(url, workers=args.workers, schedulers=0, workdir=workdir,
                            extra_env={"QUALIFLOW_WEB_THREADS": "1"})
    try:
        token = deployment.prepare(parallel_diagram(), f"{PROCESS}.bpmn")
        deployment.start()
        deployment.wait_ready()
        per_client = [args.instances // args.clients + (n < args.instances % args.clients)
                      for n in range(args.clients)]
        clients = [Client(deployment.base_url, token) for _ in range(args.clients)]
        work = [sum(_start_instances(client, count), []) for client, count in zip(clients, per_client, strict=True)]
        for client, tasks in zip(clients, work, strict=True):  # warm-up: each worker's first requests are slower
            for task_id in tasks[:2]:
                client.call("POST", f"/api/v1/tasks/{task_id}/complete", {"data": STEP_DATA})
            del tasks[:2]
        latencies: list[float] = []
        errors: list[str] = []
        lock = threading.Lock()

        def complete_all(client: Client, tasks: list[int]) -> None:
            for task_id in tasks:
                began = time.perf_counter()
                status, body = client.call("POST", f"/api/v1/tasks/{task_id}/complete", {"data": STEP_DATA})
                elapsed = time.perf_counter() - began
                with lock:
                    latencies.append(elapsed)
                    if status != 200:
                        errors.append(f"task {task_id}: {status} {body}")

        workers = deployment.web_workers()
        load_before = os.getloadavg()[0]
        cpu_before, began = _cpu_seconds(workers), time.perf_counter()
        threads = [threading.Thread(target=complete_all, args=pair) for pair in zip(clients, work, strict=True)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall, cpu = time.perf_counter() - began, _cpu_seconds(workers) - cpu_before
        load_after = os.getloadavg()[0]
        if errors:
            raise RuntimeError(f"{len(errors)} completions failed, first: {errors[0]}")
        status, body = clients[0].call("GET", "/api/v1/tasks?per_page=1")
        if status != 200 or body["total"] != 0:
            raise RuntimeError(f"tasks left open after the run: {body.get('total')}")
    finally:
        deployment.stop()
        if args.postgres:
            drop_database("qualiflow_bench_http", args.admin_url)
    count = len(latencies)
    p95 = percentile(latencies, 0.95) * 1000
    cpu_ms = cpu / count * 1000
    return {
        "backend": "postgresql" if args.postgres else "sqlite", "clients": args.clients, "workers": args.workers,
        "completions": count, "throughput_per_s": round(count / wall, 1),
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 1), "p95_ms": round(p95, 1),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 1), "max_ms": round(max(latencies) * 1000, 1),
        "server_cpu_per_completion_ms": round(cpu_ms, 1),
        "goal_p95": f"< {GOAL_P95_MS} ms: {'PASS' if p95 < GOAL_P95_MS else 'MISS'}",
        "goal_cpu": f"<= {GOAL_CPU_MS} ms: {'PASS' if cpu_ms <= GOAL_CPU_MS else 'MISS'}",
        "load_average_1m": f"{load_before:.2f} -> {load_after:.2f}",
    }


def run_profile(args: argparse.Namespace) -> str:
    """The same completions in this process, through Flask's test client, under cProfile."""
    from app import create_app, freeze_start_up_objects
    from app.extensions import db
    from app.models.audit import install_append_only
    from app.services import demo, users
    from app.services.workflow import processes

    workdir = Path(tempfile.mkdtemp(prefix="qualiflow-bench-http-"))
    app = create_app("testing", {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{workdir / 'http.sqlite'}", "SMTP_PORT": 1,
                                 "RATELIMIT_ENABLED": False, "AUDIT_CHECKPOINT_DIR": workdir / "checkpoints"})
    with app.app_context():
        db.create_all()
        with db.engine.begin() as connection:
            install_append_only(connection)  # as bench/scale.py: the audit head row and the append-only guard
        demo.seed_people()
        processes.deploy_file(parallel_diagram().encode(), f"{PROCESS}.bpmn", None, "bench", release="bench")
        token = users.issue_token("qa")
        db.session.remove()
    freeze_start_up_objects()  # as wsgi.py does in a web worker
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    tasks = []
    for number in range(args.instances):
        body = client.post("/api/v1/instances", json={"process": PROCESS, "title": f"HTTP bench {number}"},
                           headers=headers).get_json()
        tasks += [task["id"] for task in body["tasks"] if task["state"] == "ready"]
    for task_id in tasks[:5]:
        client.post(f"/api/v1/tasks/{task_id}/complete", json={"data": STEP_DATA}, headers=headers)
    profile = cProfile.Profile()
    began_cpu = time.process_time()
    profile.enable()
    for task_id in tasks[5:]:
        answer = client.post(f"/api/v1/tasks/{task_id}/complete", json={"data": STEP_DATA}, headers=headers)
        if answer.status_code != 200:
            raise RuntimeError(f"task {task_id}: {answer.status_code} {answer.get_data(as_text=True)[:300]}")
    profile.disable()
    cpu = (time.process_time() - began_cpu) / (len(tasks) - 5) * 1000
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    stats.sort_stats(args.profile_sort).print_stats(args.profile_lines)
    for name in args.profile_callees:
        stats.print_callees(name)
    return f"{len(tasks) - 5} completions in process, CPU {cpu:.1f} ms each under the profiler\n{out.getvalue()}"


def print_table(result: dict[str, Any]) -> None:
    print(f"\n## complete a task through gunicorn ({result['backend']}, {result['workers']} worker(s), "
          f"{result['clients']} client(s), {result['completions']} completions)")
    print(f"p50 {result['p50_ms']} ms, p95 {result['p95_ms']} ms, p99 {result['p99_ms']} ms, max "
          f"{result['max_ms']} ms, {result['throughput_per_s']}/s   p95 goal {result['goal_p95']}")
    print(f"server CPU per completion {result['server_cpu_per_completion_ms']} ms   goal {result['goal_cpu']}")
    print(f"load {result['load_average_1m']}, {os.cpu_count()} CPUs")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--instances", type=int, default=30, help="instances of 10 tasks each")
    parser.add_argument("--workers", type=int, default=1, help="gunicorn worker processes (1 thread each)")
    parser.add_argument("--postgres", action="store_true", help="a PostgreSQL database instead of SQLite")
    parser.add_argument("--admin-url", default=ADMIN_URL)
    parser.add_argument("--profile", action="store_true", help="cProfile the completions in process instead")
    parser.add_argument("--profile-sort", default="cumulative")
    parser.add_argument("--profile-lines", type=int, default=60)
    parser.add_argument("--profile-callees", action="append", default=[], help="also print a function's callees")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.clients < 1 or args.instances < args.clients:
        parser.error("--instances must be at least --clients, which must be at least 1")
    if args.postgres and not postgres_answers():
        parser.error("PostgreSQL does not answer at 127.0.0.1:5432")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.profile:
        print(run_profile(args))
        return 0
    try:
        result = run_server(args)
    except RuntimeError as err:
        print(f"FAILED: {err}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result))
    else:
        print_table(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())

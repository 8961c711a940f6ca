"""Load run on PostgreSQL with locust: 50 users for 5 minutes against gunicorn (4 workers) and one scheduler.

    .venv/bin/python bench/load.py [--users 50] [--minutes 5] [--workers 4] [--schedulers 1] [--spawn-rate 5]
                                   [--database-url URL] [--json]

Without --database-url it creates (drops first) the database `qualiflow_load` beside --admin-url's (by default the
server's `postgres` database on 127.0.0.1:5432), migrates it, loads the demo (people, the shipped procedures, the
demo plant's lots and shipments) and deploys a two-step bench procedure; it refuses to run when PostgreSQL does not
answer. Then it starts `gunicorn wsgi:app` (deploy/gunicorn.conf.py, rate limits on) and `flask scheduler run`, and
runs locust headless with the users of bench/load_locustfile.py: inbox reads through the API and the HTML page,
task completion, forward/backward trace and starting and advancing a recall (trigger, assessment, e-signature).

Prints per request type the count, failures, requests per second and the 50th/95th/99th percentiles, the total
throughput, the machine's load average during the run (sampled every 5 s) and, afterwards, what
`flask instances check` and `flask audit verify` say and how many server tracebacks the processes logged.
Exits 1 when any request failed (any answer but the expected one: there are no claim races in this mix, every user
works on its own instances), a server error was logged or a check failed.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

if __package__ in (None, ""):  # run as a script: the project is the import root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.cluster import (  # noqa: E402 - after the path
    ADMIN_URL,
    BIN,
    ROOT,
    Deployment,
    create_database,
    require_postgres,
    sequence_diagram,
    user_task,
)

PROCESS = "load_step"
BPMN = sequence_diagram(PROCESS, "Load: step, step", [("step_a", user_task("step_a", "Step A")),
                                                      ("step_b", user_task("step_b", "Step B"))])


def _sample_load(samples: list[float], stop: threading.Event) -> None:
    while not stop.wait(5):
        samples.append(os.getloadavg()[0])


def _ms(value: str) -> float:
    return round(float(value), 1) if value not in ("", "N/A") else 0.0


def read_stats(prefix: Path) -> tuple[list[dict], dict]:
    """Locust's --csv statistics: one row per request type and the aggregated one."""
    rows, total = [], {}
    with open(f"{prefix}_stats.csv", newline="") as file:
        for row in csv.DictReader(file):
            item = {"name": row["Name"], "method": row["Type"], "requests": int(row["Request Count"]),
                    "failures": int(row["Failure Count"]), "rps": round(float(row["Requests/s"]), 2),
                    "p50_ms": _ms(row["50%"]), "p95_ms": _ms(row["95%"]), "p99_ms": _ms(row["99%"]),
                    "max_ms": _ms(row["100%"])}
            if row["Name"] == "Aggregated":
                total = item
            else:
                rows.append(item)
    return rows, total


def read_failures(prefix: Path) -> list[str]:
    path = Path(f"{prefix}_failures.csv")
    if not path.exists():
        return []
    with path.open(newline="") as file:
        return [f"{row['Method']} {row['Name']}: {row['Occurrences']} x {row['Error'][:300]}"
                for row in csv.DictReader(file)]


def run(*, users: int, minutes: float, workers: int, schedulers: int, spawn_rate: float, database_url: str,
        workdir: Path, log=print) -> dict:
    deployment = Deployment(database_url, workers, schedulers, workdir, extra_env={"QUALIFLOW_RATELIMIT": "1"})
    log("preparing the database (migrations, demo data, the bench procedure)")
    token = deployment.prepare(BPMN, f"{PROCESS}.bpmn")
    demo_load = deployment.flask("demo", "load")
    if demo_load.returncode:
        raise RuntimeError(f"flask demo load failed:\n{demo_load.stderr[-3000:]}")
    password = deployment.python("from app.services.demo import DEMO_PASSWORD\nprint(DEMO_PASSWORD)").strip()
    prefix = workdir / "locust"
    samples: list[float] = []
    stop = threading.Event()
    deployment.start()
    try:
        deployment.wait_ready()
        log(f"running locust: {users} users for {minutes} min on {workers} workers and {schedulers} scheduler(s)")
        sampler = threading.Thread(target=_sample_load, args=(samples, stop), daemon=True)
        sampler.start()
        load_before = os.getloadavg()
        locust = subprocess.run(
            [str(BIN / "locust"), "-f", str(ROOT / "bench" / "load_locustfile.py"), "--headless", "--users", str(users),
             "--spawn-rate", str(spawn_rate), "--run-time", f"{int(minutes * 60)}s", "--host", deployment.base_url,
             "--csv", str(prefix), "--stop-timeout", "60", "--only-summary", "--loglevel", "WARNING"],
            cwd=ROOT, env={**os.environ, "LOAD_TOKEN": token, "LOAD_PROCESS": PROCESS, "LOAD_PASSWORD": password},
            capture_output=True, text=True, timeout=minutes * 60 + 600)
        stop.set()
        (workdir / "locust.log").write_text(locust.stdout + locust.stderr)
        stall = deployment.flask("instances", "check")
        verify = deployment.flask("audit", "verify")
    finally:
        stop.set()
        deployment.stop()
    rows, total = read_stats(prefix)
    failures = read_failures(prefix)
    log_text = (workdir / "processes.log").read_text(errors="replace")
    problems = list(failures)
    tracebacks = log_text.count("Traceback (most recent call last)")
    if tracebacks:
        problems.append(f"{tracebacks} server traceback(s) in {workdir / 'processes.log'}")
    if locust.returncode not in (0, 1):  # 1: some request failed, listed above
        problems.append(f"locust exited {locust.returncode}: {locust.stderr[-2000:]}")
    if stall.returncode or " 0 stalled" not in stall.stdout:
        problems.append(f"flask instances check: {stall.stdout.strip()} {stall.stderr.strip()[-1000:]}")
    if verify.returncode or not verify.stdout.startswith("OK"):
        problems.append(f"flask audit verify: {verify.stdout.strip()} {verify.stderr.strip()[-1000:]}")
    return {"users": users, "minutes": minutes, "workers": workers, "schedulers": schedulers,
            "cpus": os.cpu_count(), "requests": rows, "total": total,
            "load_average": {"before": round(load_before[0], 2),
                             "during_min": round(min(samples), 2) if samples else None,
                             "during_mean": round(sum(samples) / len(samples), 2) if samples else None,
                             "during_max": round(max(samples), 2) if samples else None},
            "instances_check": stall.stdout.strip(), "audit_verify": verify.stdout.strip()[:200],
            "server_tracebacks": tracebacks, "problems": problems}


def table(report: dict) -> str:
    lines = [f"{'request':58s} {'count':>7s} {'fail':>5s} {'req/s':>7s} {'p50 ms':>8s} {'p95 ms':>8s} {'p99 ms':>8s}"]
    for row in [*sorted(report["requests"], key=lambda r: -r["requests"]), report["total"]]:
        name = row["name"] if row["name"] != "Aggregated" else "all requests"
        lines.append(f"{name[:58]:58s} {row['requests']:7d} {row['failures']:5d} {row['rps']:7.2f} "
                     f"{row['p50_ms']:8.0f} {row['p95_ms']:8.0f} {row['p99_ms']:8.0f}")
    load = report["load_average"]
    lines += ["", f"{report['users']} users, {report['minutes']} min, {report['workers']} gunicorn workers, "
                  f"{report['schedulers']} scheduler(s), {report['cpus']} CPUs; 1-min load average before "
                  f"{load['before']}, during {load['during_min']} to {load['during_max']} (mean {load['during_mean']})",
              f"after: {report['instances_check']} | {report['audit_verify']}",
              f"server tracebacks: {report['server_tracebacks']}"]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--minutes", type=float, default=5)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--schedulers", type=int, default=1)
    parser.add_argument("--spawn-rate", type=float, default=5, help="users started per second")
    parser.add_argument("--database-url", help="an existing, empty PostgreSQL database to use (default: create one)")
    parser.add_argument("--database", default="qualiflow_load", help="the database to create")
    parser.add_argument("--admin-url", default=ADMIN_URL, help="a database to connect to for CREATE DATABASE")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args()
    require_postgres(args.database_url or args.admin_url)
    url = args.database_url or create_database(args.database, args.admin_url)
    workdir = Path(os.environ.get("QUALIFLOW_BENCH_DIR") or tempfile.mkdtemp(prefix="qualiflow-load."))
    report = run(users=args.users, minutes=args.minutes, workers=args.workers, schedulers=args.schedulers,
                 spawn_rate=args.spawn_rate, database_url=url, workdir=workdir,
                 log=(lambda *a: print(*a, file=sys.stderr)) if args.json else print)
    print(json.dumps(report, indent=2) if args.json else table(report))
    for problem in report["problems"][:50]:
        print("PROBLEM:", problem)
    print(f"{'FAILED' if report['problems'] else 'OK'}: {report['total'].get('requests', 0)} requests, "
          f"{report['total'].get('failures', 0)} failed; logs in {workdir}")
    return 1 if report["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())

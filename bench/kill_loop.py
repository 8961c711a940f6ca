"""kill -9 loop on PostgreSQL: gunicorn workers, their master and the schedulers are killed at random moments while
API clients complete tasks; after every restart the instances, documents and audit trail are checked.

    .venv/bin/python bench/kill_loop.py [--kills 200] [--workers 3] [--schedulers 2] [--clients 8]
                                        [--full-check-every 25] [--seed 1] [--database-url URL]

Without --database-url it creates (drops first) the database `qualiflow_kill_loop` beside --admin-url's (by default
the server's `postgres` database on 127.0.0.1:5432, user postgres), migrates it, seeds the demo people and deploys a
small procedure in qa's lane: step A (a user task) -> render a .docx evidence document (documents.render) -> a 1 s
timer -> step B -> end. It refuses to run, with a message, when the PostgreSQL server does not answer.

Each client thread keeps a few instances of its own open (titled by the client) and completes their ready tasks,
found through the inbox API, as fast as answers come. The loop kills (SIGKILL) a random target after a random pause:
a gunicorn worker (the master starts another), the gunicorn master (its workers leave once they notice; the loop
starts gunicorn again) or a scheduler (the loop starts another), and waits until everything serves again. Then:

- after every restart (quick check, one REPEATABLE READ snapshot): every instance that is not known final is
  loaded into the engine; its ready task rows are exactly the engine's ready user tasks, a running one waits on a
  ready task or a timer (the engine's own stall test `stalled_at`, the same as `flask instances check` uses) and
  its `next_timer_at` is the engine's, no timer is overdue by more than --late-seconds, no instance is in
  incident, an instance past the rendering step has exactly one evidence document whose bytes match its size
  and SHA-256; a completed instance has its two steps completed, one `timer.fired`, one document; every
  completion a client got 200 for is a completed task row (nothing lost), no task has two `task.completed` audit
  rows and no element of an instance was completed twice (nothing doubled);
- every --full-check-every kills and at the end also `flask instances check` (0 stalled) and `flask audit verify`
  (the hash chain, every document's bytes, every signature) in subprocesses, as an operator runs them.

At the end the clients stop starting instances and finish the open ones, and the final check requires every
instance completed. Prints a summary table (kills and restarts per target, restart times, completions answered,
outcomes unknown to the client because the connection died, completions committed whose answer was lost,
problems); exits 1 if any check failed. HTTP 5xx answers are problems too; a 409 for a task whose earlier
completion's answer was lost is expected and counted.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

if __package__ in (None, ""):  # run as a script: the project is the import root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.cluster import (  # noqa: E402 - after the path
    ADMIN_URL,
    STEP_DATA,
    Client,
    Deployment,
    create_database,
    percentile,
    render_task,
    require_postgres,
    sequence_diagram,
    timer_event,
    user_task,
)

PROCESS = "kill_loop"
DOCUMENT_KIND = "kill_loop_report"
STEPS = ("step_a", "step_b")
BPMN = sequence_diagram(PROCESS, "Kill loop: step, document, wait, step", [
    ("step_a", user_task("step_a", "Step A")), ("render", render_task("render", "capa_report", DOCUMENT_KIND)),
    ("wait", timer_event("wait", "PT1S")), ("step_b", user_task("step_b", "Step B"))])
TARGETS = {"worker": 0.5, "scheduler": 0.3, "master": 0.2}


@dataclass
class Ledger:
    """What the clients were told, to compare with what the database holds."""
    started: set[int] = field(default_factory=set)  # instances answered 201
    completed: set[int] = field(default_factory=set)  # task ids answered 200
    unknown: set[int] = field(default_factory=set)  # task ids whose completion got no answer (connection died)
    unknown_starts: int = 0
    conflicts_after_unknown: int = 0  # 409 "already completed" for a task whose earlier answer was lost
    conflicts: list[str] = field(default_factory=list)  # any other 409
    errors: list[str] = field(default_factory=list)  # 5xx and unexpected answers
    latencies: list[float] = field(default_factory=list)
    connection_errors: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def client_loop(number: int, base_url: str, token: str, ledger: Ledger, stop: threading.Event,
                draining: threading.Event, open_per_client: int, seed: int) -> None:
    """Keep open_per_client instances of this client open and complete their ready tasks until stopped; once
    draining, start no more and finish what is open. Anything unexpected is a problem, and the client goes on."""
    while not stop.is_set():
        try:
            _client_loop(number, base_url, token, ledger, stop, draining, open_per_client, seed)
        except Exception as err:  # noqa: BLE001 - reported, and the client keeps working
            with ledger.lock:
                ledger.errors.append(f"client {number}: {err.__class__.__name__}: {err}")


def _client_loop(number: int, base_url: str, token: str, ledger: Ledger, stop: threading.Event,
                 draining: threading.Event, open_per_client: int, seed: int) -> None:
    rng = random.Random(seed * 1000 + number)
    client = Client(base_url, token, timeout=60)
    prefix = f"kill loop client {number:02d} #"
    started = 0
    while not stop.is_set():
        try:
            query = f"process={PROCESS}&per_page=50&q={prefix.replace(' ', '+')}"
            status, page = client.call("GET", f"/api/v1/tasks?{query}")
        except OSError:
            with ledger.lock:
                ledger.connection_errors += 1
            time.sleep(0.1)
            continue
        if status != 200:
            with ledger.lock:
                ledger.errors.append(f"client {number}: inbox HTTP {status} {page}")
            time.sleep(0.2)
            continue
        items = [item for item in page["items"] if item["state"] == "ready"]
        if not draining.is_set() and len(items) < open_per_client:
            started += 1
            try:
                status, body = client.call("POST", "/api/v1/instances",
                                           {"process": PROCESS, "title": f"{prefix}{started}", "data": {}})
            except OSError:
                with ledger.lock:
                    ledger.unknown_starts += 1
                continue
            with ledger.lock:
                if status == 201:
                    ledger.started.add(body["id"])
                else:
                    ledger.errors.append(f"client {number}: start HTTP {status} {body}")
            continue
        if not items:
            time.sleep(0.2)  # waiting for timers
            continue
        task_id = rng.choice(items)["id"]
        began = time.perf_counter()
        try:
            status, body = client.call("POST", f"/api/v1/tasks/{task_id}/complete", {"data": STEP_DATA})
        except OSError:
            with ledger.lock:
                ledger.unknown.add(task_id)
            time.sleep(0.05)
            continue
        elapsed = time.perf_counter() - began
        with ledger.lock:
            if status == 200 and body.get("state") == "completed":
                ledger.completed.add(task_id)
                ledger.latencies.append(elapsed)
            elif status == 409 and task_id in ledger.unknown:
                ledger.conflicts_after_unknown += 1
            elif status == 409:
                ledger.conflicts.append(f"client {number}: task {task_id}: {body}")
            else:
                ledger.errors.append(f"client {number}: complete task {task_id}: HTTP {status} {body}")


class Checker:
    """Reads the database in-process (the app's models and engine) and runs the operator's commands."""

    def __init__(self, deployment: Deployment, late_seconds: float) -> None:
        from app import create_app

        self.deployment = deployment
        self.late = timedelta(seconds=late_seconds)
        self.app = create_app("testing", {"SQLALCHEMY_DATABASE_URI": deployment.database_url})
        self.final: set[int] = set()  # completed instances already found consistent: they no longer change
        self.checked_instances = 0

    def quick(self, ledger: Ledger, *, require_completed: bool = False) -> list[str]:
        from sqlalchemy import func, select

        from app.engine import runner
        from app.engine.pruning import hidden_open_task
        from app.extensions import db
        from app.models import AuditEvent, Document, ProcessInstance, Task
        from app.models.types import utcnow
        from app.services.workflow.instances import engine_context

        with ledger.lock:  # what the clients were told before this snapshot was taken is already committed
            answered, started = set(ledger.completed), set(ledger.started)
        problems: list[str] = []
        with self.app.app_context():
            db.session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            now = utcnow()
            instances = {i.id: i for i in db.session.scalars(select(ProcessInstance))}
            rows = defaultdict(list)
            for task in db.session.scalars(select(Task).where(Task.kind == "user")):
                rows[task.instance_id].append(task)
            completed_ids = {t.id for ts in rows.values() for t in ts if t.state == "completed"}
            audited = Counter(db.session.scalars(select(AuditEvent.object_id).where(
                AuditEvent.action == "task.completed")))
            fired = Counter(db.session.scalars(select(AuditEvent.instance_id).where(
                AuditEvent.action == "timer.fired")))
            documents = defaultdict(list)
            for row in db.session.execute(select(Document.id, Document.instance_id, Document.kind, Document.size,
                                                 Document.sha256, func.length(Document.content),
                                                 func.encode(func.sha256(Document.content), "hex"))):
                documents[row[1]].append(row)
            lost = answered - completed_ids
            problems += [f"task {task_id}: answered 200 but not completed in the database (lost)"
                         for task_id in sorted(lost)]
            problems += [f"instance {i}: answered 201 but missing" for i in sorted(started - instances.keys())]
            problems += [f"task {spiff_id}: {n} task.completed audit rows (doubled)"
                         for spiff_id, n in audited.items() if n > 1]
            context = engine_context(now)
            for instance_id, instance in instances.items():
                if instance_id in self.final:
                    continue
                problems += self._instance(instance, rows[instance_id], documents[instance_id], audited,
                                           fired[instance_id], context, now, require_completed, runner,
                                           hidden_open_task)
                self.checked_instances += 1
            db.session.rollback()
            db.session.remove()
        return problems

    def _instance(self, instance, tasks, documents, audited, fired, context, now, require_completed, runner,
                  hidden_open_task) -> list[str]:
        label = f"instance {instance.id} ({instance.title})"
        problems = []
        if instance.status not in ("running", "completed"):
            return [f"{label}: {instance.status}"]
        workflow = runner._load(instance, context)
        live = set(runner._live_user_tasks(workflow))
        open_rows = {t.spiff_id for t in tasks if t.state == "ready"}
        if live != open_rows:
            problems.append(f"{label}: ready task rows {sorted(open_rows)} but the engine waits on {sorted(live)}")
        done = Counter(t.element_id for t in tasks if t.state == "completed")
        problems += [f"{label}: {element} completed {n} times (doubled)" for element, n in done.items() if n > 1]
        problems += [f"{label}: task {t.id} completed with {audited[t.spiff_id]} task.completed audit rows"
                     for t in tasks if t.state == "completed" and audited[t.spiff_id] != 1]
        if done["step_a"]:
            kinds = [d for d in documents if d[2] == DOCUMENT_KIND]
            if len(kinds) != 1:
                problems.append(f"{label}: {len(kinds)} evidence documents after step A, not 1")
            for _, _, _, size, sha256, length, digest in kinds:
                if length != size or digest != sha256:
                    problems.append(f"{label}: document bytes ({length}, {digest}) do not match ({size}, {sha256})")
        if instance.status == "completed":
            if not workflow.is_completed():
                problems.append(f"{label}: completed in the table, not in the engine")
            if open_rows or sorted(done) != sorted(STEPS):
                problems.append(f"{label}: completed with steps {dict(done)} and open rows {sorted(open_rows)}")
            if fired != 1:
                problems.append(f"{label}: timer fired {fired} times, not once")
            if not problems:
                self.final.add(instance.id)
            return problems
        if require_completed:
            problems.append(f"{label}: still running at the end (steps done {dict(done)}, "
                            f"timer {instance.next_timer_at})")
        if workflow.is_completed():
            problems.append(f"{label}: completed in the engine, running in the table")
        stuck = runner.stalled_at(workflow)
        hidden = hidden_open_task(workflow)
        if stuck or hidden is not None:
            problems.append(f"{label}: stalled at {stuck or hidden.task_spec.bpmn_id}")
        engine_timer = runner._next_timer_at(workflow)
        if engine_timer != instance.next_timer_at:
            problems.append(f"{label}: next_timer_at {instance.next_timer_at}, engine {engine_timer}")
        if instance.next_timer_at is not None and instance.next_timer_at < now - self.late:
            problems.append(f"{label}: timer due {instance.next_timer_at} not fired by {now}")
        if fired > (1 if done["step_a"] else 0):
            problems.append(f"{label}: timer fired {fired} times")
        return problems

    def full(self) -> tuple[list[str], dict[str, float]]:
        """The operator's own checks, as subprocesses: the stall detector and the audit verification."""
        problems, seconds = [], {}
        began = time.perf_counter()
        stall = self.deployment.flask("instances", "check")
        seconds["instances_check_s"] = time.perf_counter() - began
        if stall.returncode or " 0 stalled" not in stall.stdout:
            problems.append(f"flask instances check: {stall.stdout.strip()} {stall.stderr.strip()[-1000:]}")
        began = time.perf_counter()
        verify = self.deployment.flask("audit", "verify")
        seconds["audit_verify_s"] = time.perf_counter() - began
        if verify.returncode or not verify.stdout.startswith("OK"):
            problems.append(f"flask audit verify: {verify.stdout.strip()} {verify.stderr.strip()[-2000:]}")
        return problems, seconds


@dataclass
class Kill:
    number: int
    target: str
    pid: int
    restart_s: float
    problems: list[str]


def kill_one(deployment: Deployment, rng: random.Random, target: str) -> tuple[int, float, str]:
    """Kill one process of the target kind with SIGKILL and wait until everything serves again; return its pid,
    the restart time and what the restart waited for."""
    detail = ""
    if target == "worker":
        workers = deployment.web_workers()
        pid = rng.choice(workers)
        deployment.kill(pid)
        began = time.perf_counter()
        deadline = time.monotonic() + 60  # the master notices and forks another
        while pid in deployment.web_workers() and time.monotonic() < deadline:
            time.sleep(0.05)
    elif target == "master":
        pid = deployment.web.pid
        orphans = deployment.web_workers()
        deployment.kill(deployment.web)
        began = time.perf_counter()
        detail = f" (its workers left in {deployment.restart_web_after_master_killed(orphans):.1f} s)"
    else:
        process = rng.choice(deployment.scheduler_processes)
        pid = process.pid
        deployment.kill(process)
        began = time.perf_counter()
        deployment.replace_scheduler(process)
    deployment.wait_ready()
    return pid, time.perf_counter() - began, detail


def run(*, kills: int, workers: int, schedulers: int, clients: int, open_per_client: int, full_every: int,
        pause: tuple[float, float], late_seconds: float, seed: int, database_url: str, workdir: Path,
        log=print) -> dict:
    rng = random.Random(seed)
    deployment = Deployment(database_url, workers, schedulers, workdir)
    token = deployment.prepare(BPMN, f"{PROCESS}.bpmn")
    checker = Checker(deployment, late_seconds)
    ledger = Ledger()
    stop, draining = threading.Event(), threading.Event()
    history: list[Kill] = []
    full_checks: list[dict] = []
    problems: list[str] = []
    deployment.start()
    threads = []
    began = time.perf_counter()
    try:
        deployment.wait_ready()
        threads = [threading.Thread(target=client_loop, daemon=True,
                                    args=(n, deployment.base_url, token, ledger, stop, draining, open_per_client, seed))
                   for n in range(clients)]
        for thread in threads:
            thread.start()
        names, weights = zip(*TARGETS.items(), strict=True)
        for number in range(1, kills + 1):
            time.sleep(rng.uniform(*pause))
            target = rng.choices(names, weights)[0]
            pid, restart, detail = kill_one(deployment, rng, target)
            found = checker.quick(ledger)
            if full_every and number % full_every == 0:
                extra, seconds = checker.full()
                found += extra
                full_checks.append({"after_kill": number, **{k: round(v, 1) for k, v in seconds.items()}})
            history.append(Kill(number, target, pid, restart, found))
            problems += [f"after kill {number} ({target} {pid}): {p}" for p in found]
            with ledger.lock:
                answered = len(ledger.completed)
            log(f"kill {number:3d}/{kills}: {target:9s} pid {pid:7d}, serving again in {restart:5.2f} s{detail}; "
                f"{answered} completions answered; {len(found)} problem(s)")
        draining.set()  # finish the open instances
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and _open_instances(checker):
            time.sleep(1)
        stop.set()
        for thread in threads:
            thread.join(timeout=90)
        seconds = time.perf_counter() - began
        time.sleep(1)
        final = checker.quick(ledger, require_completed=True)
        extra, full_seconds = checker.full()
        final += extra
        full_checks.append({"after_kill": "end", **{k: round(v, 1) for k, v in full_seconds.items()}})
        problems += [f"final: {p}" for p in final]
    finally:
        stop.set()
        deployment.stop()
    problems += ledger.errors + ledger.conflicts
    committed = _committed_completions(checker)
    if committed - len(ledger.completed) > len(ledger.unknown):
        problems.append(f"{committed} completions committed, {len(ledger.completed)} answered: more than the "
                        f"{len(ledger.unknown)} whose answer a killed connection took")
    by_target = defaultdict(list)
    for kill in history:
        by_target[kill.target].append(kill.restart_s)
    return {
        "workers": workers, "schedulers": schedulers, "clients": clients, "kills": len(history),
        "seconds": round(seconds, 1), "instances": len(ledger.started), "completions_answered": len(ledger.completed),
        "completions_committed": committed, "answers_lost_to_kills": committed - len(ledger.completed),
        "completions_unknown_to_client": len(ledger.unknown), "starts_unknown_to_client": ledger.unknown_starts,
        "conflicts_after_lost_answer": ledger.conflicts_after_unknown, "connection_errors": ledger.connection_errors,
        "completion_p50_ms": round(percentile(ledger.latencies, 0.5) * 1000, 1),
        "completion_p95_ms": round(percentile(ledger.latencies, 0.95) * 1000, 1),
        "throughput_per_s": round(len(ledger.completed) / seconds, 1) if seconds else 0.0,
        "targets": {name: {"kills": len(times), "restart_p50_s": round(statistics.median(times), 2),
                           "restart_max_s": round(max(times), 2)} for name, times in sorted(by_target.items())},
        "checks_after_restarts": len(history), "instance_checks": checker.checked_instances,
        "full_checks": full_checks, "problems": problems,
    }


def _open_instances(checker: Checker) -> int:
    from sqlalchemy import func, select

    from app.extensions import db
    from app.models import ProcessInstance

    with checker.app.app_context():
        count = db.session.scalar(select(func.count()).select_from(ProcessInstance)
                                  .where(ProcessInstance.status == "running"))
        db.session.remove()
    return count


def _committed_completions(checker: Checker) -> int:
    from sqlalchemy import func, select

    from app.extensions import db
    from app.models import Task

    with checker.app.app_context():
        count = db.session.scalar(select(func.count()).select_from(Task).where(Task.kind == "user",
                                                                                Task.state == "completed"))
        db.session.remove()
        db.engine.dispose()
    return count


def summary_table(report: dict) -> str:
    lines = [f"kill -9 loop: {report['kills']} kills in {report['seconds']} s, {report['workers']} gunicorn workers, "
             f"{report['schedulers']} schedulers, {report['clients']} clients",
             "", f"{'target':10s} {'kills':>6s} {'restart p50 s':>14s} {'restart max s':>14s}"]
    for name, row in report["targets"].items():
        lines.append(f"{name:10s} {row['kills']:6d} {row['restart_p50_s']:14.2f} {row['restart_max_s']:14.2f}")
    lines.append("")
    for key in ("instances", "completions_answered", "completions_committed", "answers_lost_to_kills",
                "completions_unknown_to_client", "conflicts_after_lost_answer", "starts_unknown_to_client",
                "connection_errors", "throughput_per_s", "completion_p50_ms", "completion_p95_ms",
                "checks_after_restarts", "instance_checks"):
        lines.append(f"{key.replace('_', ' '):34s} {report[key]}")
    lines.append(f"{'full checks (instances check, audit verify)':34s} {len(report['full_checks'])}: "
                 + ", ".join(f"{c['after_kill']}: {c['instances_check_s']}+{c['audit_verify_s']} s"
                             for c in report["full_checks"][-3:]))
    lines.append(f"{'problems':34s} {len(report['problems'])}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=200)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--schedulers", type=int, default=2)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--open-per-client", type=int, default=3, help="instances each client keeps open")
    parser.add_argument("--full-check-every", type=int, default=25,
                        help="run flask instances check and flask audit verify every K kills (0: at the end only)")
    parser.add_argument("--pause", type=float, nargs=2, default=(0.2, 2.0), metavar=("MIN", "MAX"),
                        help="seconds between a restart and the next kill, drawn uniformly")
    parser.add_argument("--late-seconds", type=float, default=20, help="a timer later than this is a problem")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--database-url", help="an existing PostgreSQL database to use (default: create one)")
    parser.add_argument("--database", default="qualiflow_kill_loop", help="the database to create")
    parser.add_argument("--admin-url", default=ADMIN_URL, help="a database to connect to for CREATE DATABASE")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args()
    require_postgres(args.database_url or args.admin_url)
    url = args.database_url or create_database(args.database, args.admin_url)
    workdir = Path(os.environ.get("QUALIFLOW_BENCH_DIR") or tempfile.mkdtemp(prefix="qualiflow-kill-loop."))
    report = run(kills=args.kills, workers=args.workers, schedulers=args.schedulers, clients=args.clients,
                 open_per_client=args.open_per_client, full_every=args.full_check_every, pause=tuple(args.pause),
                 late_seconds=args.late_seconds, seed=args.seed, database_url=url, workdir=workdir,
                 log=(lambda *a: print(*a, file=sys.stderr)) if args.json else print)
    (workdir / "report.json").write_text(json.dumps(report, indent=2))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print()
        print(summary_table(report))
    # A problem that lasts is found after every restart: each is printed once, with the checks that found it.
    found = Counter(problem.split("): ", 1)[1] if problem.startswith("after kill ") else problem
                    for problem in report["problems"])
    for problem, times in found.items():
        print("PROBLEM:", problem, f"(found by {times} checks)" if times > 1 else "")
    print(f"{'FAILED' if report['problems'] else 'OK'}: {report['kills']} kills, {report['completions_answered']} "
          f"completions answered, {len(found)} problem(s); the report and the processes' log in {workdir}")
    return 1 if report["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())

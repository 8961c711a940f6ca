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
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

BIN = ROOT / ".venv" / "bin"
ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PROCESS = "scale_step"
FORM = "capa_escalation.schema.json"
STEP_DATA = {"escalation_action": "Done."}


def _user_task(element_id: str, name: str) -> str:
    return (f'<bpmn:userTask id="{element_id}" name="{name}"><bpmn:extensionElements><spiffworkflow:properties>'
            f'<spiffworkflow:property name="formJsonSchemaFilename" value="{FORM}"/>'
            f'</spiffworkflow:properties></bpmn:extensionElements></bpmn:userTask>')


BPMN = f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" id="scale_defs"
    targetNamespace="https://qualiflow.example/bench">
  <bpmn:process id="{PROCESS}" name="Scale: step, wait, step" isExecutable="true">
    <bpmn:laneSet id="lanes"><bpmn:lane id="lane_qa" name="qa">
      <bpmn:flowNodeRef>start</bpmn:flowNodeRef><bpmn:flowNodeRef>step_a</bpmn:flowNodeRef>
      <bpmn:flowNodeRef>wait</bpmn:flowNodeRef><bpmn:flowNodeRef>step_b</bpmn:flowNodeRef>
      <bpmn:flowNodeRef>end</bpmn:flowNodeRef></bpmn:lane></bpmn:laneSet>
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="step_a"/>
    {_user_task("step_a", "Step A")}
    <bpmn:sequenceFlow id="f2" sourceRef="step_a" targetRef="wait"/>
    <bpmn:intermediateCatchEvent id="wait" name="Wait">
      <bpmn:timerEventDefinition id="wait_timer"><bpmn:timeDuration>"PT1S"</bpmn:timeDuration>
      </bpmn:timerEventDefinition>
    </bpmn:intermediateCatchEvent>
    <bpmn:sequenceFlow id="f3" sourceRef="wait" targetRef="step_b"/>
    {_user_task("step_b", "Step B")}
    <bpmn:sequenceFlow id="f4" sourceRef="step_b" targetRef="end"/>
    <bpmn:endEvent id="end"/>
  </bpmn:process>
</bpmn:definitions>"""


def postgres_answers(host: str = "127.0.0.1", port: int = 5432) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def create_database(name: str, admin_url: str = ADMIN_URL) -> str:
    """Drop and create a database beside the admin URL's; return its SQLAlchemy URL."""
    import psycopg
    from sqlalchemy.engine import make_url

    admin = make_url(admin_url)
    with psycopg.connect(host=admin.host, port=admin.port or 5432, user=admin.username, password=admin.password,
                         dbname=admin.database, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')
    return admin.set(database=name).render_as_string(hide_password=False)


def drop_database(name: str, admin_url: str = ADMIN_URL) -> None:
    import psycopg
    from sqlalchemy.engine import make_url

    admin = make_url(admin_url)
    with psycopg.connect(host=admin.host, port=admin.port or 5432, user=admin.username, password=admin.password,
                         dbname=admin.database, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Deployment:
    """The processes of one scale run: gunicorn and the schedulers, on one database."""
    database_url: str
    workers: int
    schedulers: int
    workdir: Path
    port: int = field(default_factory=free_port)
    processes: list[subprocess.Popen] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "FLASK_APP": "wsgi", "QUALIFLOW_CONFIG": "development", "DATABASE_URL": self.database_url,
                "SECRET_KEY": "scale-test", "AUDIT_CHECKPOINT_KEY": "scale-test",
                "AUDIT_CHECKPOINT_DIR": str(self.workdir / "checkpoints"), "QUALIFLOW_SCHEDULER": "0",
                "QUALIFLOW_TIMER_SECONDS": "1", "QUALIFLOW_RATELIMIT": "0", "SMTP_PORT": "1",
                "QUALIFLOW_AUDIT_CHECKPOINT_MINUTES": "600", "PYTHONUNBUFFERED": "1"}

    def flask(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(BIN / "flask"), *args], cwd=ROOT, env=self.env, capture_output=True, text=True,
                              timeout=600)

    def prepare(self) -> str:
        """Migrate, seed the demo people, deploy the procedure; return an API token of qa."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        migrated = self.flask("db", "upgrade")
        if migrated.returncode:
            raise RuntimeError(f"flask db upgrade failed:\n{migrated.stderr[-3000:]}")
        script = ("import sys\nfrom wsgi import app\nfrom app.services import demo, users\n"
                  "from app.services.workflow import processes\n"
                  "with app.app_context():\n"
                  "    demo.seed_people()\n"
                  f"    processes.deploy_file(sys.stdin.buffer.read(), '{PROCESS}.bpmn', None, 'scale test')\n"
                  "    print(users.issue_token('qa', name='scale'))\n")
        seeded = subprocess.run([str(BIN / "python"), "-c", script], cwd=ROOT, env=self.env, input=BPMN.encode(),
                                capture_output=True, timeout=600)
        if seeded.returncode:
            raise RuntimeError(f"seeding failed:\n{seeded.stderr.decode()[-3000:]}")
        return seeded.stdout.decode().strip().splitlines()[-1]

    def start(self) -> None:
        log = (self.workdir / "processes.log").open("ab")
        self.processes.append(subprocess.Popen(
            [str(BIN / "gunicorn"), "-c", "deploy/gunicorn.conf.py", "--workers", str(self.workers),
             "--bind", f"127.0.0.1:{self.port}", "--access-logfile", "/dev/null", "wsgi:app"],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT))
        for _ in range(self.schedulers):
            self.processes.append(subprocess.Popen([str(BIN / "flask"), "scheduler", "run"], cwd=ROOT, env=self.env,
                                                   stdout=log, stderr=subprocess.STDOUT))

    def wait_ready(self, token: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if Client(self.base_url, token).call("GET", "/api/v1/processes")[0] == 200:
                    return
            except OSError:
                pass
            if any(p.poll() is not None for p in self.processes):
                raise RuntimeError(f"a process ended at start; see {self.workdir / 'processes.log'}")
            time.sleep(0.2)
        raise RuntimeError("gunicorn did not answer in time")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        self.processes.clear()


class Client:
    def __init__(self, base_url: str, token: str) -> None:
        self.base_url, self.token = base_url, token

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        request = urllib.request.Request(self.base_url + path, method=method,
                                         data=None if body is None else json.dumps(body).encode(),
                                         headers={"Authorization": f"Bearer {self.token}",
                                                  "Content-Type": "application/json", "Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"{}")


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


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))] if ordered else 0.0


def run(workers: int, schedulers: int, completions: int, clients: int, database_url: str,
        workdir: Path) -> dict:
    deployment = Deployment(database_url, workers, schedulers, workdir)
    token = deployment.prepare()
    deployment.start()
    try:
        deployment.wait_ready(token)
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

"""The processes of a scale-out run on PostgreSQL, shared by bench/scale_out.py, bench/kill_loop.py, bench/load.py
and tests/integration/test_scale_out.py: a database of the run's own, `gunicorn wsgi:app` (a master and its workers)
and `flask scheduler run` processes on it, an API client, and a small diagram builder for the runs' test procedures.

Nothing here measures or checks: the runs do. The gunicorn master, its workers and each scheduler can be killed
and started again one by one (the kill loop does), and `Deployment.flask` runs any `flask` command on the database.
"""
from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

BIN = ROOT / ".venv" / "bin"
# CREATE DATABASE needs a connection to some database: the server's maintenance database, never the tests' one.
ADMIN_URL = os.environ.get("QUALIFLOW_BENCH_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
FORM = "capa_escalation.schema.json"  # a shipped form: one required text field
STEP_DATA = {"escalation_action": "Done."}


def user_task(element_id: str, name: str, form: str = FORM) -> str:
    return (f'<bpmn:userTask id="{element_id}" name="{name}"><bpmn:extensionElements><spiffworkflow:properties>'
            f'<spiffworkflow:property name="formJsonSchemaFilename" value="{form}"/>'
            f'</spiffworkflow:properties></bpmn:extensionElements></bpmn:userTask>')


def render_task(element_id: str, template: str, kind: str) -> str:
    """A service task that renders a shipped .docx template and keeps it as evidence (documents.render)."""
    return (f'<bpmn:serviceTask id="{element_id}" name="Render {kind}"><bpmn:extensionElements>'
            f'<spiffworkflow:serviceTaskOperator id="documents.render" resultVariable="{element_id}_result">'
            f'<spiffworkflow:parameters>'
            f'<spiffworkflow:parameter id="template" type="str" value="\'{template}\'"/>'
            f'<spiffworkflow:parameter id="kind" type="str" value="\'{kind}\'"/>'
            f'</spiffworkflow:parameters></spiffworkflow:serviceTaskOperator></bpmn:extensionElements>'
            f'</bpmn:serviceTask>')


def timer_event(element_id: str, duration: str) -> str:
    return (f'<bpmn:intermediateCatchEvent id="{element_id}" name="Wait"><bpmn:timerEventDefinition '
            f'id="{element_id}_timer"><bpmn:timeDuration>"{duration}"</bpmn:timeDuration></bpmn:timerEventDefinition>'
            f'</bpmn:intermediateCatchEvent>')


def sequence_diagram(process: str, name: str, elements: list[tuple[str, str]], lane: str = "qa") -> str:
    """A BPMN file of one process in one lane: start -> each (id, xml) element in turn -> end."""
    ids = ["start", *(element_id for element_id, _ in elements), "end"]
    flows = "\n".join(f'<bpmn:sequenceFlow id="f{n}" sourceRef="{a}" targetRef="{b}"/>'
                      for n, (a, b) in enumerate(zip(ids, ids[1:], strict=False), start=1))
    refs = "".join(f"<bpmn:flowNodeRef>{element_id}</bpmn:flowNodeRef>" for element_id in ids)
    body = "\n".join(xml for _, xml in elements)
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" id="{process}_defs"
    targetNamespace="https://qualiflow.example/bench">
  <bpmn:process id="{process}" name="{name}" isExecutable="true">
    <bpmn:laneSet id="lanes"><bpmn:lane id="lane_{lane}" name="{lane}">{refs}</bpmn:lane></bpmn:laneSet>
    <bpmn:startEvent id="start"/>
    {body}
    <bpmn:endEvent id="end"/>
    {flows}
  </bpmn:process>
</bpmn:definitions>"""


def postgres_answers(host: str = "127.0.0.1", port: int = 5432) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require_postgres(url: str) -> None:
    """Exit with a clear message unless the PostgreSQL server of url answers."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if not parsed.drivername.startswith("postgresql"):
        sys.exit(f"This run needs PostgreSQL; {parsed.render_as_string()} is not a PostgreSQL URL.")
    if not postgres_answers(parsed.host or "127.0.0.1", parsed.port or 5432):
        sys.exit(f"PostgreSQL does not answer on {parsed.host or '127.0.0.1'}:{parsed.port or 5432}; start it (or "
                 "pass --database-url / --admin-url of a server that answers).")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _admin_connection(admin_url: str):
    import psycopg
    from sqlalchemy.engine import make_url

    admin = make_url(admin_url)
    return admin, psycopg.connect(host=admin.host, port=admin.port or 5432, user=admin.username,
                                  password=admin.password, dbname=admin.database, autocommit=True)


def create_database(name: str, admin_url: str = ADMIN_URL) -> str:
    """Drop and create a database beside the admin URL's; return its SQLAlchemy URL."""
    admin, connection = _admin_connection(admin_url)
    with connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')
    return admin.set(database=name).render_as_string(hide_password=False)


def drop_database(name: str, admin_url: str = ADMIN_URL) -> None:
    _, connection = _admin_connection(admin_url)
    with connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def children(pid: int) -> list[int]:
    """The processes whose parent is pid (gunicorn's workers of a master), read from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ")".
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) > 1 and int(fields[1]) == pid:
            found.append(int(entry.name))
    return sorted(found)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (killed, not yet reaped by its parent) no longer serves anything
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@dataclass
class Deployment:
    """The processes of one run: a gunicorn master with its workers and the schedulers, on one database."""
    database_url: str
    workers: int
    schedulers: int
    workdir: Path
    port: int = field(default_factory=free_port)
    extra_env: dict[str, str] = field(default_factory=dict)
    web: subprocess.Popen | None = None
    scheduler_processes: list[subprocess.Popen] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "FLASK_APP": "wsgi", "QUALIFLOW_CONFIG": "development", "DATABASE_URL": self.database_url,
                "SECRET_KEY": "scale-test", "AUDIT_CHECKPOINT_KEY": "scale-test",
                "AUDIT_CHECKPOINT_DIR": str(self.workdir / "checkpoints"), "QUALIFLOW_SCHEDULER": "0",
                "QUALIFLOW_TIMER_SECONDS": "1", "QUALIFLOW_RATELIMIT": "0", "SMTP_PORT": "1",
                "QUALIFLOW_AUDIT_CHECKPOINT_MINUTES": "600", "PYTHONUNBUFFERED": "1", **self.extra_env}

    @property
    def processes(self) -> list[subprocess.Popen]:
        return [p for p in (self.web, *self.scheduler_processes) if p is not None]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def flask(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run([str(BIN / "flask"), *args], cwd=ROOT, env=self.env, capture_output=True, text=True,
                              timeout=timeout)

    def python(self, script: str, stdin: bytes = b"", timeout: float = 600) -> str:
        """Run a Python script with the app's environment; return its standard output (RuntimeError if it failed)."""
        done = subprocess.run([str(BIN / "python"), "-c", script], cwd=ROOT, env=self.env, input=stdin,
                              capture_output=True, timeout=timeout)
        if done.returncode:
            raise RuntimeError(f"script failed:\n{done.stderr.decode()[-3000:]}")
        return done.stdout.decode()

    def migrate(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        migrated = self.flask("db", "upgrade")
        if migrated.returncode:
            raise RuntimeError(f"flask db upgrade failed:\n{migrated.stderr[-3000:]}")

    def prepare(self, bpmn: str, filename: str, username: str = "qa") -> str:
        """Migrate, seed the demo people, deploy one diagram; return an API token of username."""
        self.migrate()
        script = ("import sys\nfrom wsgi import app\nfrom app.services import demo, users\n"
                  "from app.services.workflow import processes\n"
                  "import inspect\n"
                  "with app.app_context():\n"
                  "    demo.seed_people()\n"
                  # Released at installation as the shipped procedures are (where versions await QA's approval).
                  "    release = ({'release': 'bench procedure released at installation'} if 'release' in\n"
                  "               inspect.signature(processes.deploy_file).parameters else {})\n"
                  f"    processes.deploy_file(sys.stdin.buffer.read(), {filename!r}, None, 'bench', **release)\n"
                  f"    print(users.issue_token({username!r}, name='bench'))\n")
        return self.python(script, bpmn.encode()).strip().splitlines()[-1]

    def token(self, username: str) -> str:
        script = ("from wsgi import app\nfrom app.services import users\n"
                  f"with app.app_context():\n    print(users.issue_token({username!r}, name='bench'))\n")
        return self.python(script).strip().splitlines()[-1]

    def _log(self):
        self.workdir.mkdir(parents=True, exist_ok=True)
        return (self.workdir / "processes.log").open("ab")

    def start_web(self) -> subprocess.Popen:
        with self._log() as log:
            self.web = subprocess.Popen(
                [str(BIN / "gunicorn"), "-c", "deploy/gunicorn.conf.py", "--workers", str(self.workers),
                 "--bind", f"127.0.0.1:{self.port}", "--access-logfile", "/dev/null", "wsgi:app"],
                cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        return self.web

    def start_scheduler(self) -> subprocess.Popen:
        with self._log() as log:
            process = subprocess.Popen([str(BIN / "flask"), "scheduler", "run"], cwd=ROOT, env=self.env,
                                       stdout=log, stderr=subprocess.STDOUT)
        self.scheduler_processes.append(process)
        return process

    def start(self) -> None:
        self.start_web()
        for _ in range(self.schedulers):
            self.start_scheduler()

    def web_workers(self) -> list[int]:
        return children(self.web.pid) if self.web is not None and self.web.poll() is None else []

    def wait_ready(self, timeout: float = 60) -> None:
        """Wait until gunicorn answers a plain page and has all its workers."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.web is None or self.web.poll() is not None:
                raise RuntimeError(f"gunicorn ended at start; see {self.workdir / 'processes.log'}")
            if any(p.poll() is not None for p in self.scheduler_processes):
                raise RuntimeError(f"a scheduler ended at start; see {self.workdir / 'processes.log'}")
            try:
                with urllib.request.urlopen(self.base_url + "/login", timeout=5) as response:
                    if response.status == 200 and len(self.web_workers()) >= self.workers:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("gunicorn did not answer in time")

    def kill(self, process: subprocess.Popen | int) -> None:
        """SIGKILL a process (a Popen of ours or a gunicorn worker's pid)."""
        pid = process if isinstance(process, int) else process.pid
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if not isinstance(process, int):
            process.wait()

    def restart_web_after_master_killed(self, orphans: list[int], timeout: float = 30) -> float:
        """Start gunicorn again once the killed master's workers left (they notice their parent is gone and stop
        after the requests in flight); any still there after timeout are killed too. Return how long they took."""
        began = time.monotonic()
        while any(alive(pid) for pid in orphans) and time.monotonic() < began + timeout:
            time.sleep(0.1)
        for pid in orphans:
            if alive(pid):
                self.kill(pid)
        left = time.monotonic() - began
        self.start_web()
        return left

    def replace_scheduler(self, process: subprocess.Popen) -> subprocess.Popen:
        self.scheduler_processes.remove(process)
        return self.start_scheduler()

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        self.web = None
        self.scheduler_processes.clear()


class Client:
    """A JSON API client with a bearer token (urllib: one connection per request, as many clients have)."""

    def __init__(self, base_url: str, token: str, timeout: float = 60) -> None:
        self.base_url, self.token, self.timeout = base_url, token, timeout

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        """Return (status, JSON body); OSError (refused, reset, timed out, an answer cut off) propagates to the
        caller, who cannot know whether the request was carried out."""
        request = urllib.request.Request(self.base_url + path, method=method,
                                         data=None if body is None else json.dumps(body).encode(),
                                         headers={"Authorization": f"Bearer {self.token}",
                                                  "Content-Type": "application/json", "Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.status, json.loads(response.read() or b"{}")
        except http.client.HTTPException as err:  # the answer was cut off (its process was killed while sending it)
            raise ConnectionError(f"{err.__class__.__name__}: {err}") from err
        except urllib.error.HTTPError as err:
            raw = err.read()
            try:
                return err.code, json.loads(raw or b"{}")
            except ValueError:
                return err.code, {"error": "not JSON", "message": raw[:300].decode(errors="replace")}


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))] if ordered else 0.0

#!/usr/bin/env python3
"""Engine benchmark: Qualiflow's service layer with the database against raw SpiffWorkflow, same run, same diagram.

    python bench/engine.py [--instances N] [--loop K] [--raw-loop K] [--capa] [--quick] [--json]

Ours: the app is created with a fresh SQLite file in a temporary directory (WAL, as in production), the
schema and the audit trail's append-only triggers are installed, the demo groups and users are created and
the benchmark diagrams are deployed through the real lint (app.services.processes.deploy_file). Every step
runs the real use case - `app.services.tasks.complete_task` (form validation, row lock, engine load / run /
prune / save, task table sync, hash-chained audit rows) - and ends with its own commit and a fresh session,
as a stateless web request would.

Raw: bench/raw_spiffworkflow.py (or $QUALIFLOW_BASELINE, or --baseline) is run as a subprocess
with --json on the SAME adapted diagram (written to a temporary file), so the ratio compares like with like,
once before and once after ours (the ratio takes the mean of the two: the load of a shared machine drifts).
A step is what the baseline calls one: one completed manual task plus the engine steps that follow it. The
rate counts the whole run, starting the instances included; the percentiles are of steps alone. The CPU time
per step (ours: this process plus the script workers; raw: its process) gives a second ratio that the
machine's load moves less.

Per-step growth: one instance of the baseline's looping diagram (with a lane and a form) is run for --loop
passes (500 by default) and the mean cost of its first five steps is compared with its last five. The raw
library cannot go past ~248 passes of that loop (SpiffWorkflow's task iterators stop at tree depth 1000, and
it then reports the instance completed), so its growth is measured with --tasks-growth --loop 240.

Goals (from the issue): steps/s ratio ours / raw >= 0.5 (the CPU ratio is held to the same), and our per-step
growth <= 1.5x. A miss prints MISS
but the run still exits 0; only errors (a failed step, a wrong step count, a broken audit chain, a baseline
that fails) exit non-zero.
"""
from __future__ import annotations

import argparse
import cProfile
import json
import os
import platform
import pstats
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `python bench/engine.py` puts bench/ first on the path, not the project

DEFAULT_BASELINE = ROOT / "bench" / "raw_spiffworkflow.py"
RATIO_GOAL = 0.5
GROWTH_GOAL = 1.5
RAW_MAX_LOOP = 248  # past this the raw engine loses its READY task at tree depth 1000
FORM = "capa_escalation.schema.json"
FORM_DATA = {"escalation_action": "ok"}
LANE_USERS = {"qa": "qa", "qa_management": "head", "regulatory": "admin", "production": "prod"}

_NS = ('xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
       'xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core"')


def _user_task(task_id: str, name: str) -> str:
    return (f'<bpmn:userTask id="{task_id}" name="{name}"><bpmn:extensionElements><spiffworkflow:properties>'
            f'<spiffworkflow:property name="formJsonSchemaFilename" value="{FORM}"/>'
            '</spiffworkflow:properties></bpmn:extensionElements></bpmn:userTask>')


def _lane(lane_id: str, name: str, nodes: str) -> str:
    refs = "".join(f"<bpmn:flowNodeRef>{node}</bpmn:flowNodeRef>" for node in nodes.split())
    return f'<bpmn:lane id="{lane_id}" name="{name}">{refs}</bpmn:lane>'


# The baseline's APPROVAL_BPMN: assess -> classify (script) -> board or QA review (exclusive) -> two sign-offs
# in parallel -> end; plus what our lint needs: lanes named after demo groups and a form on every user task.
APPROVAL_ID = "bench_approval"
APPROVAL_BPMN = f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions {_NS} id="bench_approval_defs" targetNamespace="https://qualiflow.example/bench">
  <bpmn:process id="{APPROVAL_ID}" name="Bench: approval" isExecutable="true">
    <bpmn:laneSet id="lanes">
      {_lane("lane_qa", "qa", "start assess classify route qa_review merge split sign_qa join end")}
      {_lane("lane_board", "qa_management", "board_review")}
      {_lane("lane_regulatory", "regulatory", "sign_ra")}
    </bpmn:laneSet>
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="assess"/>
    {_user_task("assess", "Assess")}
    <bpmn:sequenceFlow id="f2" sourceRef="assess" targetRef="classify"/>
    <bpmn:scriptTask id="classify" name="Classify risk">
      <bpmn:script>risk = "high" if severity &gt;= 3 else "low"</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:sequenceFlow id="f3" sourceRef="classify" targetRef="route"/>
    <bpmn:exclusiveGateway id="route" default="to_qa"/>
    <bpmn:sequenceFlow id="to_board" sourceRef="route" targetRef="board_review">
      <bpmn:conditionExpression>risk == "high"</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="to_qa" sourceRef="route" targetRef="qa_review"/>
    {_user_task("board_review", "Review board")}
    {_user_task("qa_review", "QA review")}
    <bpmn:sequenceFlow id="f4" sourceRef="board_review" targetRef="merge"/>
    <bpmn:sequenceFlow id="f5" sourceRef="qa_review" targetRef="merge"/>
    <bpmn:exclusiveGateway id="merge"/>
    <bpmn:sequenceFlow id="f6" sourceRef="merge" targetRef="split"/>
    <bpmn:parallelGateway id="split"/>
    <bpmn:sequenceFlow id="f7" sourceRef="split" targetRef="sign_qa"/>
    <bpmn:sequenceFlow id="f8" sourceRef="split" targetRef="sign_ra"/>
    {_user_task("sign_qa", "QA sign-off")}
    {_user_task("sign_ra", "Regulatory sign-off")}
    <bpmn:sequenceFlow id="f9" sourceRef="sign_qa" targetRef="join"/>
    <bpmn:sequenceFlow id="f10" sourceRef="sign_ra" targetRef="join"/>
    <bpmn:parallelGateway id="join"/>
    <bpmn:sequenceFlow id="f11" sourceRef="join" targetRef="end"/>
    <bpmn:endEvent id="end"/>
  </bpmn:process>
</bpmn:definitions>"""

# The baseline's LOOP_BPMN: one user task repeated until `done == loops`, with a lane and a form.
LOOP_ID = "bench_loop"
LOOP_BPMN = f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions {_NS} id="bench_loop_defs" targetNamespace="https://qualiflow.example/bench">
  <bpmn:process id="{LOOP_ID}" name="Bench: inspection loop" isExecutable="true">
    <bpmn:laneSet id="lanes">{_lane("lane_qa", "qa", "start init again inspect count more end")}</bpmn:laneSet>
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="init"/>
    <bpmn:scriptTask id="init" name="Reset counter"><bpmn:script>done = 0</bpmn:script></bpmn:scriptTask>
    <bpmn:sequenceFlow id="f2" sourceRef="init" targetRef="again"/>
    <bpmn:exclusiveGateway id="again"/>
    <bpmn:sequenceFlow id="f3" sourceRef="again" targetRef="inspect"/>
    {_user_task("inspect", "Inspect sample")}
    <bpmn:sequenceFlow id="f4" sourceRef="inspect" targetRef="count"/>
    <bpmn:scriptTask id="count" name="Count"><bpmn:script>done += 1</bpmn:script></bpmn:scriptTask>
    <bpmn:sequenceFlow id="f5" sourceRef="count" targetRef="more"/>
    <bpmn:exclusiveGateway id="more" default="finish"/>
    <bpmn:sequenceFlow id="repeat" sourceRef="more" targetRef="again">
      <bpmn:conditionExpression>done &lt; loops</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="finish" sourceRef="more" targetRef="end"/>
    <bpmn:endEvent id="end"/>
  </bpmn:process>
</bpmn:definitions>"""

# The shipped CAPA's happy path (as tests/integration/capa_steps.py drives it), then the e-signed approval.
# The action is due a month from the run (a due date in the past is refused); the verification period's timer
# is fired in between, as the scheduler would, and not timed.
_ACTION_DUE = (datetime.now(UTC) + timedelta(days=30)).date().isoformat()
CAPA_STEPS: list[tuple[str, dict[str, Any]]] = [
    ("describe_problem", {"title": "Burr on hub", "source": "complaint", "source_reference": "CMP-1",
                          "severity": "major", "description": "Burr found on the catheter hub",
                          "reported_on": "2026-11-20"}),
    ("containment", {"containment_actions": "Stock segregated and sorted", "containment_done": True}),
    ("investigation", {"why_1": "Burr on hub", "why_2": "Tool worn", "why_3": "No tool-life check",
                       "root_cause_category": "machine", "root_cause": "Worn deburring tool at station 3"}),
    ("action_plan", {"actions": [{"description": "Replace tool", "type": "corrective", "owner": "prod",
                                  "due_date": _ACTION_DUE}],
                     "effectiveness_metric": "Burr complaints per 1000 hubs", "effectiveness_operator": "<=",
                     "effectiveness_target": 0.5, "verification_period": "P30D"}),
    ("do_action", {"action_done_note": "Tool replaced", "action_completed_on": "2026-11-30"}),
    ("effectiveness", {"measured_value": 0.1, "measured_on": "2026-12-30", "measurement_note": "Complaint database"}),
    ("qa_approval", {"decision": "approve", "approval_comment": "Effective; close."}),
]
CAPA_USERS = {"qa_management": "releaser"}  # the e-signed approval needs the QA releaser


class BenchError(RuntimeError):
    """The benchmark could not measure what it claims to (exit status 1)."""


# --- helpers -------------------------------------------------------------------------------------------------


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def _latency_summary(latencies: list[float]) -> dict[str, float]:
    """p50 and p95 the way the baseline computes them."""
    if len(latencies) < 2:
        raise BenchError("need at least two steps for percentiles")
    return {"step_p50_ms": _ms(statistics.median(latencies)),
            "step_p95_ms": _ms(statistics.quantiles(latencies, n=20)[-1])}


def _goal(value: float, target: float, higher_is_better: bool) -> dict[str, Any]:
    met = value >= target if higher_is_better else value <= target
    return {"value": value, "target": f"{'>=' if higher_is_better else '<='} {target}",
            "status": "PASS" if met else "MISS"}


# --- the raw baseline (subprocess) ----------------------------------------------------------------------------


def run_baseline(baseline: Path, *args: str) -> dict[str, Any]:
    """Run the raw SpiffWorkflow baseline with --json; return its result and any warning it printed."""
    if not baseline.is_file():
        raise BenchError(f"baseline not found: {baseline} (set --baseline or QUALIFLOW_BASELINE)")
    command = [sys.executable, str(baseline), *args, "--json"]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BenchError(f"baseline failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    try:
        result = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError) as err:
        raise BenchError(f"baseline printed no JSON: {done.stdout[-500:]!r}") from err
    warning = " ".join(line.strip() for line in done.stderr.splitlines() if "stopped early" in line)
    if warning:
        result["warning"] = warning
    return result


def _raw_mean(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """The baseline's figures as the mean of its runs before and after ours; both runs kept."""
    mean = {key: round((before[key] + after[key]) / 2, 3) for key in
            ("instances_per_s", "steps_per_s", "step_p50_ms", "step_p95_ms", "cpu_ms_per_step")}
    return {**before, **mean, "steps_per_s_before": before["steps_per_s"], "steps_per_s_after": after["steps_per_s"]}


# --- our engine through the service layer ---------------------------------------------------------------------


@contextmanager
def bench_app(workdir: Path) -> Iterator[Any]:
    """Yield an app context on a fresh SQLite file with the schema, audit triggers and demo users/groups."""
    from app import create_app, freeze_start_up_objects
    from app.extensions import db
    from app.models.audit import install_append_only
    from app.services import demo

    app = create_app("testing", {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{workdir / 'bench.sqlite'}",
                                 "SMTP_PORT": 1})
    with app.app_context():
        db.create_all()
        with db.engine.begin() as connection:
            install_append_only(connection)
        demo.seed_people()
        freeze_start_up_objects()  # as wsgi.py does in a web worker once its app is built
        try:
            yield app
        finally:
            db.session.remove()
            db.engine.dispose()


def deploy(bpmn: bytes, filename: str) -> None:
    """Deploy a diagram through the real lint and versioning."""
    from app.extensions import db
    from app.services.workflow import processes

    processes.deploy_file(bpmn, filename, None, "benchmark", release="benchmark")
    db.session.remove()


def _user_ids() -> dict[str, int]:
    from app.services import users

    return {username: users.get_by_username(username).id for username in {*LANE_USERS.values(), "releaser"}}


_STATEMENTS: dict[str, Any] = {}  # built once, as the app builds its hot statements


def _next_ready(instance_id: int) -> Any:
    """The next ready user task's id and what the run picks its actor, form data and password by (a client knows
    the task's id from the inbox; the use case loads the task itself)."""
    from sqlalchemy import bindparam, select

    from app.extensions import db
    from app.models import Task

    if "next" not in _STATEMENTS:
        _STATEMENTS["next"] = (
            select(Task.id, Task.group_name, Task.assignee_id, Task.element_id, Task.signature_meaning)
            .where(Task.instance_id == bindparam("instance_id"), Task.state == "ready", Task.kind == "user")
            .order_by(Task.id).limit(1))
    return db.session.execute(_STATEMENTS["next"], {"instance_id": instance_id}).first()


def _actor(user_id: int) -> Any:
    """Load the acting user with its groups in one statement, as the API loads a token's user."""
    from sqlalchemy import bindparam, select
    from sqlalchemy.orm import joinedload

    from app.extensions import db
    from app.models import User

    if "actor" not in _STATEMENTS:
        _STATEMENTS["actor"] = select(User).options(joinedload(User.groups)).where(User.id == bindparam("user_id"))
    return db.session.scalars(_STATEMENTS["actor"], {"user_id": user_id}).unique().one()


def start(process_key: str, username_id: int, data: dict[str, Any], title: str) -> int:
    """Start an instance as a request would (fresh session, load the actor, one commit); return its id."""
    from app.extensions import db
    from app.services.workflow import instances

    instance_id = instances.start_instance(process_key, _actor(username_id), data, title=title).id
    db.session.remove()
    return instance_id


def run_steps(instance_id: int, actor_for: Callable[[Any], int], data_for: Callable[[Any], dict[str, Any]],
              password: Callable[[Any], str | None] = lambda task: None,
              after_step: Callable[[int], None] | None = None) -> list[float]:
    """Complete the instance's user tasks one request at a time until none is left; return each step's seconds.

    A step, timed like the baseline's: find the next ready user task, load the acting user, complete the task
    (tasks.complete_task: one transaction, one commit) and end the request (close the session).
    """
    from app.extensions import db
    from app.services.workflow import tasks

    latencies: list[float] = []
    while True:
        started = time.perf_counter()
        task = _next_ready(instance_id)
        if task is None:
            db.session.remove()
            return latencies
        actor = _actor(actor_for(task))
        tasks.complete_task(task.id, data_for(task), actor, password=password(task))
        db.session.remove()
        latencies.append(time.perf_counter() - started)
        if after_step is not None:
            after_step(instance_id)


def _check_completed(instance_id: int, steps: int, expected: int) -> int:
    """Refuse to report figures for an instance that did not end the way the diagram says; return its state size."""
    from app.extensions import db
    from app.models import Incident, ProcessInstance

    instance = db.session.get(ProcessInstance, instance_id)
    if instance.status != "completed" or steps != expected:
        incident = db.session.scalar(db.select(Incident.message).where(Incident.instance_id == instance_id))
        raise BenchError(f"instance {instance_id} ended {instance.status!r} after {steps} of {expected} steps"
                         + (f": {incident}" if incident else ""))
    size = len(instance.state_json.encode())
    db.session.remove()
    return size


def _state_bytes(instance_id: int) -> int:
    from sqlalchemy import func, select

    from app.extensions import db
    from app.models import ProcessInstance

    return db.session.scalar(select(func.length(ProcessInstance.state_json)).where(ProcessInstance.id == instance_id))


def _children_cpu() -> float:
    """CPU seconds used so far by this process's live children (the script workers), from Linux /proc; 0 elsewhere."""
    total = 0
    for children in Path(f"/proc/{os.getpid()}/task").glob("*/children"):
        for pid in children.read_text().split():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
    return total / os.sysconf("SC_CLK_TCK") if total else 0.0


def bench_instances(instances: int, user_ids: dict[str, int]) -> dict[str, Any]:
    """Run `instances` approval instances to completion, alternating the branch as the baseline does.

    Besides the wall clock, the CPU time of this process and of the script workers (they run the diagram's script
    and condition, which the baseline runs in its own process) over the same run: on a shared machine the steadier
    figure."""
    latencies: list[float] = []
    runs: list[tuple[int, int]] = []
    cpu_started, workers_started = time.process_time(), _children_cpu()
    started = time.perf_counter()
    for i in range(instances):
        instance_id = start(APPROVAL_ID, user_ids["qa"], {"severity": 1 + i % 4}, f"bench #{i}")
        steps = run_steps(instance_id, lambda task: user_ids[LANE_USERS[task.group_name]], lambda task: FORM_DATA)
        latencies += steps
        runs.append((instance_id, len(steps)))
    elapsed = time.perf_counter() - started
    cpu, workers_cpu = time.process_time() - cpu_started, _children_cpu() - workers_started
    for instance_id, steps_done in runs:  # untimed, as the baseline does not time its checks either
        _check_completed(instance_id, steps_done, 4)  # assess, one review, two sign-offs
    return {"instances": instances, "steps": len(latencies),
            "instances_per_s": round(instances / elapsed, 2), "steps_per_s": round(len(latencies) / elapsed, 2),
            "cpu_ms_per_step": round((cpu + workers_cpu) / len(latencies) * 1000, 3),
            "workers_cpu_ms_per_step": round(workers_cpu / len(latencies) * 1000, 3),
            **_latency_summary(latencies)}


@contextmanager
def scripts_in_process() -> Iterator[None]:
    """Run scripts and conditions in the calling thread, as before script workers, to measure what workers cost."""
    from app.engine import runner, sandbox, script_policy

    class InProcess(sandbox.SandboxedEnvironment):
        def evaluate(self, expression: str, context: dict, external_context: dict | None = None) -> Any:
            return script_policy.evaluate(expression, context, external_context or {},
                                          script_policy.helpers(self.now, self.holidays), self.time_limit)

        def execute(self, script: str, context: dict, external_context: dict | None = None) -> bool:
            script_policy.execute(script, context, external_context or {},
                                  script_policy.helpers(self.now, self.holidays), self.time_limit)
            return True

    runner.SandboxedEnvironment = InProcess
    try:
        yield
    finally:
        runner.SandboxedEnvironment = sandbox.SandboxedEnvironment


def bench_script_steps(instances: int, user_ids: dict[str, int]) -> dict[str, Any]:
    """Run approval instances alternately with script workers and in this thread (load drift hits both alike)."""
    elapsed = {"workers": 0.0, "in_process": 0.0}
    latencies: dict[str, list[float]] = {"workers": [], "in_process": []}
    for i in range(instances):
        for mode in elapsed:
            with scripts_in_process() if mode == "in_process" else nullcontext():
                started = time.perf_counter()
                instance_id = start(APPROVAL_ID, user_ids["qa"], {"severity": 1 + i % 4}, f"bench {mode} #{i}")
                latencies[mode] += run_steps(instance_id, lambda task: user_ids[LANE_USERS[task.group_name]],
                                             lambda task: FORM_DATA)
                elapsed[mode] += time.perf_counter() - started
    rates = {mode: len(latencies[mode]) / elapsed[mode] for mode in elapsed}
    return {"instances": instances,
            "steps_per_s_workers": round(rates["workers"], 2), "steps_per_s_in_process": round(rates["in_process"], 2),
            "steps_ratio_workers_in_process": round(rates["workers"] / rates["in_process"], 3),
            "step_p50_ms_workers": _ms(statistics.median(latencies["workers"])),
            "step_p50_ms_in_process": _ms(statistics.median(latencies["in_process"]))}


def bench_script_calls(calls: int) -> dict[str, Any]:
    """Time the approval diagram's script and condition per call, in a worker and in this thread."""
    from app.engine import script_policy
    from app.engine.sandbox import SandboxedEnvironment

    script, condition = 'risk = "high" if severity >= 3 else "low"', 'risk == "high"'
    data = {**FORM_DATA, "severity": 3, "title": "bench", "risk": "high"}
    environment = SandboxedEnvironment(now=datetime.now(UTC))
    helpers = script_policy.helpers(environment.now, ())
    environment.evaluate(condition, data)  # starts the worker; its start-up is not a call

    def per_call_us(call: Callable[[], Any]) -> float:
        started = time.perf_counter()
        for _ in range(calls):
            call()
        return round((time.perf_counter() - started) / calls * 1e6, 1)

    figures = {
        "evaluate_worker_us": per_call_us(lambda: environment.evaluate(condition, data)),
        "evaluate_in_process_us": per_call_us(lambda: script_policy.evaluate(condition, data, {}, helpers, 1.0)),
        "execute_worker_us": per_call_us(lambda: environment.execute(script, dict(data))),
        "execute_in_process_us": per_call_us(
            lambda: script_policy.execute(script, dict(data), {}, helpers, 1.0)),
    }
    return {"calls": calls, **figures}


def bench_growth(loops: int, user_ids: dict[str, int]) -> dict[str, Any]:
    """Run one looping instance for `loops` passes; compare the mean cost of its first and last five steps."""
    sizes: list[int] = []
    instance_id = start(LOOP_ID, user_ids["qa"], {"loops": loops}, "bench loop")
    latencies = run_steps(instance_id, lambda task: user_ids["qa"], lambda task: FORM_DATA,
                          after_step=lambda iid: sizes.append(_state_bytes(iid)))  # untimed
    _check_completed(instance_id, len(latencies), loops)
    first_ms = statistics.fmean(latencies[:5]) * 1000
    last_ms = statistics.fmean(latencies[-5:]) * 1000
    tenth = max(5, len(latencies) // 10)  # five steps are few on a busy machine: a steadier second opinion
    median_growth = statistics.median(latencies[-tenth:]) / statistics.median(latencies[:tenth])
    return {"loop": loops, "steps": len(latencies), "first5_step_ms": round(first_ms, 3),
            "last5_step_ms": round(last_ms, 3), "growth_x": round(last_ms / first_ms, 2),
            "growth_median_x": round(median_growth, 2), "median_window_steps": tenth,
            "state_bytes_first": sizes[0], "state_bytes_max": max(sizes[:-1] or sizes)}


def bench_capa(instances: int, user_ids: dict[str, int]) -> dict[str, Any]:
    """Run the shipped CAPA's happy path (documents, e-mail outbox, e-signature) through our engine."""
    from app.services import demo

    steps_data = dict(CAPA_STEPS)
    latencies: list[float] = []
    runs: list[tuple[int, int]] = []
    started = time.perf_counter()
    def actor(task: Any) -> int:  # an action task is assigned to its owner by the diagram
        return task.assignee_id or user_ids[CAPA_USERS.get(task.group_name) or LANE_USERS[task.group_name]]

    def step(instance_id: int) -> list[float]:
        return run_steps(instance_id, actor, lambda task: steps_data[task.element_id],
                         password=lambda task: demo.DEMO_PASSWORD if task.signature_meaning else None)

    for i in range(instances):
        instance_id = start("capa", user_ids["qa"], {}, f"bench CAPA #{i}")
        steps = step(instance_id)
        _fire_timers(datetime.now(UTC) + timedelta(days=31))  # the verification period passes
        steps += step(instance_id)
        latencies += steps
        runs.append((instance_id, len(steps)))
    elapsed = time.perf_counter() - started
    for instance_id, steps_done in runs:
        _check_completed(instance_id, steps_done, len(CAPA_STEPS))
    return {"instances": instances, "steps": len(latencies),
            "instances_per_s": round(instances / elapsed, 2), "steps_per_s": round(len(latencies) / elapsed, 2),
            **_latency_summary(latencies),
            "note": "includes a .docx render, an outbox e-mail and an argon2 password check for the e-signature"}


def _fire_timers(now: datetime) -> None:
    from app.extensions import db
    from app.services.workflow import timers

    timers.fire_due_timers(now)
    db.session.remove()


def _verify_audit() -> int:
    from app.services.evidence import audit

    report = audit.verify()
    if not report.ok:
        raise BenchError(f"audit chain broken at row {report.broken_id}: {report.problem}")
    return report.checked


# --- the run --------------------------------------------------------------------------------------------------


def _environment() -> dict[str, str]:
    return {"python": platform.python_version(), "sqlite": sqlite3.sqlite_version,
            "spiffworkflow": metadata.version("SpiffWorkflow"), "machine": f"{platform.system()} {platform.machine()}",
            "cpus": str(os.cpu_count())}


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Measure the baseline and our engine on the same diagrams; return everything as one dict."""
    baseline = Path(args.baseline)
    load_before = os.getloadavg()[0]
    raw_loop = min(args.raw_loop, RAW_MAX_LOOP)
    with tempfile.TemporaryDirectory(prefix="qualiflow-bench-") as tmp:
        workdir = Path(tmp)
        diagram = workdir / f"{APPROVAL_ID}.bpmn"
        diagram.write_text(APPROVAL_BPMN, encoding="utf-8")
        raw_args = ("--bpmn", str(diagram), "--process-id", APPROVAL_ID, "--instances", str(args.instances))
        raw_before = run_baseline(baseline, *raw_args)
        raw_growth = run_baseline(baseline, "--tasks-growth", "--loop", str(raw_loop))
        profiler = cProfile.Profile() if args.profile else None
        with bench_app(workdir):
            deploy(APPROVAL_BPMN.encode(), f"{APPROVAL_ID}.bpmn")
            deploy(LOOP_BPMN.encode(), f"{LOOP_ID}.bpmn")
            if args.capa:
                deploy((ROOT / "processes" / "capa.bpmn").read_bytes(), "capa.bpmn")
            user_ids = _user_ids()
            if profiler:
                profiler.enable()
            ours = bench_instances(args.instances, user_ids)
            if profiler:
                profiler.disable()
            raw_after = run_baseline(baseline, *raw_args)  # the machine's load drifts: raw before and after ours
            growth = bench_growth(args.loop, user_ids)
            script_steps = bench_script_steps(args.instances, user_ids)
            script_calls = bench_script_calls(500)
            capa = bench_capa(args.capa_instances, user_ids) if args.capa else None
            audit_rows = _verify_audit()
    if profiler:
        stats = pstats.Stats(profiler, stream=sys.stderr).strip_dirs().sort_stats(args.profile)
        stats.print_stats(40)
    raw = _raw_mean(raw_before, raw_after)
    ratio = round(ours["steps_per_s"] / raw["steps_per_s"], 3)
    cpu_ratio = round(raw["cpu_ms_per_step"] / ours["cpu_ms_per_step"], 3)
    result: dict[str, Any] = {
        "diagram": APPROVAL_ID,
        "ours": {**ours, "database": "SQLite file (WAL), one commit per step", "audit_rows_verified": audit_rows},
        "raw": raw,
        "ratio": ratio,
        "cpu_ratio": cpu_ratio,
        "growth": {
            "ours": growth,
            "raw": raw_growth,
            "raw_note": (f"raw SpiffWorkflow measured at --loop {raw_loop}: it cannot go past ~{RAW_MAX_LOOP} "
                         "passes of this loop (task iterators stop at tree depth 1000 and it then reports the "
                         "instance completed)"),
        },
        "goals": {"ratio": _goal(ratio, RATIO_GOAL, True), "cpu_ratio": _goal(cpu_ratio, RATIO_GOAL, True),
                  "growth": _goal(growth["growth_x"], GROWTH_GOAL, False)},
        "environment": {**_environment(), "load_average_1m": f"{load_before:.2f} -> {os.getloadavg()[0]:.2f}"},
    }
    if capa is not None:
        result["capa"] = capa
    result["script_workers"] = {
        **script_calls, **script_steps,
        "note": "an approval instance runs one script and one condition in 4 steps; in this thread is the "
                "sandbox as it ran before workers (no OS limits); instances alternate between the two",
    }
    return result


def print_table(result: dict[str, Any]) -> None:
    """Print the result for people."""
    ours, raw, growth = result["ours"], result["raw"], result["growth"]
    print(f"Engine benchmark - diagram {result['diagram']}, {ours['instances']} instances, "
          f"{ours['steps']} steps each side")
    print(f"  {'':28}{'ours (service + SQLite)':>26}{'raw SpiffWorkflow':>20}")
    for label, key in (("steps/s", "steps_per_s"), ("instances/s", "instances_per_s"),
                       ("step p50 ms", "step_p50_ms"), ("step p95 ms", "step_p95_ms"),
                       ("CPU ms per step", "cpu_ms_per_step")):
        print(f"  {label:28}{ours[key]:>26}{raw[key]:>20}")
    print(f"  {'ratio ours / raw (steps/s)':28}{result['ratio']:>26}"
          f"   (raw before / after ours: {raw['steps_per_s_before']} / {raw['steps_per_s_after']} steps/s)")
    print(f"  {'ratio raw / ours (CPU/step)':28}{result['cpu_ratio']:>26}"
          f"   (ours: this process + {ours['workers_cpu_ms_per_step']} ms in the script workers)")
    print()
    g_ours, g_raw = growth["ours"], growth["raw"]
    print("Per-step cost growth (one looping instance, mean of first 5 vs last 5 steps)")
    print(f"  {'':28}{'ours':>26}{'raw SpiffWorkflow':>20}")
    for label, key in (("passes", "loop"), ("steps", "steps"), ("first 5 ms/step", "first5_step_ms"),
                       ("last 5 ms/step", "last5_step_ms"), ("growth x", "growth_x")):
        print(f"  {label:28}{g_ours[key]:>26}{g_raw[key]:>20}")
    print(f"  {'saved state bytes':28}{g_ours['state_bytes_max']:>26}{g_raw['json_bytes_final']:>20}"
          "   (ours: max over the run; raw: final)")
    print(f"  {'growth x, median of first/last ' + str(g_ours['median_window_steps']):28}"
          f"{g_ours['growth_median_x']:>26}")
    print(f"  note: {growth['raw_note']}")
    if "warning" in g_raw:
        print(f"  baseline warning: {g_raw['warning']}")
    workers = result["script_workers"]
    print()
    print(f"Script workers (scripts and conditions in worker processes with OS limits; {workers['calls']} calls, "
          f"{workers['instances']} approval instances each way, alternating)")
    print(f"  {'':28}{'worker':>26}{'in this thread':>20}")
    for label, key in (("evaluate us/call", "evaluate"), ("execute us/call", "execute")):
        print(f"  {label:28}{workers[key + '_worker_us']:>26}{workers[key + '_in_process_us']:>20}")
    print(f"  {'approval steps/s':28}{workers['steps_per_s_workers']:>26}{workers['steps_per_s_in_process']:>20}")
    print(f"  {'approval step p50 ms':28}{workers['step_p50_ms_workers']:>26}{workers['step_p50_ms_in_process']:>20}")
    print(f"  {'steps/s ratio workers / in thread':34}{workers['steps_ratio_workers_in_process']:>20}")
    if "capa" in result:
        capa = result["capa"]
        print()
        print(f"Shipped CAPA happy path: {capa['instances']} instances, {capa['steps']} steps, "
              f"{capa['steps_per_s']} steps/s, p50 {capa['step_p50_ms']} ms, p95 {capa['step_p95_ms']} ms")
        print(f"  ({capa['note']})")
    print()
    for name, goal in result["goals"].items():
        print(f"Goal {name:9} {goal['target']:>7}: {goal['value']:<8} {goal['status']}")
    env = result["environment"]
    print(f"\nPython {env['python']}, SQLite {env['sqlite']}, SpiffWorkflow {env['spiffworkflow']}, {env['machine']}, "
          f"{env['cpus']} CPUs, load {env['load_average_1m']}; "
          f"audit chain verified ({ours['audit_rows_verified']} rows)")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=50, help="approval instances per side (default 50)")
    parser.add_argument("--loop", type=int, default=500, help="passes of our looping instance (default 500)")
    parser.add_argument("--raw-loop", type=int, default=240,
                        help=f"passes of the raw looping instance (default 240, at most {RAW_MAX_LOOP})")
    parser.add_argument("--capa", action="store_true", help="also run the shipped CAPA happy path")
    parser.add_argument("--capa-instances", type=int, default=10, help="CAPA instances with --capa (default 10)")
    parser.add_argument("--quick", action="store_true", help="a fast smoke: 5 instances, loops of 50")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--baseline", default=os.environ.get("QUALIFLOW_BASELINE", str(DEFAULT_BASELINE)),
                        help="path to raw_spiffworkflow.py")
    parser.add_argument("--profile", metavar="SORT", nargs="?", const="cumulative",
                        help="cProfile our approval run and print the top functions to stderr (sort key)")
    args = parser.parse_args(argv)
    if args.quick:
        args.instances, args.loop, args.raw_loop, args.capa_instances = 5, 50, 50, 2
    if args.instances < 1 or args.loop < 10 or args.raw_loop < 10 or args.capa_instances < 1:
        parser.error("need --instances >= 1, --loop and --raw-loop >= 10, --capa-instances >= 1")
    return args


def bench_main(parse: Callable[[list[str] | None], Any], run_bench: Callable[[Any], dict],
               table: Callable[[dict], None], argv: list[str] | None = None) -> int:
    """Run a benchmark command: one JSON object with --json, else a table; a BenchError exits 1."""
    args = parse(argv)
    try:
        result = run_bench(args)
    except BenchError as err:
        print(f"bench: error: {err}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result))
    else:
        table(result)
    return 0


def main(argv: list[str] | None = None) -> int:
    return bench_main(parse_args, run, print_table, argv)


if __name__ == "__main__":
    sys.exit(main())

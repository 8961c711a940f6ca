#!/usr/bin/env python3
"""Baseline for bench/engine.py: plain SpiffWorkflow, saved and reloaded as JSON after every step, no Qualiflow code.

    python bench/raw_spiffworkflow.py [--bpmn FILE --process-id ID] [--instances N] [--json]
    python bench/raw_spiffworkflow.py --tasks-growth [--loop K] [--json]

Throughput: instances of the approval diagram (or --bpmn) run to the end in memory, no database. A step is one
completed manual task and the engine steps that follow it, ended as a stateless request ends: the whole
workflow is serialized to JSON and the next step runs on the deserialized copy. The rate counts the whole run,
starting the instances included; the percentiles are of steps alone.

--tasks-growth: one instance loops over a user task K times; the mean cost of its first and last five steps
shows how the per-step cost grows with the task history. Each pass nests the tree four levels deeper and
SpiffWorkflow's task iterators stop at depth 1000, so past ~248 passes the library no longer sees its next
task and reports the instance completed: the run then ends early and says so on stderr ("stopped early").

Parsing is SpiffBpmnParser's (Spiff extensions, as Qualiflow deploys them), hence the serializer's SPIFF_CONFIG.
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.spiff.parser.process import SpiffBpmnParser
from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG
from SpiffWorkflow.util.task import TaskState

_NS = 'xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"'

# bench/engine.py runs the same shape (with lanes and forms for our lint) and passes it back with --bpmn.
APPROVAL_ID = "approval"
APPROVAL_BPMN = f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions {_NS} id="approval_defs" targetNamespace="https://qualiflow.example/bench">
  <bpmn:process id="{APPROVAL_ID}" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="assess"/>
    <bpmn:userTask id="assess" name="Assess"/>
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
    <bpmn:userTask id="board_review" name="Review board"/>
    <bpmn:userTask id="qa_review" name="QA review"/>
    <bpmn:sequenceFlow id="f4" sourceRef="board_review" targetRef="merge"/>
    <bpmn:sequenceFlow id="f5" sourceRef="qa_review" targetRef="merge"/>
    <bpmn:exclusiveGateway id="merge"/>
    <bpmn:sequenceFlow id="f6" sourceRef="merge" targetRef="split"/>
    <bpmn:parallelGateway id="split"/>
    <bpmn:sequenceFlow id="f7" sourceRef="split" targetRef="sign_qa"/>
    <bpmn:sequenceFlow id="f8" sourceRef="split" targetRef="sign_ra"/>
    <bpmn:userTask id="sign_qa" name="QA sign-off"/>
    <bpmn:userTask id="sign_ra" name="Regulatory sign-off"/>
    <bpmn:sequenceFlow id="f9" sourceRef="sign_qa" targetRef="join"/>
    <bpmn:sequenceFlow id="f10" sourceRef="sign_ra" targetRef="join"/>
    <bpmn:parallelGateway id="join"/>
    <bpmn:sequenceFlow id="f11" sourceRef="join" targetRef="end"/>
    <bpmn:endEvent id="end"/>
  </bpmn:process>
</bpmn:definitions>"""

# One user task repeated until `done == loops` through an exclusive gateway's back edge.
LOOP_ID = "inspection_loop"
LOOP_BPMN = f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions {_NS} id="loop_defs" targetNamespace="https://qualiflow.example/bench">
  <bpmn:process id="{LOOP_ID}" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="init"/>
    <bpmn:scriptTask id="init" name="Reset counter"><bpmn:script>done = 0</bpmn:script></bpmn:scriptTask>
    <bpmn:sequenceFlow id="f2" sourceRef="init" targetRef="again"/>
    <bpmn:exclusiveGateway id="again"/>
    <bpmn:sequenceFlow id="f3" sourceRef="again" targetRef="inspect"/>
    <bpmn:userTask id="inspect" name="Inspect sample"/>
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

SERIALIZER = BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(SPIFF_CONFIG))

Specs = tuple[Any, dict[str, Any]]  # (process spec, subprocess specs), parsed once per diagram


def parse_diagram(bpmn: bytes, process_id: str) -> Specs:
    """Parse a diagram once; every instance of the run reuses its specs."""
    parser = SpiffBpmnParser()
    parser.add_bpmn_str(bpmn)
    return parser.get_spec(process_id), parser.get_subprocess_specs(process_id)


def save_and_reload(workflow: BpmnWorkflow) -> tuple[BpmnWorkflow, int]:
    """End a request: serialize the workflow to JSON and restore it; return the copy and the JSON's size."""
    state = SERIALIZER.serialize_json(workflow)
    return SERIALIZER.deserialize_json(state), len(state.encode())


def start_instance(specs: Specs, data: dict[str, Any]) -> BpmnWorkflow:
    """Create an instance with `data`, run it to its first wait and save it."""
    workflow = BpmnWorkflow(*specs)
    workflow.get_next_task(state=TaskState.READY).data.update(data)
    workflow.do_engine_steps()
    return save_and_reload(workflow)[0]


def complete_manual_tasks(workflow: BpmnWorkflow, form: dict[str, Any]) -> Iterator[tuple[float, int]]:
    """Complete the instance's manual tasks one request at a time until it ends; yield (seconds, JSON bytes)."""
    while not workflow.is_completed():
        started = time.perf_counter()
        task = workflow.get_next_task(state=TaskState.READY, manual=True)
        if task is None:
            raise RuntimeError("the instance waits on something other than a manual task")
        task.data.update(form)
        task.run()
        workflow.do_engine_steps()
        workflow, size = save_and_reload(workflow)
        yield time.perf_counter() - started, size
    hidden = workflow.get_next_task(state=TaskState.NOT_FINISHED_MASK, max_depth=sys.maxsize)
    if hidden is not None:
        print(f"warning: stopped early: task {hidden.task_spec.name!r} sits at tree depth {hidden.depth}, past "
              "the 1000 levels SpiffWorkflow iterates, so it reports the instance completed", file=sys.stderr)


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # KiB on Linux


def bench_instances(specs: Specs, instances: int) -> dict[str, Any]:
    """Run `instances` instances to the end, alternating the exclusive gateway's branch by severity."""
    latencies: list[float] = []
    sizes: list[int] = []
    started, cpu_started = time.perf_counter(), time.process_time()
    for i in range(instances):
        workflow = start_instance(specs, {"severity": 1 + i % 4})
        for seconds, size in complete_manual_tasks(workflow, {"decision": "approve", "comment": f"instance {i}"}):
            latencies.append(seconds)
            sizes.append(size)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    if len(latencies) < 2:
        raise RuntimeError("need at least two steps for percentiles")
    return {"instances": instances, "steps": len(latencies),
            "instances_per_s": round(instances / elapsed, 2), "steps_per_s": round(len(latencies) / elapsed, 2),
            "cpu_ms_per_step": round(cpu / len(latencies) * 1000, 3),
            "step_p50_ms": _ms(statistics.median(latencies)),
            "step_p95_ms": _ms(statistics.quantiles(latencies, n=20)[-1]),
            "json_bytes_mean": round(statistics.fmean(sizes)), "rss_mb": _peak_rss_mb()}


def bench_growth(loops: int) -> dict[str, Any]:
    """Run one looping instance for `loops` passes; compare the mean cost of its first and last five steps."""
    workflow = start_instance(parse_diagram(LOOP_BPMN.encode(), LOOP_ID), {"loops": loops})
    steps = list(complete_manual_tasks(workflow, {"result": "pass"}))
    first_ms = statistics.fmean(seconds for seconds, _ in steps[:5]) * 1000
    last_ms = statistics.fmean(seconds for seconds, _ in steps[-5:]) * 1000
    return {"loop": loops, "steps": len(steps), "first5_step_ms": round(first_ms, 3),
            "last5_step_ms": round(last_ms, 3), "growth_x": round(last_ms / first_ms, 1),
            "json_bytes_final": steps[-1][1], "rss_mb": _peak_rss_mb()}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bpmn", type=Path, help="BPMN file to run instead of the built-in approval diagram")
    parser.add_argument("--process-id", help="process to run from --bpmn")
    parser.add_argument("--instances", type=int, default=100, help="instances to run (default 100)")
    parser.add_argument("--tasks-growth", action="store_true", help="run one long looping instance instead")
    parser.add_argument("--loop", type=int, default=500, help="passes of the loop with --tasks-growth (default 500)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if bool(args.bpmn) != bool(args.process_id):
        parser.error("--bpmn and --process-id go together")
    if args.instances < 1 or args.loop < 5:
        parser.error("need --instances >= 1 and --loop >= 5")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.tasks_growth:
        result = bench_growth(args.loop)
    elif args.bpmn:
        result = bench_instances(parse_diagram(args.bpmn.read_bytes(), args.process_id), args.instances)
    else:
        result = bench_instances(parse_diagram(APPROVAL_BPMN.encode(), APPROVAL_ID), args.instances)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>16}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

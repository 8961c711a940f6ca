"""Synthetic BPMN diagrams without DI, of any size, for the layout tests and bench/layout.py."""
from __future__ import annotations

import random

HEAD = ('<?xml version="1.0" encoding="UTF-8"?>\n'
        '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="defs" targetNamespace="t">\n')


def _process(body: list[str], lanes: dict[str, list[str]] | None = None) -> bytes:
    lane_set = ""
    if lanes:
        lane_set = '<bpmn:laneSet id="lanes">' + "".join(
            f'<bpmn:lane id="{lane}" name="{lane}">' + "".join(f"<bpmn:flowNodeRef>{n}</bpmn:flowNodeRef>"
                                                              for n in nodes) + "</bpmn:lane>"
            for lane, nodes in lanes.items()) + "</bpmn:laneSet>\n"
    text = HEAD + '<bpmn:process id="big" name="Big" isExecutable="true">\n' + lane_set + "\n".join(body)
    return (text + "\n</bpmn:process>\n</bpmn:definitions>\n").encode("utf-8")


def _flow(flow_id: str, source: str, target: str, name: str = "") -> str:
    label = f' name="{name}"' if name else ""
    return f'<bpmn:sequenceFlow id="{flow_id}" sourceRef="{source}" targetRef="{target}"{label}/>'


def chain(tasks: int) -> bytes:
    """Start, `tasks` user tasks one after another, end."""
    ids = ["start", *(f"t{i}" for i in range(tasks)), "end"]
    body = ['<bpmn:startEvent id="start"/>', '<bpmn:endEvent id="end"/>']
    body += [f'<bpmn:userTask id="t{i}" name="Step {i}"/>' for i in range(tasks)]
    body += [_flow(f"f{i}", a, b) for i, (a, b) in enumerate(zip(ids, ids[1:], strict=False))]
    return _process(body)


def fan_out(branches: int) -> bytes:
    """Start, a parallel split into `branches` tasks, their join, end."""
    body = ['<bpmn:startEvent id="start"/>', '<bpmn:parallelGateway id="split"/>', '<bpmn:parallelGateway id="join"/>',
            '<bpmn:endEvent id="end"/>', _flow("f_start", "start", "split"), _flow("f_end", "join", "end")]
    for i in range(branches):
        body += [f'<bpmn:userTask id="t{i}" name="Branch {i}"/>', _flow(f"f_out{i}", "split", f"t{i}"),
                 _flow(f"f_in{i}", f"t{i}", "join")]
    return _process(body)


def mixed(elements: int, seed: int = 7) -> bytes:
    """About `elements` flow nodes and flows: blocks of sequences, exclusive choices with loops back, parallel
    splits, collapsed subprocesses and boundary timers, spread over three lanes (deterministic for a seed)."""
    rng = random.Random(seed)
    body = ['<bpmn:startEvent id="start" name="Start"/>']
    lanes: dict[str, list[str]] = {"lane_a": ["start"], "lane_b": [], "lane_c": []}
    count, last, n = 1, "start", 0

    def node(tag: str, name: str = "", inner: str = "") -> str:
        nonlocal n, count
        n += 1
        count += 1
        node_id = f"n{n}"
        label = f' name="{name}"' if name else ""
        body.append(f'<bpmn:{tag} id="{node_id}"{label}>{inner}</bpmn:{tag}>')
        lanes[rng.choice(list(lanes))].append(node_id)
        return node_id

    def link(source: str, target: str, name: str = "") -> None:
        nonlocal n, count
        n += 1
        count += 1
        body.append(_flow(f"flow{n}", source, target, name))

    while count < elements:
        kind = rng.randrange(5)
        if kind == 0:  # a short sequence
            for _ in range(3):
                task = node("userTask", f"Task {n}")
                link(last, task)
                last = task
        elif kind == 1:  # a choice whose "rework" branch loops back
            before = node("userTask", f"Check {n}")
            link(last, before)
            choice = node("exclusiveGateway", "OK?")
            link(before, choice)
            fix = node("userTask", f"Rework {n}")
            link(choice, fix, "no")
            link(fix, before)
            last = choice
        elif kind == 2:  # a parallel split of 2 to 6 branches and its join
            split, join = node("parallelGateway"), node("parallelGateway")
            link(last, split)
            for _ in range(rng.randint(2, 6)):
                task = node("serviceTask", f"Branch {n}")
                link(split, task)
                link(task, join)
            last = join
        elif kind == 3:  # a collapsed subprocess with its own small flow
            inner_start, inner_task, inner_end = f"s{n}", f"st{n}", f"se{n}"
            sub = node("subProcess", f"Sub {n}", f'<bpmn:startEvent id="{inner_start}"/>'
                       f'<bpmn:task id="{inner_task}" name="Inner"/><bpmn:endEvent id="{inner_end}"/>'
                       + _flow(f"sf1_{n}", inner_start, inner_task) + _flow(f"sf2_{n}", inner_task, inner_end))
            count += 5
            link(last, sub)
            last = sub
        else:  # a task with a boundary timer leading to an escalation end
            task = node("userTask", f"Timed {n}")
            link(last, task)
            timer = f"b{n}"
            body.append(f'<bpmn:boundaryEvent id="{timer}" name="Late" attachedToRef="{task}">'
                        "<bpmn:timerEventDefinition/></bpmn:boundaryEvent>")
            count += 1
            late_end = node("endEvent", "Escalated")
            link(timer, late_end)
            last = task
    end = node("endEvent", "Done")
    link(last, end)
    return _process(body, lanes)

"""Conventions every shipped procedure keeps: it deploys without lint errors or warnings, its lanes are demo groups,
every user task has a due date, and every way to finish passes an e-signed gate."""
from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from app.engine import parse_diagram
from app.services.demo import GROUPS
from handlers import REGISTRY
from tests.conftest import ROOT

NS = {"bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL",
      "spiffworkflow": "http://spiffworkflow.org/bpmn/schema/1.0/core"}
DIAGRAMS = sorted((ROOT / "processes").glob("*.bpmn"))
DECISIONS = {path.name: path.read_bytes() for path in (ROOT / "processes").glob("*.dmn")}
FORMS = {path.name for path in (ROOT / "forms").glob("*.json")}
DEMO_GROUPS = {name for name, _label, _label_zh in GROUPS}


def _process(path: Path) -> etree._Element:
    root = etree.parse(str(path)).getroot()
    return root.find("bpmn:process[@isExecutable='true']", NS)


def _properties(task: etree._Element) -> dict[str, str]:
    return {p.get("name"): p.get("value") for p in task.iterfind(".//spiffworkflow:property", NS)}


def _local(element: etree._Element) -> str:
    return etree.QName(element).localname


def test_every_procedure_the_issue_names_is_shipped():
    names = {path.stem for path in DIAGRAMS}
    assert {"capa", "recall", "change_control", "lot_release", "supplier_return"} <= names


@pytest.mark.parametrize("path", DIAGRAMS, ids=lambda p: p.stem)
def test_deploys_without_errors_or_warnings(path):
    parsed = parse_diagram(path.read_bytes(), filename=path.name, handlers=REGISTRY, forms=FORMS, decisions=DECISIONS)
    # A timer computed from process data (a deadline) can only be checked when it starts: that note is expected,
    # and so is the note that the decision tables of the other procedures are not this one's.
    assert [p.message for p in parsed.warnings
            if "depends on process data" not in p.message and "no business rule task calls" not in p.message] == []


def test_every_shipped_decision_table_is_used():
    used = {name for path in DIAGRAMS for name in parse_diagram(
        path.read_bytes(), filename=path.name, handlers=REGISTRY, forms=FORMS, decisions=DECISIONS).decisions}
    assert used == set(DECISIONS) and "capa_risk.dmn" in used


@pytest.mark.parametrize("path", DIAGRAMS, ids=lambda p: p.stem)
def test_lanes_are_demo_groups_and_user_tasks_are_due(path):
    process = _process(path)
    lanes = {lane.get("name") for lane in process.iterfind(".//bpmn:lane", NS)}
    assert lanes and lanes <= DEMO_GROUPS, f"lanes without a demo group: {sorted(lanes - DEMO_GROUPS)}"
    undated = [task.get("id") for task in process.iterfind(".//bpmn:userTask", NS)
               if not ({"dueIn", "dueDate"} & set(_properties(task)))]
    assert undated == []


def _finishes_unsigned(end: etree._Element, nodes: dict[str, etree._Element],
                       incoming: dict[str, list[str]]) -> bool:
    """Walk back from an end event; True when the start is reached without passing an e-signed user task.

    A walk also stops at a boundary event or a timer catch event: what follows one is a branch a timer
    starts beside the main flow (an escalation, a reminder, a periodic report), not a way to finish.
    """
    seen, todo = set(), list(incoming.get(end.get("id"), []))
    while todo:
        node_id = todo.pop()
        if node_id in seen:
            continue
        seen.add(node_id)
        node = nodes[node_id]
        kind = _local(node)
        if kind == "startEvent":
            return True
        signed = kind == "userTask" and _properties(node).get("signatureMeaning")
        timer_started = kind == "boundaryEvent" or (
            kind == "intermediateCatchEvent" and node.find("bpmn:timerEventDefinition", NS) is not None)
        if not (signed or timer_started):
            todo.extend(incoming.get(node_id, []))
    return False


@pytest.mark.parametrize("path", DIAGRAMS, ids=lambda p: p.stem)
def test_every_way_to_finish_passes_an_e_signed_gate(path):
    process = _process(path)
    nodes = {node.get("id"): node for node in process if node.get("id")}
    incoming: dict[str, list[str]] = {}
    for flow in process.iterfind("bpmn:sequenceFlow", NS):
        incoming.setdefault(flow.get("targetRef"), []).append(flow.get("sourceRef"))
    ends = [node for node in nodes.values() if _local(node) == "endEvent"]
    assert ends
    assert [end.get("id") for end in ends if _finishes_unsigned(end, nodes, incoming)] == []

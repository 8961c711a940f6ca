"""Tests for app/services/diagram_layout.py on every shipped diagram and on hand-made edge cases."""
from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from lxml import etree

from app.exceptions import InvalidBpmn
from app.services.studio import diagram_layout
from app.services.studio.diagram_layout import BPMN_NS, BPMNDI_NS, DC_NS, DI_NS, DiagramTooLarge, add_layout
from tests.unit.services import large_diagrams

ROOT = Path(__file__).resolve().parents[3]
DIAGRAMS = sorted((ROOT / "processes").glob("*.bpmn"))
FLOW_NODES = ("startEvent", "endEvent", "intermediateCatchEvent", "intermediateThrowEvent", "boundaryEvent", "task",
              "userTask", "manualTask", "serviceTask", "scriptTask", "sendTask", "receiveTask", "businessRuleTask",
              "callActivity", "subProcess", "transaction", "adHocSubProcess", "exclusiveGateway", "inclusiveGateway",
              "parallelGateway", "eventBasedGateway", "complexGateway")
TOUCH = 0.5  # pixels of rounding allowed between a waypoint and its shape's outline


def bpmn(tag: str) -> str:
    return f"{{{BPMN_NS}}}{tag}"


def bounds(element) -> tuple[float, float, float, float]:
    box = element.find(f"{{{DC_NS}}}Bounds")
    return tuple(float(box.get(k)) for k in ("x", "y", "width", "height"))


class Drawing:
    """The laid-out file, read back: the shapes and edges of each plane."""

    def __init__(self, data: bytes) -> None:
        self.root = etree.fromstring(add_layout(data))
        self.by_id = {el.get("id"): el for el in self.root.iter() if isinstance(el.tag, str) and el.get("id")}
        self.planes = {}
        for plane in self.root.iter(f"{{{BPMNDI_NS}}}BPMNPlane"):
            shapes = {s.get("bpmnElement"): bounds(s) for s in plane.iter(f"{{{BPMNDI_NS}}}BPMNShape")}
            edges = {e.get("bpmnElement"): [(float(w.get("x")), float(w.get("y")))
                                            for w in e.iter(f"{{{DI_NS}}}waypoint")]
                     for e in plane.iter(f"{{{BPMNDI_NS}}}BPMNEdge")}
            self.planes[plane.get("bpmnElement")] = (shapes, edges)

    def plane_of(self, element_id: str):
        return next(p for p in self.planes.values() if element_id in p[0] or element_id in p[1])


def flow_nodes(container) -> list:
    return [el for el in container if isinstance(el.tag, str) and etree.QName(el).localname in FLOW_NODES]


def on_outline(point, box) -> bool:
    x, y = point
    bx, by, bw, bh = box
    inside = bx - TOUCH <= x <= bx + bw + TOUCH and by - TOUCH <= y <= by + bh + TOUCH
    edge = min(abs(x - bx), abs(x - bx - bw), abs(y - by), abs(y - by - bh)) <= TOUCH
    return inside and edge


def overlap(a, b) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


@pytest.fixture(params=DIAGRAMS, ids=[p.name for p in DIAGRAMS], scope="module")
def drawing(request) -> Drawing:
    return Drawing(request.param.read_bytes())


def test_the_shipped_diagrams_have_no_layout_of_their_own():
    assert DIAGRAMS and all(b"BPMNDiagram" not in path.read_bytes() for path in DIAGRAMS)


def test_every_flow_node_is_drawn_inside_its_lane(drawing: Drawing):
    shapes, _ = drawing.planes[drawing.root.find(bpmn("collaboration")).get("id")]
    for process in drawing.root.iter(bpmn("process")):
        lane_of = {ref.text.strip(): lane.get("id") for lane in process.iter(bpmn("lane"))
                   for ref in lane.findall(bpmn("flowNodeRef"))}
        for node in flow_nodes(process):
            node_id = node.get("id")
            assert node_id in shapes, f"{node_id} has no shape"
            if node_id in lane_of and node.tag != bpmn("boundaryEvent"):
                x, y, w, h = shapes[node_id]
                lx, ly, lw, lh = shapes[lane_of[node_id]]
                assert lx <= x and x + w <= lx + lw and ly <= y and y + h <= ly + lh, \
                    f"{node_id} lies outside lane {lane_of[node_id]}"


def test_subprocesses_are_collapsed_with_a_plane_of_their_own(drawing: Drawing):
    for sub in drawing.root.iter(bpmn("subProcess")):
        shape = next(s for s in drawing.root.iter(f"{{{BPMNDI_NS}}}BPMNShape") if s.get("bpmnElement") == sub.get("id"))
        assert shape.get("isExpanded") == "false"
        shapes, _ = drawing.planes[sub.get("id")]
        assert {n.get("id") for n in flow_nodes(sub)} <= set(shapes)


def test_no_two_shapes_overlap(drawing: Drawing):
    hosts = {el.get("id"): el.get("attachedToRef") for el in drawing.root.iter(bpmn("boundaryEvent"))}
    for shapes, _ in drawing.planes.values():
        nodes = {k: v for k, v in shapes.items() if drawing.by_id[k].tag in {bpmn(t) for t in FLOW_NODES}}
        for (a, box_a), (b, box_b) in itertools.combinations(sorted(nodes.items()), 2):
            if hosts.get(a) == b or hosts.get(b) == a:
                continue  # a boundary event sits on its host's edge
            assert not overlap(box_a, box_b), f"{a} overlaps {b}"


def test_every_sequence_flow_runs_from_its_source_to_its_target(drawing: Drawing):
    for flow in drawing.root.iter(bpmn("sequenceFlow")):
        shapes, edges = drawing.plane_of(flow.get("id"))
        points = edges[flow.get("id")]
        assert len(points) >= 2
        assert on_outline(points[0], shapes[flow.get("sourceRef")]), f"{flow.get('id')} does not leave its source"
        assert on_outline(points[-1], shapes[flow.get("targetRef")]), f"{flow.get('id')} does not reach its target"
        for (x0, y0), (x1, y1) in itertools.pairwise(points):
            assert x0 == x1 or y0 == y1, f"{flow.get('id')} has a slanted segment"


def test_named_flows_events_and_gateways_have_labels(drawing: Drawing):
    labelled = {el.getparent().get("bpmnElement") for el in drawing.root.iter(f"{{{BPMNDI_NS}}}BPMNLabel")}
    for element in drawing.root.iter(bpmn("sequenceFlow"), bpmn("exclusiveGateway"), bpmn("endEvent"),
                                     bpmn("startEvent"), bpmn("boundaryEvent")):
        if (element.get("name") or "").strip():
            assert element.get("id") in labelled


def test_the_layout_is_deterministic():
    data = DIAGRAMS[0].read_bytes()
    assert add_layout(data) == add_layout(data)


MINIMAL = b"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d" targetNamespace="t">
  <bpmn:process id="p" isExecutable="true">
    <bpmn:startEvent id="s"/>
    <bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="wait"/>
    <bpmn:intermediateCatchEvent id="wait"><bpmn:timerEventDefinition/></bpmn:intermediateCatchEvent>
    <bpmn:sequenceFlow id="f2" sourceRef="wait" targetRef="sub"/>
    <bpmn:subProcess id="sub">
      <bpmn:startEvent id="sub_s"/>
      <bpmn:sequenceFlow id="sf" sourceRef="sub_s" targetRef="sub_e"/>
      <bpmn:endEvent id="sub_e"/>
    </bpmn:subProcess>
    <bpmn:sequenceFlow id="f3" sourceRef="sub" targetRef="e"/>
    <bpmn:endEvent id="e"/>
  </bpmn:process>
</bpmn:definitions>
"""


def test_a_process_without_lanes_or_pool_gets_one_pool():
    drawing = Drawing(MINIMAL)
    participant = drawing.root.find(f"{bpmn('collaboration')}/{bpmn('participant')}")
    assert participant.get("processRef") == "p"
    shapes, edges = drawing.planes[drawing.root.find(bpmn("collaboration")).get("id")]
    assert {"s", "wait", "sub", "e", participant.get("id")} <= set(shapes)
    assert shapes["s"][0] < shapes["wait"][0] < shapes["sub"][0] < shapes["e"][0]  # columns by rank
    assert set(drawing.planes["sub"][1]) == {"sf"}


def test_existing_layout_is_kept_byte_for_byte():
    laid_out = add_layout(MINIMAL)
    assert add_layout(laid_out) == laid_out
    hand_made = laid_out.replace(b'x="', b'x="1')  # any DI at all, however odd, is the author's
    assert add_layout(hand_made) == hand_made


@pytest.mark.parametrize("data, message", [
    (b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
     b'<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL">&x;</bpmn:definitions>',
     "DOCTYPE and entities are not allowed"),
    (b'<!DOCTYPE lol [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><x>&b;</x>', "DOCTYPE and entities are not allowed"),
    (b"<bpmn:definitions", "malformed XML"),
    (b'<definitions xmlns="urn:other"/>', "the root element must be bpmn:definitions"),
])
def test_unsafe_or_broken_input_is_refused_with_a_clear_error(data, message):
    with pytest.raises(InvalidBpmn) as refused:
        add_layout(data)
    assert message in refused.value.message


# --- diagrams of any size (issue 17) ---------------------------------------------------------------------------

def assert_drawn_whole(drawing: Drawing) -> None:
    """Every flow node has bounds, no two overlap (but a boundary event on its host), every flow is orthogonal
    and runs from its source's outline to its target's."""
    hosts = {el.get("id"): el.get("attachedToRef") for el in drawing.root.iter(bpmn("boundaryEvent"))}
    for container in [*drawing.root.iter(bpmn("process")), *drawing.root.iter(bpmn("subProcess"))]:
        nodes = [n.get("id") for n in flow_nodes(container)]
        shapes, edges = drawing.plane_of(nodes[0])
        assert all(n in shapes and shapes[n][2] > 0 and shapes[n][3] > 0 for n in nodes)
        # Sweep from left to right: only shapes whose x-ranges meet can overlap.
        boxes = sorted((shapes[n], n) for n in nodes)
        for i, (box, node_id) in enumerate(boxes):
            for other, other_id in itertools.takewhile(lambda b, box=box: b[0][0] < box[0] + box[2], boxes[i + 1:]):
                if hosts.get(node_id) != other_id and hosts.get(other_id) != node_id:
                    assert not overlap(box, other), f"{node_id} overlaps {other_id}"
        for flow in container.findall(bpmn("sequenceFlow")):
            points = edges[flow.get("id")]
            assert on_outline(points[0], shapes[flow.get("sourceRef")])
            assert on_outline(points[-1], shapes[flow.get("targetRef")])
            assert all(x0 == x1 or y0 == y1 for (x0, y0), (x1, y1) in itertools.pairwise(points))


def test_a_chain_of_600_steps_is_laid_out_left_to_right():
    drawing = Drawing(large_diagrams.chain(600))  # a recursive walk would hit Python's recursion limit
    assert_drawn_whole(drawing)
    shapes, _ = drawing.plane_of("t0")
    assert [shapes[f"t{i}"][0] for i in range(600)] == sorted({shapes[f"t{i}"][0] for i in range(600)})


def test_a_300_way_fan_out_is_laid_out():
    drawing = Drawing(large_diagrams.fan_out(300))
    assert_drawn_whole(drawing)
    shapes, _ = drawing.plane_of("t0")
    assert len({shapes[f"t{i}"][0] for i in range(300)}) == 1  # the branches share one column


def test_2000_elements_with_gateways_loops_subprocesses_and_lanes_are_laid_out():
    data = large_diagrams.mixed(2000)
    assert diagram_layout.count_elements(diagram_layout.parse(data)) >= 2000
    drawing = Drawing(data)
    assert_drawn_whole(drawing)
    assert len(drawing.planes) > 10  # the main plane and one per collapsed subprocess


def routing_work(data: bytes, monkeypatch) -> int:
    """How many grid steps the router checked for shapes while laying out data."""
    checks = itertools.count()
    blocked = diagram_layout._Router.blocked
    monkeypatch.setattr(diagram_layout._Router, "blocked", lambda *args: next(checks) is None or blocked(*args))
    add_layout(data)
    monkeypatch.undo()
    return next(checks)


@pytest.mark.parametrize("make, size", [(large_diagrams.fan_out, 50), (large_diagrams.chain, 150),
                                        (large_diagrams.mixed, 300)])
def test_routing_work_grows_linearly_with_the_diagram(make, size, monkeypatch):
    # Four times the elements, about four times the work (an all-pairs router does sixteen times or more).
    assert routing_work(make(4 * size), monkeypatch) < 6 * routing_work(make(size), monkeypatch)


def test_a_diagram_over_the_limit_is_refused_with_a_clear_message():
    data = large_diagrams.chain(100)  # 102 nodes and 101 flows
    assert diagram_layout.count_elements(diagram_layout.parse(data)) == 203
    assert b"BPMNDiagram" in add_layout(data, max_elements=203)
    with pytest.raises(DiagramTooLarge) as refused:
        add_layout(data, max_elements=202)
    assert refused.value.status == 422
    assert refused.value.message.startswith("This diagram has 203 elements and no layout of its own (BPMN DI); "
                                            "Qualiflow lays out diagrams of up to 202 elements.")


def test_a_diagram_with_its_own_layout_is_never_refused():
    laid_out = add_layout(large_diagrams.chain(100))
    assert add_layout(laid_out, max_elements=10) == laid_out

"""Lay out BPMN diagrams that carry no diagram interchange (DI), so bpmn-js can draw them.

The shipped diagrams are written by hand without coordinates, and the usual auto-layout (bpmn-auto-layout)
knows no lanes. Here each pool shows its lanes as horizontal bands; flow nodes stand in columns by rank
(the longest path from the start events once back edges are removed) in the band of their lane; sequence
flows are routed orthogonally around the shapes. A collapsed subprocess gets a plane of its own, laid out
the same way, which bpmn-js offers as a drill-down. A diagram that already has DI is returned unchanged.
Every step is iterative and near-linear in the number of elements; above a limit the layout is refused.
"""
from __future__ import annotations

import heapq
import itertools
import math
import re
from bisect import bisect_left, bisect_right
from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from flask_babel import gettext as _
from lxml import etree

from app.exceptions import BpmnProblem, InvalidBpmn, QualiflowError

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
BPMNDI_NS = "http://www.omg.org/spec/BPMN/20100524/DI"
DC_NS = "http://www.omg.org/spec/DD/20100524/DC"
DI_NS = "http://www.omg.org/spec/DD/20100524/DI"
DI_NSMAP = {"bpmndi": BPMNDI_NS, "dc": DC_NS, "di": DI_NS}

MAX_BYTES = 5_000_000
MAX_ELEMENTS = 5_000  # laid out in about 1.5 s; the default of the DIAGRAM_LAYOUT_MAX_ELEMENTS setting

# Shape sizes as bpmn-js draws them by default.
TASK_SIZE = (100, 80)
EVENT_SIZE = (36, 36)
GATEWAY_SIZE = (50, 50)

POOL_HEADER = 30  # the pool's name band on the left
LANE_HEADER = 30  # each lane's (and parent lane's) name band
POOL_GAP = 60  # between pools of one collaboration
COLUMN = 160  # one rank: a task plus the gap the routes run in
SLOT = 140  # one row of a lane: a task with room above and below for routes and boundary events
CONTENT_PAD = 20  # between the lane headers and the first column
ORIGIN = (100, 60)
CHANNEL_OFFSET = 15  # routes run this far below the top of a row
OBSTACLE_MARGIN = 6  # routes keep this far from shapes
BEND_COST = 30
PORT_COST = 20  # leaving or entering a shape other than on the side that faces the flow
REUSE_COST = 12  # running along a route already taken by another flow
LABEL_LINE = 14
LABEL_CHAR = 6.5
LABEL_WIDTH = 110

_DTD_MARKUP = re.compile(rb"<!(?:DOCTYPE|ENTITY)")
_EVENTS = ("startEvent", "endEvent", "intermediateCatchEvent", "intermediateThrowEvent", "boundaryEvent")
_GATEWAYS = ("exclusiveGateway", "inclusiveGateway", "parallelGateway", "eventBasedGateway", "complexGateway")
_ACTIVITIES = ("task", "userTask", "manualTask", "serviceTask", "scriptTask", "sendTask", "receiveTask",
               "businessRuleTask", "callActivity")
_SUBPROCESSES = ("subProcess", "transaction", "adHocSubProcess")


def _bpmn(tag: str) -> str:
    return f"{{{BPMN_NS}}}{tag}"


def _local(element: etree._Element) -> str:
    return etree.QName(element).localname


_FLOW_NODE_TAGS = frozenset(_bpmn(t) for t in (*_EVENTS, *_GATEWAYS, *_ACTIVITIES, *_SUBPROCESSES))
_DRAWN_TAGS = tuple(_FLOW_NODE_TAGS | {_bpmn(t) for t in ("sequenceFlow", "messageFlow", "lane", "participant")})


@dataclass(frozen=True)
class Box:
    x: float
    y: float
    w: float
    h: float

    @property
    def right(self) -> float:
        return self.x + self.w

    @property
    def bottom(self) -> float:
        return self.y + self.h

    @property
    def cx(self) -> float:
        return self.x + self.w / 2

    @property
    def cy(self) -> float:
        return self.y + self.h / 2

    def grown(self, margin: float) -> Box:
        return Box(self.x - margin, self.y - margin, self.w + 2 * margin, self.h + 2 * margin)


Point = tuple[float, float]


@dataclass
class Plane:
    """What one BPMNPlane shows: shapes (with optional label bounds) and edges, in drawing order."""

    element_id: str
    shapes: list[tuple[etree._Element, Box, dict]] = field(default_factory=list)
    edges: list[tuple[etree._Element, list[Point]]] = field(default_factory=list)
    boxes: dict[str, Box] = field(default_factory=dict)
    labels: dict[str, Box] = field(default_factory=dict)  # external labels of events and gateways


class DiagramTooLarge(QualiflowError):
    """The diagram has too many elements to be laid out here."""

    status = 422

    def __init__(self, elements: int, limit: int) -> None:
        super().__init__(_("This diagram has %(elements)s elements and no layout of its own (BPMN DI); Qualiflow lays "
                           "out diagrams of up to %(limit)s elements. Draw it in a BPMN modeler, which saves its "
                           "layout, or split it into smaller processes.", elements=elements, limit=limit))
        self.elements = elements
        self.limit = limit


def refuse(message: str, line: int | None = None) -> InvalidBpmn:
    return InvalidBpmn([BpmnProblem(message, line=line)])


def parse(data: bytes) -> etree._Element:
    """Parse BPMN XML without loading a DTD, expanding an entity or touching the network."""
    if len(data) > MAX_BYTES:
        raise refuse(f"the diagram is larger than {MAX_BYTES} bytes")
    markup = _DTD_MARKUP.search(data)
    if markup:  # the vehicle of XXE and entity expansion: refused before any parser sees it
        raise refuse("DOCTYPE and entities are not allowed", data.count(b"\n", 0, markup.start()) + 1)
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
                             huge_tree=False, remove_blank_text=False)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise refuse(f"malformed XML: {exc.msg or exc}", exc.lineno) from exc
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise refuse("DOCTYPE and entities are not allowed", 1)
    if root.tag != _bpmn("definitions"):
        raise refuse("the root element must be bpmn:definitions", root.sourceline)
    return root


def has_layout(root: etree._Element) -> bool:
    return root.find(f"{{{BPMNDI_NS}}}BPMNDiagram") is not None


def count_elements(root: etree._Element) -> int:
    """Count what a layout draws: flow nodes (in subprocesses too), flows, lanes and pools."""
    return sum(1 for _element in root.iter(*_DRAWN_TAGS))


def add_layout(data: bytes, max_elements: int = MAX_ELEMENTS) -> bytes:
    """Return the diagram with DI added; a diagram that already has DI comes back byte for byte.

    Raise DiagramTooLarge above max_elements (see count_elements): the time grows with the size.
    """
    root = parse(data)
    if has_layout(root):
        return data
    elements = count_elements(root)
    if elements > max_elements:
        raise DiagramTooLarge(elements, max_elements)
    _Layout(root).run()
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _shape_size(element: etree._Element) -> tuple[int, int]:
    name = _local(element)
    if name in _EVENTS:
        return EVENT_SIZE
    if name in _GATEWAYS:
        return GATEWAY_SIZE
    return TASK_SIZE


def _label_box(text: str, cx: float, top: float) -> Box:
    """Bounds of an external label centred under (cx, top), wrapped at LABEL_WIDTH."""
    width = min(max(len(text) * LABEL_CHAR, 30), LABEL_WIDTH)
    lines = max(1, math.ceil(len(text) * LABEL_CHAR / LABEL_WIDTH))
    return Box(round(cx - width / 2), round(top), round(width), lines * LABEL_LINE)


class _Ids:
    """Hand out new ids that clash with none in the document."""

    def __init__(self, root: etree._Element) -> None:
        self.taken = {el.get("id") for el in root.iter(etree.Element) if el.get("id")}

    def new(self, wanted: str) -> str:
        candidate, n = wanted, 1
        while candidate in self.taken:
            n += 1
            candidate = f"{wanted}_{n}"
        self.taken.add(candidate)
        return candidate


@dataclass
class _LaneNode:
    element: etree._Element
    depth: int
    children: list[_LaneNode]
    first_row: int = 0
    last_row: int = 0


class _Layout:
    def __init__(self, root: etree._Element) -> None:
        self.root = root
        self.ids = _Ids(root)
        self.by_id = {el.get("id"): el for el in root.iter(etree.Element) if el.get("id")}

    def run(self) -> None:
        collaboration = self.root.find(_bpmn("collaboration"))
        if collaboration is None:
            collaboration = self._add_collaboration()
        main = Plane(collaboration.get("id"))
        self._layout_pools(collaboration, main)
        planes = [main]
        for sub in self.root.iter(*(_bpmn(t) for t in _SUBPROCESSES)):
            planes.append(self._layout_subprocess(sub))
        for plane in planes:
            self._write(plane)

    def _add_collaboration(self) -> etree._Element:
        """Wrap the processes in pools: lanes are drawn inside a participant."""
        processes = self.root.findall(_bpmn("process"))
        collaboration = etree.Element(_bpmn("collaboration"), id=self.ids.new("collaboration"))
        for process in processes:
            etree.SubElement(collaboration, _bpmn("participant"), id=self.ids.new(f"{process.get('id')}_participant"),
                             name=process.get("name") or process.get("id") or "", processRef=process.get("id") or "")
        if processes:
            processes[0].addprevious(collaboration)
        else:
            self.root.append(collaboration)
        self.by_id.update({p.get("id"): p for p in collaboration})
        return collaboration

    # --- pools and lanes -------------------------------------------------------------------------

    def _layout_pools(self, collaboration: etree._Element, plane: Plane) -> None:
        x0, y = ORIGIN
        pools = []
        for participant in collaboration.findall(_bpmn("participant")):
            process = self.by_id.get(participant.get("processRef") or "")
            if process is None or process.tag != _bpmn("process"):
                pools.append((participant, None, None, None, 100.0))
                continue
            lanes, rows, row_of = self._lanes(process)
            placed = _place_nodes(process, rows, row_of)
            pools.append((participant, process, lanes, placed, float(sum(placed.row_heights))))
        depth = max((_lane_depth(p[2]) for p in pools if p[2]), default=0)
        content_x = x0 + POOL_HEADER + depth * LANE_HEADER + CONTENT_PAD
        columns = max((p[3].columns for p in pools if p[3]), default=1)
        width = POOL_HEADER + depth * LANE_HEADER + 2 * CONTENT_PAD + columns * COLUMN
        channels: list[float] = []
        for participant, _process, lanes, placed, height in pools:
            pool = Box(x0, y, width, height)
            plane.shapes.append((participant, pool, {"isHorizontal": "true"}))
            plane.boxes[participant.get("id")] = pool
            if placed is not None:
                row_tops = list(itertools.accumulate([y, *placed.row_heights[:-1]]))
                self._lane_shapes(lanes, placed, row_tops, pool, plane)
                placed.emit(content_x, row_tops, plane)
                channels += placed.channels(row_tops)
            y += height + POOL_GAP
        boundaries = [content_x + c * COLUMN for c in range(columns + 1)]
        self._route_flows(plane, [p[1] for p in pools if p[1] is not None], boundaries, channels)
        self._route_message_flows(collaboration, plane)

    def _lanes(self, process: etree._Element) -> tuple[list[_LaneNode], list[str | None], dict[str, int]]:
        """Return the lane tree, one row per leaf lane (plus one for nodes in no lane) and each node's row."""
        rows: list[str | None] = []
        row_of: dict[str, int] = {}
        tree = _lane_tree(process.find(_bpmn("laneSet")))
        order = list(_walk(tree))
        for node in order:  # a row per leaf lane, top to bottom in document order
            if not node.children:
                node.first_row = node.last_row = len(rows)
                rows.append(node.element.get("id"))
        for node in reversed(order):  # inner lanes before the lanes around them
            if node.children:
                node.first_row, node.last_row = node.children[0].first_row, node.children[-1].last_row
            for ref in node.element.findall(_bpmn("flowNodeRef")):
                row_of.setdefault((ref.text or "").strip(), node.first_row if node.children else node.last_row)
        # A node listed both in a parent lane and in one of its children belongs to the child (the deepest row).
        for node in _walk(tree):
            if not node.children:
                for ref in node.element.findall(_bpmn("flowNodeRef")):
                    row_of[(ref.text or "").strip()] = node.last_row
        in_no_lane = [el.get("id") for el in process if el.tag in _FLOW_NODE_TAGS
                      and el.tag != _bpmn("boundaryEvent") and el.get("id") not in row_of]  # those sit on a host
        if in_no_lane or not rows:
            rows.append(None)
            for node_id in in_no_lane:
                row_of[node_id] = len(rows) - 1
        return tree, rows, row_of

    def _lane_shapes(self, lanes: list[_LaneNode], placed: _Placed, row_tops: list[float], pool: Box,
                     plane: Plane) -> None:
        for lane in _walk(lanes):
            top = row_tops[lane.first_row]
            bottom = row_tops[lane.last_row] + placed.row_heights[lane.last_row]
            x = pool.x + POOL_HEADER + lane.depth * LANE_HEADER
            box = Box(x, top, pool.right - x, bottom - top)
            plane.shapes.append((lane.element, box, {"isHorizontal": "true"}))
            plane.boxes[lane.element.get("id")] = box

    # --- subprocess planes -----------------------------------------------------------------------

    def _layout_subprocess(self, sub: etree._Element) -> Plane:
        plane = Plane(sub.get("id"))
        row_of = {el.get("id"): 0 for el in sub if el.tag in _FLOW_NODE_TAGS}
        placed = _place_nodes(sub, [None], row_of)
        x0, y0 = ORIGIN
        placed.emit(x0, [y0], plane)
        boundaries = [x0 + c * COLUMN for c in range(placed.columns + 1)]
        self._route_flows(plane, [sub], boundaries, placed.channels([y0]))
        return plane

    # --- edges -----------------------------------------------------------------------------------

    def _route_flows(self, plane: Plane, containers: list[etree._Element], boundaries: list[float],
                     channels: list[float]) -> None:
        node_boxes = {k: v for k, v in plane.boxes.items() if self.by_id[k].tag in _FLOW_NODE_TAGS}
        router = _Router(node_boxes, boundaries, channels)
        for container in containers:
            for flow in container.findall(_bpmn("sequenceFlow")):
                source, target = flow.get("sourceRef"), flow.get("targetRef")
                if source in node_boxes and target in node_boxes:
                    plane.edges.append((flow, router.route(source, target,
                                                           prefer_down=self._is_boundary(source))))

    def _is_boundary(self, element_id: str) -> bool:
        return self.by_id[element_id].tag == _bpmn("boundaryEvent")

    def _route_message_flows(self, collaboration: etree._Element, plane: Plane) -> None:
        for flow in collaboration.findall(_bpmn("messageFlow")):
            source, target = plane.boxes.get(flow.get("sourceRef")), plane.boxes.get(flow.get("targetRef"))
            if source is None or target is None:
                continue
            sx = _clamp(target.cx, source.x, source.right) if source.w > TASK_SIZE[0] else source.cx
            tx = _clamp(sx, target.x, target.right) if target.w > TASK_SIZE[0] else target.cx
            start = (sx, source.bottom if source.cy < target.cy else source.y)
            end = (tx, target.y if source.cy < target.cy else target.bottom)
            middle = (start[1] + end[1]) / 2
            plane.edges.append((flow, _simplify([start, (sx, middle), (tx, middle), end])))

    # --- writing ---------------------------------------------------------------------------------

    def _write(self, plane: Plane) -> None:
        diagram = etree.SubElement(self.root, f"{{{BPMNDI_NS}}}BPMNDiagram", nsmap=DI_NSMAP,
                                   id=self.ids.new(f"{plane.element_id}_diagram"))
        xml_plane = etree.SubElement(diagram, f"{{{BPMNDI_NS}}}BPMNPlane", id=self.ids.new(f"{plane.element_id}_plane"),
                                     bpmnElement=plane.element_id)
        for element, box, attributes in plane.shapes:
            shape = etree.SubElement(xml_plane, f"{{{BPMNDI_NS}}}BPMNShape", id=self.ids.new(f"{element.get('id')}_di"),
                                     bpmnElement=element.get("id"))
            for key, value in attributes.items():
                if key != "label":
                    shape.set(key, value)
            _bounds(shape, box)
            if "label" in attributes:
                _bounds(etree.SubElement(shape, f"{{{BPMNDI_NS}}}BPMNLabel"), attributes["label"])
        for flow, points in plane.edges:
            edge = etree.SubElement(xml_plane, f"{{{BPMNDI_NS}}}BPMNEdge", id=self.ids.new(f"{flow.get('id')}_di"),
                                    bpmnElement=flow.get("id"))
            for x, y in points:
                etree.SubElement(edge, f"{{{DI_NS}}}waypoint", x=_num(x), y=_num(y))
            name = (flow.get("name") or "").strip()
            if name:
                source_label = plane.labels.get(flow.get("sourceRef"))
                below = source_label.h + 4 if source_label is not None else 0
                _bounds(etree.SubElement(edge, f"{{{BPMNDI_NS}}}BPMNLabel"), _edge_label(name, points, below))


def _lane_tree(lane_set: etree._Element | None) -> list[_LaneNode]:
    """Read a laneSet and its nested childLaneSets into a tree (a loop, not recursion: nesting has no limit)."""
    tree: list[_LaneNode] = []
    pending = [(lane_set, 0, tree)]
    while pending:
        found, depth, siblings = pending.pop()
        for lane in ([] if found is None else found.findall(_bpmn("lane"))):
            node = _LaneNode(lane, depth, [])
            siblings.append(node)
            pending.append((lane.find(_bpmn("childLaneSet")), depth + 1, node.children))
    return tree


def _walk(lanes: list[_LaneNode]) -> Iterable[_LaneNode]:
    """Yield every lane of the tree, each before its children (depth first, in document order)."""
    stack = lanes[::-1]
    while stack:
        lane = stack.pop()
        yield lane
        stack.extend(lane.children[::-1])


def _lane_depth(lanes: list[_LaneNode]) -> int:
    return max((lane.depth + 1 for lane in _walk(lanes)), default=0)


def _clamp(value: float, low: float, high: float) -> float:
    return max(low + 10, min(high - 10, value))


def _num(value: float) -> str:
    return str(int(round(value)))


def _bounds(parent: etree._Element, box: Box) -> None:
    etree.SubElement(parent, f"{{{DC_NS}}}Bounds", x=_num(box.x), y=_num(box.y), width=_num(box.w), height=_num(box.h))


def _edge_label(name: str, points: list[Point], below: float) -> Box:
    """Put a flow's label beside its first segment, just after it leaves the source (and, going down,
    `below` further on: past the label of the source event or gateway)."""
    (x0, y0), (x1, y1) = points[0], points[1]
    width = min(max(len(name) * LABEL_CHAR, 30), LABEL_WIDTH)
    lines = max(1, math.ceil(len(name) * LABEL_CHAR / LABEL_WIDTH))
    height = lines * LABEL_LINE
    if y0 == y1:  # horizontal: above the line, on the side it runs to
        x = x0 + 6 if x1 >= x0 else x0 - 6 - width
        return Box(round(x), round(y0 - 4 - height), round(width), height)
    if y1 < y0:  # up: left of the line, clear of a label on a flow leaving to the right
        return Box(round(x0 - 6 - width), round(y0 - 6 - height), round(width), height)
    return Box(round(x0 + 6), round(y0 + 6 + below), round(width), height)


# --- placing flow nodes ---------------------------------------------------------------------------


@dataclass
class _Placed:
    """Flow nodes of one container placed in (row, rank, slot), before the rows get their y."""

    nodes: list[etree._Element]
    boundary: list[tuple[etree._Element, str]]  # (boundary event, host id)
    rank: dict[str, int]
    row_of: dict[str, int]
    slot: dict[str, int]
    row_slots: list[int]

    @property
    def row_heights(self) -> list[float]:
        return [n * SLOT for n in self.row_slots]

    @property
    def columns(self) -> int:
        return max(self.rank.values(), default=0) + 1

    def channels(self, row_tops: list[float]) -> list[float]:
        """The y of the free corridor at the top of every slot, where routes cross a lane."""
        return [top + s * SLOT + CHANNEL_OFFSET for top, n in zip(row_tops, self.row_slots, strict=True)
                for s in range(n)]

    def emit(self, content_x: float, row_tops: list[float], plane: Plane) -> None:
        for node in self.nodes:
            node_id = node.get("id")
            w, h = _shape_size(node)
            cx = content_x + self.rank[node_id] * COLUMN + COLUMN / 2
            cy = row_tops[self.row_of[node_id]] + self.slot[node_id] * SLOT + SLOT / 2
            box = Box(cx - w / 2, cy - h / 2, w, h)
            plane.boxes[node_id] = box
            attributes = _shape_attributes(node, box)
            if "label" in attributes:
                plane.labels[node_id] = attributes["label"]
            plane.shapes.append((node, box, attributes))
        per_host: dict[str, int] = defaultdict(int)
        label_drop: dict[str, float] = defaultdict(float)
        for event, host_id in self.boundary:
            host = plane.boxes.get(host_id)
            if host is None:
                continue
            index = per_host[host_id]
            per_host[host_id] += 1
            # Along the bottom edge from the right, then along the top edge: never on top of each other.
            along = host.right - EVENT_SIZE[0] / 2 - 2 - (index % 3) * (EVENT_SIZE[0] + 4)
            cy = host.bottom if index < 3 else host.y
            box = Box(along - EVENT_SIZE[0] / 2, cy - EVENT_SIZE[1] / 2, *EVENT_SIZE)
            plane.boxes[event.get("id")] = box
            attributes = _shape_attributes(event, box)
            if "label" in attributes:  # the labels of a host's events stack downwards instead of overlapping
                label = attributes["label"]
                attributes["label"] = plane.labels[event.get("id")] = Box(
                    label.x, label.y + label_drop[host_id], label.w, label.h)
                label_drop[host_id] += label.h + 2
            plane.shapes.append((event, box, attributes))


def _shape_attributes(node: etree._Element, box: Box) -> dict:
    name = _local(node)
    attributes: dict = {}
    if name == "exclusiveGateway":
        attributes["isMarkerVisible"] = "true"
    if name in _SUBPROCESSES:
        attributes["isExpanded"] = "false"
    label = (node.get("name") or "").strip()
    if label and (name in _EVENTS or name in _GATEWAYS):
        attributes["label"] = _label_box(label, box.cx, box.bottom + 4)
    return attributes


def _place_nodes(container: etree._Element, rows: list[str | None], row_of: dict[str, int]) -> _Placed:
    nodes = [el for el in container if el.tag in _FLOW_NODE_TAGS and el.tag != _bpmn("boundaryEvent")]
    node_ids = [n.get("id") for n in nodes]
    known = set(node_ids)
    hosts = {el.get("id"): el.get("attachedToRef") for el in container if el.tag == _bpmn("boundaryEvent")}
    boundary = [(el, el.get("attachedToRef")) for el in container if el.tag == _bpmn("boundaryEvent")
                and el.get("attachedToRef") in known]
    successors: dict[str, list[str]] = {n: [] for n in node_ids}
    for flow in container.findall(_bpmn("sequenceFlow")):
        # A flow leaving a boundary event ranks as if it left the event's host.
        source = hosts.get(flow.get("sourceRef"), flow.get("sourceRef"))
        target = flow.get("targetRef")
        if source in known and target in known:
            successors[source].append(target)
    forward = _forward_edges(node_ids, successors)
    rank = _longest_path_ranks(node_ids, forward)
    order = {n: i for i, n in enumerate(node_ids)}
    groups: dict[tuple[int, int], list[str]] = defaultdict(list)
    for node_id in node_ids:
        groups[(row_of.get(node_id, len(rows) - 1), rank[node_id])].append(node_id)
    row_of = {n: row_of.get(n, len(rows) - 1) for n in node_ids}
    row_slots = [1] * len(rows)
    for (row, _rank), members in groups.items():
        row_slots[row] = max(row_slots[row], len(members))
    predecessors: dict[str, list[str]] = defaultdict(list)
    for source, targets in forward.items():
        for target in targets:
            predecessors[target].append(source)
    # Rows are SLOT-high bands stacked in order: a node's "height" in slots from the top of the pool.
    row_start = list(itertools.accumulate([0, *row_slots[:-1]]))
    slot: dict[str, int] = {}
    for (row, _rank), members in sorted(groups.items(), key=lambda item: (item[0][1], item[0][0])):
        wanted = {}
        for node_id in members:
            placed = [row_start[row_of[p]] + slot[p] for p in predecessors[node_id] if p in slot]
            level = sum(placed) / len(placed) - row_start[row] if placed else 0.0
            wanted[node_id] = min(max(round(level), 0), row_slots[row] - 1)
        members.sort(key=lambda n: (wanted[n], order[n]))
        _assign_slots(members, wanted, row_slots[row], slot)
    return _Placed(nodes, boundary, rank, row_of, slot, row_slots)


def _assign_slots(members: list[str], wanted: dict[str, int], slots: int, slot: dict[str, int]) -> None:
    """Give each member its wanted slot where free, keeping their order and staying inside the row."""
    taken: list[int] = []
    for node_id in members:
        taken.append(max(wanted[node_id], taken[-1] + 1) if taken else wanted[node_id])
    for i in range(len(taken) - 1, -1, -1):
        taken[i] = min(taken[i], slots - len(taken) + i)
    for node_id, value in zip(members, taken, strict=True):
        slot[node_id] = value


def _forward_edges(node_ids: list[str], successors: dict[str, list[str]]) -> dict[str, list[str]]:
    """Drop the back edges found by a depth-first search from the nodes nothing flows into."""
    incoming = {t for targets in successors.values() for t in targets}
    roots = [n for n in node_ids if n not in incoming] + node_ids
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    forward: dict[str, list[str]] = {n: [] for n in node_ids}
    for root in roots:
        if root in state:
            continue
        state[root] = 1
        stack = [(root, iter(successors[root]))]
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                stack.pop()
            elif state.get(child) == 1:
                continue  # a back edge: it closes a loop
            else:
                forward[node].append(child)
                if child not in state:
                    state[child] = 1
                    stack.append((child, iter(successors[child])))
    return forward


def _longest_path_ranks(node_ids: list[str], forward: dict[str, list[str]]) -> dict[str, int]:
    indegree = {n: 0 for n in node_ids}
    for targets in forward.values():
        for t in targets:
            indegree[t] += 1
    rank = dict.fromkeys(node_ids, 0)
    ready = deque(n for n in node_ids if indegree[n] == 0)
    while ready:
        node = ready.popleft()
        for t in forward[node]:
            rank[t] = max(rank[t], rank[node] + 1)
            indegree[t] -= 1
            if indegree[t] == 0:
                ready.append(t)
    return rank


def _simplify(points: list[Point]) -> list[Point]:
    """Drop repeated points and the middle of three collinear ones."""
    out: list[Point] = []
    for p in points:
        if out and out[-1] == p:
            continue
        if len(out) >= 2 and ((out[-2][0] == out[-1][0] == p[0]) or (out[-2][1] == out[-1][1] == p[1])):
            out[-1] = p
            continue
        out.append(p)
    return out


# --- routing --------------------------------------------------------------------------------------

_DIRECTIONS = {"E": (1, 0), "W": (-1, 0), "S": (0, 1), "N": (0, -1)}
_OPPOSITE = {"E": "W", "W": "E", "S": "N", "N": "S"}
_TURNS = {heading: tuple(d for d in _DIRECTIONS if d != _OPPOSITE[heading]) for heading in _DIRECTIONS}


def _ports(box: Box) -> dict[str, Point]:
    """The middle of each side, named by the direction a route takes when it leaves there."""
    return {"E": (box.right, box.cy), "W": (box.x, box.cy), "S": (box.cx, box.bottom), "N": (box.cx, box.y)}


class _Router:
    """Orthogonal routes around the shapes, each on a small grid of its own: the column gaps and row corridors
    next to its two ends, their ports and the lines around everything. The grid does not grow with the
    diagram, and the shapes and earlier routes are looked up per line, so routing stays near-linear."""

    def __init__(self, boxes: dict[str, Box], boundaries: list[float], channels: list[float]) -> None:
        self.boxes = boxes
        self.boundaries = sorted(boundaries)
        self.channels = sorted(channels)
        # Lines around everything, so that a route always exists.
        self.outside_x = [min(b.x for b in boxes.values()) - 40, max(b.right for b in boxes.values()) + 40]
        self.outside_y = [min(b.y for b in boxes.values()) - 40, max(b.bottom for b in boxes.values()) + 40]
        self.shapes = _LineIndex(boxes)
        self.used_h: dict[float, _Coverage] = defaultdict(_Coverage)
        self.used_v: dict[float, _Coverage] = defaultdict(_Coverage)

    def route(self, source_id: str, target_id: str, *, prefer_down: bool = False) -> list[Point]:
        source, target = self.boxes[source_id], self.boxes[target_id]
        out_ports, in_ports = _ports(source), _ports(target)
        xs = sorted({*_near(self.boundaries, source.x, source.right), *_near(self.boundaries, target.x, target.right),
                     *self.outside_x, source.x, source.cx, source.right, target.x, target.cx, target.right})
        ys = sorted({*_near(self.channels, source.y, source.bottom), *_near(self.channels, target.y, target.bottom),
                     *self.outside_y, source.y, source.cy, source.bottom, target.y, target.cy, target.bottom})
        column, row = {x: i for i, x in enumerate(xs)}, {y: j for j, y in enumerate(ys)}
        start_cost = {"E": 0, "S": 0 if prefer_down else PORT_COST, "N": PORT_COST, "W": 3 * PORT_COST}
        end_cost = {"E": 0, "S": PORT_COST, "N": PORT_COST, "W": 3 * PORT_COST}  # by direction of arrival
        goals = {(column[p[0]], row[p[1]], _OPPOSITE[side]): end_cost[_OPPOSITE[side]]
                 for side, p in in_ports.items()}
        starts = [((column[p[0]], row[p[1]], side), start_cost[side]) for side, p in out_ports.items()]
        path = _a_star(xs, ys, self, (source_id, target_id), starts, goals, (target.cx, target.cy))
        if path is None:  # boxed in on every side: a plain elbow rather than no edge
            middle = (source.right + target.x) / 2
            path = [(source.right, source.cy), (middle, source.cy), (middle, target.cy), (target.x, target.cy)]
        path = _simplify(path)
        for (x0, y0), (x1, y1) in itertools.pairwise(path):
            if y0 == y1:
                self.used_h[y0].add(min(x0, x1), max(x0, x1))
            else:
                self.used_v[x0].add(min(y0, y1), max(y0, y1))
        return path

    def reused(self, horizontal: bool, line: float, a: float, b: float) -> bool:
        used = (self.used_h if horizontal else self.used_v).get(line)
        return used is not None and used.overlaps(min(a, b), max(a, b))

    def blocked(self, horizontal: bool, line: float, a: float, b: float, ends: tuple[str, str]) -> bool:
        """Whether the segment runs through a shape: the route's own ends as drawn, any other with a margin."""
        low, high = min(a, b), max(a, b)
        for shape_id in self.shapes.crossing(horizontal, line, low, high):
            if shape_id not in ends:
                return True
            box = self.boxes[shape_id]
            inside = (box.y < line < box.bottom) if horizontal else (box.x < line < box.right)
            if inside and max(low, box.x if horizontal else box.y) < min(high, box.right if horizontal else box.bottom):
                return True
        return False


def _near(lines: list[float], low: float, high: float, reach: int = 2) -> list[float]:
    """The `reach` lines on either side of the span low..high, and those inside it."""
    return lines[max(bisect_left(lines, low) - reach, 0):bisect_right(lines, high) + reach]


class _LineIndex:
    """Which shapes (grown by the margin routes keep) a horizontal or vertical line runs through, built per line
    on first use from buckets of one column's width or one slot's height."""

    def __init__(self, boxes: dict[str, Box]) -> None:
        self.grown = {k: b.grown(OBSTACLE_MARGIN) for k, b in boxes.items()}
        self.buckets: tuple[dict[int, list[str]], dict[int, list[str]]] = (defaultdict(list), defaultdict(list))
        for shape_id, box in self.grown.items():
            for k in range(math.floor(box.y / SLOT), math.floor(box.bottom / SLOT) + 1):
                self.buckets[0][k].append(shape_id)  # horizontal lines meet it in these bands
            for k in range(math.floor(box.x / COLUMN), math.floor(box.right / COLUMN) + 1):
                self.buckets[1][k].append(shape_id)
        self.lines: dict[tuple[bool, float], tuple[list[float], list[tuple[float, float, str]], float]] = {}

    def crossing(self, horizontal: bool, line: float, low: float, high: float) -> Iterable[str]:
        """Yield the shapes whose inside the open segment low..high of the line runs through."""
        key = (horizontal, line)
        if key not in self.lines:
            self.lines[key] = self._spans(horizontal, line)
        starts, spans, widest = self.lines[key]
        j = bisect_left(starts, high) - 1
        while j >= 0 and spans[j][0] > low - widest:
            start, end, shape_id = spans[j]
            if max(low, start) < min(high, end):
                yield shape_id
            j -= 1

    def _spans(self, horizontal: bool, line: float) -> tuple[list[float], list[tuple[float, float, str]], float]:
        bucket = self.buckets[0 if horizontal else 1].get(math.floor(line / (SLOT if horizontal else COLUMN)), ())
        spans = sorted((b.x, b.right, k) if horizontal else (b.y, b.bottom, k)
                       for k, b in ((k, self.grown[k]) for k in bucket)
                       if (b.y < line < b.bottom if horizontal else b.x < line < b.right))
        return [s[0] for s in spans], spans, max((s[1] - s[0] for s in spans), default=0.0)


class _Coverage:
    """The stretches of one line that routes already run along, merged, for the cost of sharing them."""

    def __init__(self) -> None:
        self.starts: list[float] = []
        self.ends: list[float] = []

    def overlaps(self, low: float, high: float) -> bool:
        j = bisect_left(self.starts, high) - 1
        return j >= 0 and self.ends[j] > low

    def add(self, low: float, high: float) -> None:
        first = bisect_left(self.ends, low)  # the first stretch that ends at or after low
        last = bisect_right(self.starts, high)  # past the last stretch that starts at or before high
        if first < last:
            low, high = min(low, self.starts[first]), max(high, self.ends[last - 1])
        self.starts[first:last] = [low]
        self.ends[first:last] = [high]


def _a_star(xs: list[float], ys: list[float], router: _Router, ends: tuple[str, str],
            starts: list[tuple[tuple[int, int, str], int]], goals: dict[tuple[int, int, str], int],
            aim: Point) -> list[Point] | None:
    def estimate(i: int, j: int) -> float:
        return abs(xs[i] - aim[0]) + abs(ys[j] - aim[1])

    steps: dict[tuple[int, int, bool], float | None] = {}  # per grid segment: length plus sharing cost, or blocked

    def step_cost(i: int, j: int, direction: str) -> float | None:
        dx, dy = _DIRECTIONS[direction]
        horizontal = dy == 0
        key = (min(i, i + dx), min(j, j + dy), horizontal)  # either way along a segment is the same segment
        if key not in steps:
            ni, nj = i + dx, j + dy
            cost = None
            if 0 <= ni < len(xs) and 0 <= nj < len(ys):
                line = ys[j] if horizontal else xs[i]
                a, b = (xs[i], xs[ni]) if horizontal else (ys[j], ys[nj])
                if not router.blocked(horizontal, line, a, b, ends):
                    cost = abs(b - a) + (REUSE_COST if router.reused(horizontal, line, a, b) else 0)
            steps[key] = cost
        return steps[key]

    counter = itertools.count()
    frontier: list = []
    best: dict[tuple[int, int, str], float] = {}
    came: dict[tuple[int, int, str], tuple[int, int, str] | None] = {}
    for state, cost in starts:
        best[state] = cost
        came[state] = None
        heapq.heappush(frontier, (cost + estimate(state[0], state[1]), next(counter), cost, state, True))
    while frontier:
        _, _, cost, state, first = heapq.heappop(frontier)
        if cost > best.get(state, math.inf):
            continue
        if not first and state in goals:
            path = []
            node: tuple[int, int, str] | None = state
            while node is not None:
                path.append((xs[node[0]], ys[node[1]]))
                node = came[node]
            return path[::-1]
        i, j, heading = state
        # Leaving a port: straight out of the shape; elsewhere any turn but a U-turn.
        for direction in ((heading,) if first else _TURNS[heading]):
            length = step_cost(i, j, direction)
            if length is None:
                continue
            dx, dy = _DIRECTIONS[direction]
            new_state = (i + dx, j + dy, direction)
            new_cost = cost + length + (0 if direction == heading else BEND_COST) + goals.get(new_state, 0)
            if new_cost < best.get(new_state, math.inf):
                best[new_state] = new_cost
                came[new_state] = state
                heapq.heappush(frontier, (new_cost + estimate(i + dx, j + dy), next(counter), new_cost, new_state,
                                          False))
    return None

"""Procedure diagrams: a version's BPMN laid out for bpmn-js, where one instance stands, and where a version's
open instances wait (the process owner's heat map)."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache

from flask import current_app
from lxml import etree
from sqlalchemy import select

from app import engine
from app.exceptions import PermissionDenied
from app.extensions import db
from app.models import Incident, ProcessDefinition, ProcessInstance, ProcessVersion, Task, User
from app.models.instances import OPEN_STATES
from app.models.users import OWNER_ROLES
from app.services import users
from app.services.studio import diagram_layout
from app.services.workflow import instances, processes

SPIFF_NS = "http://spiffworkflow.org/bpmn/schema/1.0/core"


@dataclass(frozen=True)
class DiagramFacts:
    """What the pages need from one BPMN text besides its drawing: element names and enclosing subprocesses."""

    names: dict[str, tuple[str, str | None]]  # element id -> (name, Chinese name)
    parents: dict[str, tuple[str, ...]]  # element id -> the subprocesses it sits in, innermost first
    sole_source: dict[str, str]  # element id -> the source of its only incoming sequence flow


def laid_out(bpmn_xml: str) -> bytes:
    """Return BPMN XML with diagram interchange: its own, or laid out here (refused above the configured size
    with DiagramTooLarge). The layout is cached by the text, so a version or an unchanged draft is laid out once."""
    return _laid_out(bpmn_xml, current_app.config["DIAGRAM_LAYOUT_MAX_ELEMENTS"])


@lru_cache(maxsize=32)
def _laid_out(bpmn_xml: str, max_elements: int) -> bytes:
    return diagram_layout.add_layout(bpmn_xml.encode("utf-8"), max_elements)


@lru_cache(maxsize=32)  # versions are immutable: one reading per version and process
def _facts(bpmn_xml: str) -> DiagramFacts:
    data = bpmn_xml.encode("utf-8")
    root = diagram_layout.parse(data)
    names: dict[str, tuple[str, str | None]] = {}
    parents: dict[str, tuple[str, ...]] = {}
    subprocess_tags = {f"{{{diagram_layout.BPMN_NS}}}{t}" for t in ("subProcess", "transaction", "adHocSubProcess")}
    for element in root.iter(f"{{{diagram_layout.BPMN_NS}}}*"):
        element_id = element.get("id")
        if not element_id:
            continue
        zh = element.find(f"{{{diagram_layout.BPMN_NS}}}extensionElements/{{{SPIFF_NS}}}properties/"
                          f"{{{SPIFF_NS}}}property[@name='name:zh-CN']")
        names[element_id] = (element.get("name") or element_id, zh.get("value") if zh is not None else None)
        parents[element_id] = tuple(a.get("id") for a in element.iterancestors() if a.tag in subprocess_tags)
    sources: dict[str, list[str]] = defaultdict(list)
    for flow in root.iter(f"{{{diagram_layout.BPMN_NS}}}sequenceFlow"):
        sources[flow.get("targetRef")].append(flow.get("sourceRef"))
    sole_source = {target: found[0] for target, found in sources.items() if len(found) == 1}
    return DiagramFacts(names, parents, sole_source)


def facts(version: ProcessVersion) -> DiagramFacts:
    return _facts(version.bpmn_xml)


def version_diagram(key: str, version: int, labels: str | None = None) -> bytes:
    """Return a version's BPMN XML with diagram interchange, laid out when the file has none; with `labels` ("en"
    or "zh-CN") as the viewer shows it in that language (see labelled)."""
    bpmn_xml = processes.get_version(key, version).bpmn_xml
    if labels in ("en", "zh-CN"):
        group_labels = tuple(sorted((name, pair[1] if labels == "zh-CN" else pair[0])
                                    for name, pair in users.group_labels().items()))
        bpmn_xml = _labelled(bpmn_xml, labels, group_labels)
    return laid_out(bpmn_xml)


@lru_cache(maxsize=32)
def _labelled(bpmn_xml: str, lang: str, group_labels: tuple[tuple[str, str], ...]) -> str:
    """The BPMN text with each element named in the language (Chinese: its "name:zh-CN" property, where it has
    one) and each lane by the label of the group it stands for. Only for the viewer: the file itself, the
    download and the modeler keep the names the diagram gives."""
    root = diagram_layout.parse(bpmn_xml.encode("utf-8"))
    groups = dict(group_labels)
    for element in root.iter(f"{{{diagram_layout.BPMN_NS}}}*"):
        if element.get("name") is None:
            continue
        if lang == "zh-CN":
            zh = element.find(f"{{{diagram_layout.BPMN_NS}}}extensionElements/{{{SPIFF_NS}}}properties/"
                              f"{{{SPIFF_NS}}}property[@name='name:zh-CN']")
            if zh is not None and zh.get("value"):
                element.set("name", zh.get("value"))
        if etree.QName(element).localname == "lane" and groups.get(element.get("name") or ""):
            element.set("name", groups[element.get("name")])
    return etree.tostring(root, encoding="unicode")


_PROCESS_NAMES_ZH: dict[tuple[str, str], str | None] = {}  # (content hash, process key) -> Chinese name


def procedure_names_zh() -> dict[str, str]:
    """Each procedure's Chinese name (the "name:zh-CN" property of the process in its newest version), by key.
    One query; a version's text is read once per process (versions are immutable)."""
    rows = db.session.execute(select(ProcessDefinition.key, ProcessVersion.id, ProcessVersion.content_hash)
                              .join(ProcessVersion.definition).order_by(ProcessVersion.version))
    newest = {key: (version_id, content_hash) for key, version_id, content_hash in rows}
    names: dict[str, str] = {}
    for key, (version_id, content_hash) in newest.items():
        if (content_hash, key) not in _PROCESS_NAMES_ZH:
            version = db.session.get(ProcessVersion, version_id)
            _PROCESS_NAMES_ZH[(content_hash, key)] = _facts(version.bpmn_xml).names.get(key, (key, None))[1]
        if _PROCESS_NAMES_ZH[(content_hash, key)]:
            names[key] = _PROCESS_NAMES_ZH[(content_hash, key)]
    return names


def procedure_titles_zh() -> dict[str, str]:
    """Each procedure's English name -> its Chinese name, for the titles of instances started without one (they
    carry the procedure's name)."""
    names = procedure_names_zh()
    return {name: names[key] for key, name in db.session.execute(select(ProcessDefinition.key, ProcessDefinition.name))
            if key in names and name}


@dataclass(frozen=True)
class InstanceDiagram:
    instance: ProcessInstance
    states: dict[str, str]  # element id -> completed | active | waiting | error


def instance_diagram(instance_id: int) -> InstanceDiagram:
    """Say for each diagram element whether the instance completed it, stands at it, waits at it or failed there.

    Steps come from the task table (which keeps the history the engine prunes), events, gateways and joins
    from the saved engine state, failures from the open incidents.
    """
    instance = instances.get_instance(instance_id)
    states: dict[str, str] = {}

    def mark(element_id: str | None, state: str) -> None:
        if element_id:
            states[element_id] = engine.strongest(states.get(element_id), state)

    for element_id, state in db.session.execute(
            select(Task.element_id, Task.state).where(Task.instance_id == instance_id)):
        mark(element_id, {"ready": "active", "completed": "completed", "error": "error"}.get(state, ""))
    for element_id, state in engine.element_states(instance).items():
        mark(element_id, state)
    for element_id in db.session.scalars(select(Incident.element_id).where(
            Incident.instance_id == instance_id, Incident.resolved_at.is_(None))):
        mark(element_id, "error")
    states.pop("", None)
    _infer_passed(states, facts(instance.version).sole_source)
    return InstanceDiagram(instance, states)


def _infer_passed(states: dict[str, str], sole_source: dict[str, str]) -> None:
    """Mark as completed the events and gateways the engine pruned: an element reached through its only
    incoming flow proves that flow's source ran, and so on back (never across a merge of several flows)."""
    reached = list(states)
    while reached:
        source = sole_source.get(reached.pop())
        if source and source not in states:
            states[source] = "completed"
            reached.append(source)


def may_see_heat_map(actor: User) -> bool:
    return actor.has_role(*OWNER_ROLES)


@dataclass(frozen=True)
class HeatMapRow:
    element_id: str
    name: str
    name_zh: str | None
    count: int


@dataclass(frozen=True)
class HeatMap:
    version: ProcessVersion
    open_instances: int
    counts: dict[str, int]  # element id -> open instances standing there (inside a subprocess: it counts too)
    rows: list[HeatMapRow]  # most crowded first


def version_heat_map(key: str, version: int, actor: User) -> HeatMap:
    """Count the open instances of a version at each element (process owners and admins)."""
    if not may_see_heat_map(actor):
        raise PermissionDenied("Only process owners and administrators see where instances stand.")
    found = processes.get_version(key, version)
    open_ids = list(db.session.scalars(select(ProcessInstance.id).where(
        ProcessInstance.version_id == found.id, ProcessInstance.status.in_(OPEN_STATES))))
    positions: dict[int, set[str]] = defaultdict(set)
    is_open = ProcessInstance.version_id == found.id, ProcessInstance.status.in_(OPEN_STATES)
    for element_id, instance_id in db.session.execute(
            select(Task.element_id, Task.instance_id).join(ProcessInstance).where(Task.state == "ready", *is_open)):
        positions[instance_id].add(element_id)
    for element_id, instance_id in db.session.execute(
            select(Incident.element_id, Incident.instance_id)
            .join(ProcessInstance, Incident.instance_id == ProcessInstance.id)
            .where(Incident.resolved_at.is_(None), Incident.element_id.is_not(None), *is_open)):
        positions[instance_id].add(element_id)
    # Instances with no step open and no incident wait for a timer, a message or a join: ask the engine.
    waiting_only = [i for i in open_ids if i not in positions]
    for instance in (db.session.scalars(select(ProcessInstance).where(ProcessInstance.id.in_(waiting_only)))
                     if waiting_only else ()):
        positions[instance.id] |= {e for e, s in engine.element_states(instance).items() if s != "completed"}
    diagram = facts(found)
    counts: dict[str, int] = defaultdict(int)
    for elements in positions.values():
        for element_id in elements | {p for e in elements for p in diagram.parents.get(e, ())}:
            counts[element_id] += 1
    rows = sorted((HeatMapRow(e, *diagram.names.get(e, (e, None)), n) for e, n in counts.items()),
                  key=lambda row: (-row.count, row.name))
    return HeatMap(found, len(open_ids), dict(counts), rows)

"""Variants of the shipped CAPA diagram and diagrams from other modelers, for deploy tests (shared by the service,
API, CLI and studio tests)."""
from __future__ import annotations

from tests.conftest import ROOT
from tests.integration.services.scenarios import diagram, user_task

CAPA_XML = (ROOT / "processes" / "capa.bpmn").read_text(encoding="utf-8")

# describe_problem is due in 2 days in the shipped diagram; the variant makes it 9.
LONGER_DUE_IN = [('<spiffworkflow:property name="dueIn" value="P2D"/>',
                  '<spiffworkflow:property name="dueIn" value="P9D"/>')]
UNKNOWN_HANDLER = [('<spiffworkflow:serviceTaskOperator id="notify.email" resultVariable="closed_notice">',
                    '<spiffworkflow:serviceTaskOperator id="notify.fax" resultVariable="closed_notice">')]
MISSING_FORM_FILE = [('value="capa_containment.schema.json"', 'value="capa_nowhere.schema.json"')]
NO_FORM_PROPERTY = [('<spiffworkflow:property name="formJsonSchemaFilename" value="capa_containment.schema.json"/>\n',
                     "")]
NO_LANE = [("<bpmn:flowNodeRef>containment</bpmn:flowNodeRef>\n", "")]
RENAMED_PROCESS = [('processRef="capa"', 'processRef="capa_copy"'),
                   ('<bpmn:process id="capa"', '<bpmn:process id="capa_copy"')]


def capa_variant(*changes: list[tuple[str, str]]) -> str:
    """Return the CAPA diagram with each (old, new) replaced; old must occur exactly once."""
    text = CAPA_XML
    for old, new in (pair for change in changes for pair in change):
        assert text.count(old) == 1, f"the shipped capa.bpmn no longer contains {old!r} exactly once"
        text = text.replace(old, new)
    return text


def line_of(text: str, needle: str) -> int:
    """Return the 1-based line number of needle's first occurrence in text."""
    return text[:text.index(needle)].count("\n") + 1


CAPA_RISK_DMN = (ROOT / "processes" / "capa_risk.dmn").read_bytes()


def callee(result: str) -> bytes:
    """A process another one calls: a script that says which version ran."""
    return diagram("checklist", f"""
    <bpmn:startEvent id="c_start"/>
    <bpmn:sequenceFlow id="c1" sourceRef="c_start" targetRef="c_script"/>
    <bpmn:scriptTask id="c_script" name="Fill"><bpmn:script>result = '{result}'</bpmn:script></bpmn:scriptTask>
    <bpmn:sequenceFlow id="c2" sourceRef="c_script" targetRef="c_end"/>
    <bpmn:endEvent id="c_end"/>
""", lane_nodes=["c_start", "c_script", "c_end"])


CALLER = diagram("inspection_round", f"""
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="prepare"/>
    {user_task('prepare', 'Prepare')}
    <bpmn:sequenceFlow id="f2" sourceRef="prepare" targetRef="run_checklist"/>
    <bpmn:callActivity id="run_checklist" name="Run the checklist" calledElement="checklist"/>
    <bpmn:sequenceFlow id="f3" sourceRef="run_checklist" targetRef="review"/>
    {user_task('review', 'Review')}
    <bpmn:sequenceFlow id="f4" sourceRef="review" targetRef="end"/>
    <bpmn:endEvent id="end"/>
""", lane_nodes=["start", "prepare", "run_checklist", "review", "end"])


# A different procedure that a modeler gave the process id capa: no element id in common with the shipped CAPA.
DIFFERENT_CAPA = diagram("capa", f"""
    <bpmn:startEvent id="Event_0x1"/>
    <bpmn:sequenceFlow id="Flow_0x1" sourceRef="Event_0x1" targetRef="Activity_0x1"/>
    {user_task('Activity_0x1', 'Something else')}
    <bpmn:sequenceFlow id="Flow_0x2" sourceRef="Activity_0x1" targetRef="Event_0x2"/>
    <bpmn:endEvent id="Event_0x2"/>
""", lane_nodes=["Event_0x1", "Activity_0x1", "Event_0x2"])

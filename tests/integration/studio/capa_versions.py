"""CAPA diagrams for the studio tests: the shipped one with a triage step added, or without its first step."""
from __future__ import annotations

from tests.integration.diagrams import CAPA_XML, LONGER_DUE_IN, capa_variant

# describe_problem -> triage (new) -> link_source instead of describe_problem -> link_source.
TRIAGE_TASK = '''    <bpmn:sequenceFlow id="f_problem" sourceRef="describe_problem" targetRef="triage"/>
    <bpmn:userTask id="triage" name="Triage the problem">
      <bpmn:extensionElements>
        <spiffworkflow:properties>
          <spiffworkflow:property name="name:zh-CN" value="问题分级"/>
          <spiffworkflow:property name="formJsonSchemaFilename" value="capa_problem.schema.json"/>
          <spiffworkflow:property name="dueIn" value="P1D"/>
        </spiffworkflow:properties>
      </bpmn:extensionElements>
    </bpmn:userTask>
    <bpmn:sequenceFlow id="f_triaged" sourceRef="triage" targetRef="link_source"/>
'''
ADDED_TRIAGE = [
    ('    <bpmn:sequenceFlow id="f_problem" sourceRef="describe_problem" targetRef="link_source"/>\n', TRIAGE_TASK),
    ("<bpmn:flowNodeRef>describe_problem</bpmn:flowNodeRef>\n",
     "<bpmn:flowNodeRef>describe_problem</bpmn:flowNodeRef>\n        <bpmn:flowNodeRef>triage</bpmn:flowNodeRef>\n"),
]
_DESCRIBE = CAPA_XML[CAPA_XML.index('    <bpmn:userTask id="describe_problem"'):
                     CAPA_XML.index('    <bpmn:serviceTask id="link_source"')]
WITHOUT_DESCRIBE = [
    ('<bpmn:sequenceFlow id="f_start" sourceRef="start" targetRef="describe_problem"/>',
     '<bpmn:sequenceFlow id="f_start" sourceRef="start" targetRef="link_source"/>'),
    (_DESCRIBE, ""),
    ("        <bpmn:flowNodeRef>describe_problem</bpmn:flowNodeRef>\n", ""),
]


def capa_v2() -> str:
    """describe_problem due in 9 days instead of 2, and a triage step after it."""
    return capa_variant(LONGER_DUE_IN, ADDED_TRIAGE)

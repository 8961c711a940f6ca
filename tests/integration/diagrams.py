"""Variants of the shipped CAPA diagram for deploy tests (shared by the API and CLI tests)."""
from __future__ import annotations

from tests.conftest import ROOT

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

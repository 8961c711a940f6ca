"""Safe BPMN parsing and deploy-time lint: every bad input comes back as located problems, never a stack trace."""
from __future__ import annotations

import datetime
import json
import re
from pathlib import Path
from types import SimpleNamespace
from xml.sax.saxutils import escape, quoteattr

import pytest
from lxml import etree
from marshmallow import Schema, fields, validate

from app.engine import validation
from app.engine.validation import ParsedDiagram, extension_properties, parse_diagram, parse_duration
from app.exceptions import InvalidBpmn


class NotifySchema(Schema):
    recipients = fields.List(fields.String(), required=True)
    subject = fields.String(required=True)
    days = fields.Integer(validate=validate.Range(min=1))


HANDLERS = {"mail.notify": SimpleNamespace(schema=NotifySchema)}
FORMS = {"capa_problem.schema.json", "capa_problem.uischema.json"}
PROPERTIES = {
    "formJsonSchemaFilename": "capa_problem.schema.json",
    "formUiSchemaFilename": "capa_problem.uischema.json",
    "dueIn": "P3D",
    "signatureMeaning": "approved",
    "evidence": "capa_report, root_cause",
}
PARAMETERS = {"recipients": '["qa@example.com"]', "subject": "subject_line", "days": "3"}
USER_TASK_OPEN = '<bpmn:userTask id="review" name="Review problem">'


def make_bpmn(*, properties: dict | None = None, lane_name: str = "qa", in_lane: bool = True,
              operator: str | None = "mail.notify", params: dict | None = None,
              script: str = "score = len(recipients) * 2", condition: str | None = "approved == True",
              timer_kind: str = "timeDuration", timer: str = '"PT5M"', executable: str = "true",
              extra: str = "", sub_extra: str = "") -> bytes:
    """Build a small valid diagram; keyword arguments swap in one faulty part (a None value drops an entry)."""
    props = "".join(f"<spiffworkflow:property name={quoteattr(k)} value={quoteattr(v)} />"
                    for k, v in {**PROPERTIES, **(properties or {})}.items() if v is not None)
    param_xml = "".join(f"<spiffworkflow:parameter id={quoteattr(k)} type=\"any\" value={quoteattr(v)} />"
                        for k, v in {**PARAMETERS, **(params or {})}.items() if v is not None)
    operator_xml = "" if operator is None else f"""<bpmn:extensionElements>
        <spiffworkflow:serviceTaskOperator id={quoteattr(operator)} resultVariable="sent">
          <spiffworkflow:parameters>{param_xml}</spiffworkflow:parameters>
        </spiffworkflow:serviceTaskOperator>
      </bpmn:extensionElements>"""
    condition_xml = ("" if condition is None
                     else f"<bpmn:conditionExpression>{escape(condition)}</bpmn:conditionExpression>")
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core"
    id="defs" targetNamespace="http://qualiflow.example/bpmn">
  <bpmn:process id="capa" name="CAPA" isExecutable="{executable}">
    <bpmn:laneSet id="lanes">
      <bpmn:lane id="lane_qa" name={quoteattr(lane_name)}>
        {"<bpmn:flowNodeRef>review</bpmn:flowNodeRef>" if in_lane else ""}
      </bpmn:lane>
    </bpmn:laneSet>
    <bpmn:startEvent id="start" />
    {USER_TASK_OPEN}
      <bpmn:extensionElements>
        <spiffworkflow:properties>{props}</spiffworkflow:properties>
      </bpmn:extensionElements>
    </bpmn:userTask>
    <bpmn:boundaryEvent id="escalate_timer" attachedToRef="review" cancelActivity="false">
      <bpmn:timerEventDefinition id="escalate_timer_def">
        <bpmn:{timer_kind}>{escape(timer)}</bpmn:{timer_kind}>
      </bpmn:timerEventDefinition>
    </bpmn:boundaryEvent>
    <bpmn:endEvent id="escalated" />
    <bpmn:exclusiveGateway id="decision" default="flow_rejected" />
    <bpmn:serviceTask id="notify">
      {operator_xml}
    </bpmn:serviceTask>
    <bpmn:scriptTask id="calc" scriptFormat="python">
      <bpmn:script>{escape(script)}</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:subProcess id="investigate">
      <bpmn:startEvent id="sub_start" />
      <bpmn:task id="sub_work" />
      <bpmn:endEvent id="sub_end" />
      {sub_extra}
      <bpmn:sequenceFlow id="sub_f1" sourceRef="sub_start" targetRef="sub_work" />
      <bpmn:sequenceFlow id="sub_f2" sourceRef="sub_work" targetRef="sub_end" />
    </bpmn:subProcess>
    <bpmn:endEvent id="done" />
    <bpmn:endEvent id="rejected" />
    {extra}
    <bpmn:sequenceFlow id="f_start" sourceRef="start" targetRef="review" />
    <bpmn:sequenceFlow id="f_review" sourceRef="review" targetRef="decision" />
    <bpmn:sequenceFlow id="flow_approved" sourceRef="decision" targetRef="notify">{condition_xml}</bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="flow_rejected" sourceRef="decision" targetRef="rejected" />
    <bpmn:sequenceFlow id="f_notify" sourceRef="notify" targetRef="calc" />
    <bpmn:sequenceFlow id="f_calc" sourceRef="calc" targetRef="investigate" />
    <bpmn:sequenceFlow id="f_investigate" sourceRef="investigate" targetRef="done" />
    <bpmn:sequenceFlow id="f_escalate" sourceRef="escalate_timer" targetRef="escalated" />
  </bpmn:process>
</bpmn:definitions>
""".encode()


def with_doctype(doctype: str) -> bytes:
    """Put a DOCTYPE on line 2 and use its entity &xxe; (when declared) in the user task's documentation."""
    body = make_bpmn().split(b"\n", 1)[1]
    if "xxe" in doctype:
        body = body.replace(USER_TASK_OPEN.encode(),
                            f"{USER_TASK_OPEN}<bpmn:documentation>&xxe;</bpmn:documentation>".encode())
    return f'<?xml version="1.0" encoding="UTF-8"?>\n{doctype}\n'.encode() + body


def parse(data: bytes) -> ParsedDiagram:
    return parse_diagram(data, filename="capa.bpmn", handlers=HANDLERS, forms=FORMS)


def source_line(data: bytes, element_id: str) -> int:
    (element,) = etree.fromstring(data).xpath("//*[@id=$id]", id=element_id)
    return element.sourceline


XXE_FILE = '<!DOCTYPE definitions [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
BILLION_LAUGHS = "<!DOCTYPE definitions [<!ENTITY lol0 \"lol\">" + "".join(
    f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10}">' for i in range(1, 10)
) + '<!ENTITY xxe "&lol9;">]>'
EXTERNAL_DTD = '<!DOCTYPE definitions SYSTEM "http://127.0.0.1:9/evil.dtd">'
PARAMETER_ENTITY = '<!DOCTYPE definitions [<!ENTITY % remote SYSTEM "file:///etc/passwd"> %remote;]>'
DTD_ATTACKS = [
    pytest.param(XXE_FILE, id="xxe-file-entity"),
    pytest.param(BILLION_LAUGHS, id="billion-laughs"),
    pytest.param(EXTERNAL_DTD, id="external-dtd"),
    pytest.param(PARAMETER_ENTITY, id="parameter-entity"),
]
MALFORMED = (b'<?xml version="1.0" encoding="UTF-8"?>\n'
             b'<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="defs">\n'
             b'  <bpmn:process id="capa" isExecutable="true">\n'
             b'</bpmn:definitions>\n')
TWO_PROCESSES = make_bpmn().replace(
    b"</bpmn:definitions>",
    b'<bpmn:process id="other" isExecutable="true"><bpmn:startEvent id="other_start" /></bpmn:process>'
    b"</bpmn:definitions>")

# (data, element id expected on a problem, message fragment, exact line or None to check "at or below the element")
BAD_INPUTS = [
    pytest.param(with_doctype(XXE_FILE), None, "DOCTYPE and entities are not allowed", 2, id="xxe-file-entity"),
    pytest.param(with_doctype(BILLION_LAUGHS), None, "DOCTYPE and entities are not allowed", 2, id="billion-laughs"),
    pytest.param(with_doctype(EXTERNAL_DTD), None, "DOCTYPE and entities are not allowed", 2, id="external-dtd"),
    pytest.param(with_doctype(PARAMETER_ENTITY), None, "DOCTYPE and entities are not allowed", 2,
                 id="parameter-entity"),
    pytest.param(make_bpmn() + b" " * 2_000_001, None, "file is larger than 2000000 bytes", None, id="oversize"),
    pytest.param(MALFORMED, None, "malformed XML", 4, id="malformed-xml"),
    pytest.param(make_bpmn().replace(b'name="CAPA"', 'name="CAPA é"'.encode("latin-1")), None, "not UTF-8", 5,
                 id="not-utf8"),
    pytest.param(make_bpmn().replace(b'encoding="UTF-8"', b'encoding="ISO-8859-1"'), None, "only UTF-8", 1,
                 id="declared-latin1"),
    pytest.param(make_bpmn().replace(b'encoding="UTF-8"', b'encoding="windows-1252"'), None,
                 "iconv -f windows-1252 -t UTF-8", 1, id="declared-cp1252-says-how-to-convert"),
    pytest.param(make_bpmn().replace(b'name="CAPA"', 'name="CAPA é"'.encode("latin-1")), None,
                 "iconv -f ISO-8859-1 -t UTF-8", 5, id="latin1-bytes-say-how-to-convert"),
    pytest.param(b'<?xml version="1.0"?>\n<definitions />', None, "root element must be bpmn:definitions", 2,
                 id="not-bpmn"),
    pytest.param(make_bpmn(executable="false"), "defs", "exactly one executable process", None,
                 id="no-executable-process"),
    pytest.param(TWO_PROCESSES, "other", "exactly one executable process", None, id="two-executable-processes"),
    pytest.param(make_bpmn(extra='<bpmn:bogus id="bogus" />'), "bogus", "not expected", None, id="schema-error"),
    pytest.param(make_bpmn(in_lane=False), "review", "user task review has no lane", None, id="user-task-no-lane"),
    pytest.param(make_bpmn(lane_name=" "), "lane_qa", "has no name", None, id="lane-without-name"),
    pytest.param(make_bpmn(properties={"formJsonSchemaFilename": None}), "review", "has no form", None,
                 id="no-form"),
    pytest.param(make_bpmn(properties={"formJsonSchemaFilename": "nope.schema.json"}), "review",
                 "form nope.schema.json does not exist", None, id="missing-form"),
    pytest.param(make_bpmn(properties={"formUiSchemaFilename": "nope.uischema.json"}), "review",
                 "form nope.uischema.json does not exist", None, id="missing-ui-form"),
    pytest.param(make_bpmn(properties={"dueIn": "3 days"}), "review", "dueIn '3 days'", None, id="bad-due-in"),
    pytest.param(make_bpmn(properties={"signatureMeaning": "signed"}), "review", "signatureMeaning 'signed'", None,
                 id="bad-signature-meaning"),
    pytest.param(make_bpmn(properties={"evidence": "capa report; 8D"}), "review", "evidence", None,
                 id="bad-evidence"),
    pytest.param(make_bpmn(operator=None), "notify", "names no handler", None, id="no-handler"),
    pytest.param(make_bpmn(operator="mail.nope"), "notify", "unknown handler mail.nope", None, id="unknown-handler"),
    pytest.param(make_bpmn(params={"subject": None}), "notify", "requires parameter subject", None,
                 id="missing-required-param"),
    pytest.param(make_bpmn(params={"cc": '"boss@example.com"'}), "notify", "unknown parameter cc", None,
                 id="unknown-param"),
    pytest.param(make_bpmn(params={"days": '"three"'}), "notify", "parameter days: Not a valid integer", None,
                 id="bad-literal-param-type"),
    pytest.param(make_bpmn(params={"days": "0"}), "notify", "greater than or equal to 1", None,
                 id="bad-literal-param-value"),
    pytest.param(make_bpmn(params={"subject": "subject +"}), "notify", "parameter subject: invalid expression",
                 None, id="param-expression-syntax"),
    pytest.param(make_bpmn(script="x = = 1"), "calc", "script has a syntax error", None, id="script-syntax"),
    pytest.param(make_bpmn(script=" "), "calc", "script task calc has no script", None, id="empty-script"),
    pytest.param(make_bpmn(condition="approved =="), "flow_approved", "condition has a syntax error", None,
                 id="condition-syntax"),
    pytest.param(make_bpmn(condition="${approved == true && score > 100}"), "flow_approved",
                 "conditions are Python expressions over the process data: write approved == true and score > 100",
                 None, id="camunda-condition"),
    pytest.param(make_bpmn(condition="#{!approved}"), "flow_approved", "write not approved", None,
                 id="camunda-hash-condition"),
    pytest.param(make_bpmn(timer="${escalation_after}"), "escalate_timer",
                 "timers are Python expressions: a string literal such as \"P5D\" or a data field, here "
                 "escalation_after", None, id="camunda-timer"),
    pytest.param(make_bpmn(timer="PT5M"), "escalate_timer", 'ISO 8601 without quotes; timers are Python '
                 'expressions: write "PT5M"', None, id="unquoted-duration"),
    pytest.param(make_bpmn(timer_kind="timeCycle", timer="R3/PT1H"), "escalate_timer", 'write "R3/PT1H"', None,
                 id="unquoted-cycle"),
    pytest.param(make_bpmn(timer_kind="timeDate", timer="2030-01-31T09:00:00Z"), "escalate_timer",
                 'write "2030-01-31T09:00:00Z"', None, id="unquoted-date"),
    pytest.param(make_bpmn(timer_kind="timeCycle", timer="0 0 9 * * ?"), "escalate_timer",
                 'cron expression; timers are Python expressions giving ISO 8601, e.g. "R/2026-01-01T09:00:00/P1D"',
                 None, id="cron-timer"),
    pytest.param(make_bpmn(timer_kind="timeCycle", timer='"0 30 8 ? * MON"'), "escalate_timer",
                 '"R/2026-01-05T08:30:00/P1W"', None, id="quoted-weekly-cron-timer"),
    pytest.param(make_bpmn(condition=None), "flow_approved", "without condition", None,
                 id="spiffworkflow-validation-exception"),
    pytest.param(make_bpmn(timer='"five minutes"'), "escalate_timer", 'timeDuration "five minutes" is not valid',
                 None, id="bad-timer-duration"),
    pytest.param(make_bpmn(timer='"5M"'), "escalate_timer", "is not valid", None, id="timer-without-designator"),
    pytest.param(make_bpmn(timer="300"), "escalate_timer", "timeDuration 300 is not valid", None,
                 id="timer-not-a-string"),
    pytest.param(make_bpmn(timer='"PT5M'), "escalate_timer", "timeDuration has a syntax error", None,
                 id="timer-syntax"),
    pytest.param(make_bpmn(timer=""), "escalate_timer", "timeDuration is empty", None, id="timer-empty"),
    pytest.param(make_bpmn(timer_kind="timeDate", timer='"tomorrow"'), "escalate_timer", "timeDate", None,
                 id="bad-timer-date"),
    pytest.param(make_bpmn(timer_kind="timeDate", timer='"PT5M"'), "escalate_timer", "timeDate", None,
                 id="timer-date-is-duration"),
    pytest.param(make_bpmn(timer_kind="timeCycle", timer='"R3/soon"'), "escalate_timer", "timeCycle", None,
                 id="bad-timer-cycle"),
    pytest.param(make_bpmn(extra='<bpmn:task id="orphan" />'), "orphan", "element orphan is unreachable", None,
                 id="unreachable-task"),
    pytest.param(make_bpmn(sub_extra='<bpmn:task id="sub_orphan" />'), "sub_orphan",
                 "element sub_orphan is unreachable", None, id="unreachable-in-subprocess"),
]


@pytest.mark.parametrize(("data", "element_id", "fragment", "line"), BAD_INPUTS)
def test_bad_input_raises_located_problem(data: bytes, element_id: str | None, fragment: str,
                                          line: int | None) -> None:
    with pytest.raises(InvalidBpmn) as caught:
        parse(data)
    problems = caught.value.problems
    matching = [p for p in problems if p.element_id == element_id and fragment in p.message]
    assert matching, problems
    assert all(p.severity == "error" for p in matching)
    if line is not None:
        assert [p.line for p in matching] == [line]
    elif element_id is not None:
        assert all(p.line is not None and p.line >= source_line(data, element_id) for p in matching)
    assert "Traceback" not in caught.value.message
    assert "root:" not in json.dumps(caught.value.as_dict())


@pytest.mark.parametrize("doctype", DTD_ATTACKS)
def test_safe_parser_rejects_dtd_even_without_the_byte_scan(monkeypatch: pytest.MonkeyPatch, doctype: str) -> None:
    monkeypatch.setattr(validation, "_DTD_MARKUP", re.compile(rb"(?!)"))
    with pytest.raises(InvalidBpmn) as caught:
        parse(with_doctype(doctype))
    (problem,) = caught.value.problems
    # libxml2 refuses nested entity definitions itself (amplification limit) before our DOCTYPE check runs.
    assert problem.message == "DOCTYPE and entities are not allowed" or "amplification" in problem.message


def test_xxe_never_reads_the_referenced_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-MARKER")
    data = with_doctype(f'<!DOCTYPE definitions [<!ENTITY xxe SYSTEM "{secret.as_uri()}">]>')
    for scan in (validation._DTD_MARKUP, re.compile(rb"(?!)")):
        monkeypatch.setattr(validation, "_DTD_MARKUP", scan)
        with pytest.raises(InvalidBpmn) as caught:
            parse(data)
        assert "TOP-SECRET-MARKER" not in json.dumps(caught.value.as_dict())


def test_oversize_file_is_rejected_before_parsing() -> None:
    with pytest.raises(InvalidBpmn) as caught:
        parse_diagram(b"<" * 101, filename="x.bpmn", handlers=HANDLERS, forms=FORMS, max_bytes=100)
    assert [p.message for p in caught.value.problems] == ["file is larger than 100 bytes"]


def test_valid_diagram_returns_parsed_diagram() -> None:
    parsed = parse(make_bpmn())
    assert parsed.process_id == "capa"
    assert parsed.name == "CAPA"
    assert parsed.forms == FORMS
    assert parsed.warnings == []
    assert {"review", "notify", "calc", "escalate_timer"} <= set(parsed.spec.task_specs)
    assert "investigate" in parsed.subprocess_specs
    assert extension_properties(parsed.spec.task_specs["review"])["dueIn"] == "P3D"


@pytest.mark.parametrize("encoding", ["ASCII", "us-ascii", "utf8"])
def test_ascii_and_utf8_declarations_are_accepted(encoding: str) -> None:
    data = make_bpmn().replace(b'encoding="UTF-8"', f'encoding="{encoding}"'.encode())
    assert parse(data).process_id == "capa"


@pytest.mark.parametrize(("kind", "expression"), [
    ("timeDuration", '"P1DT2H"'),
    ("timeDuration", "'P2W'"),
    ("timeDate", '"2030-01-31T09:00:00Z"'),
    ("timeCycle", '"R3/PT1H"'),
])
def test_valid_timer_literals_pass(kind: str, expression: str) -> None:
    assert parse(make_bpmn(timer_kind=kind, timer=expression)).warnings == []


def test_timer_over_process_data_is_only_a_warning() -> None:
    parsed = parse(make_bpmn(timer="escalation_after"))
    assert [(p.element_id, p.severity) for p in parsed.warnings] == [("escalate_timer", "warning")]
    assert parsed.warnings[0].line == source_line(make_bpmn(), "escalate_timer") + 2


def test_all_problems_are_gathered_in_file_order() -> None:
    data = make_bpmn(properties={"dueIn": "soon"}, operator="mail.nope", timer="escalation_after",
                     extra='<bpmn:task id="orphan" />')
    with pytest.raises(InvalidBpmn) as caught:
        parse(data)
    found = {(p.element_id, p.severity) for p in caught.value.problems}
    assert {("review", "error"), ("notify", "error"), ("orphan", "error"), ("escalate_timer", "warning")} <= found
    lines = [p.line for p in caught.value.problems]
    assert lines == sorted(lines)


def test_script_error_points_at_the_offending_file_line() -> None:
    data = make_bpmn(script="x = 1\ny = = 2")
    with pytest.raises(InvalidBpmn) as caught:
        parse(data)
    (problem,) = [p for p in caught.value.problems if p.element_id == "calc"]
    assert "on its line 2" in problem.message
    assert problem.line == source_line(data, "calc") + 2


def test_data_expression_parameter_is_only_syntax_checked() -> None:
    assert parse(make_bpmn(params={"days": "escalation_days + 1"})).warnings == []


@pytest.mark.parametrize(("text", "expected"), [
    ("P3D", datetime.timedelta(days=3)),
    ("PT4H", datetime.timedelta(hours=4)),
    ("P1DT2H", datetime.timedelta(days=1, hours=2)),
    ("P2W", datetime.timedelta(weeks=2)),
    ("P1Y", datetime.timedelta(days=365)),
    ("P1M", datetime.timedelta(days=30)),
    ("PT1M30S", datetime.timedelta(minutes=1, seconds=30)),
    ("PT1,5H", datetime.timedelta(minutes=90)),
])
def test_parse_duration(text: str, expected: datetime.timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "P", "PT", "P1DT", "3D", "P1H", "PT1D", "P-1D", "1 day", "P1.5",
                                  "P" + "9" * 400 + "D"])
def test_parse_duration_rejects_bad_input(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(("task_spec", "expected"), [
    (SimpleNamespace(extensions={"properties": {"dueIn": "P1D"}}), {"dueIn": "P1D"}),
    (SimpleNamespace(extensions={}), {}),
    (SimpleNamespace(extensions=None), {}),
    (object(), {}),
])
def test_extension_properties(task_spec: object, expected: dict) -> None:
    assert extension_properties(task_spec) == expected


# --- DMN decision tables deployed with a diagram ------------------------------------------------------------

DMN_NS = "https://www.omg.org/spec/DMN/20191111/MODEL/"
RULE_TASK = ('<bpmn:businessRuleTask id="rate" name="Rate">'
             '<bpmn:extensionElements><spiffworkflow:calledDecisionId>{decision}</spiffworkflow:calledDecisionId>'
             '</bpmn:extensionElements></bpmn:businessRuleTask>')


def make_dmn(decision: str = "rating", cell: str = '"high"', decisions: int = 1) -> bytes:
    tables = "".join(f"""
  <decision id="{decision}{'_' + str(n) if n else ''}" name="Rating">
    <decisionTable id="table{n}">
      <input id="in{n}" label="Score">
        <inputExpression id="in_expr{n}" typeRef="string"><text>score</text></inputExpression>
      </input>
      <output id="out{n}" label="Rating" name="rating" typeRef="string"/>
      <rule id="rule{n}">
        <inputEntry id="rule{n}_in"><text>&gt;= 3</text></inputEntry>
        <outputEntry id="rule{n}_out"><text>{escape(cell)}</text></outputEntry>
      </rule>
    </decisionTable>
  </decision>""" for n in range(decisions))
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<definitions xmlns="{DMN_NS}" id="d" name="d" namespace="x">' \
           f"{tables}\n</definitions>\n".encode()


def with_rule_task(task: str = RULE_TASK.format(decision="rating")) -> bytes:
    """Put task (id "rate") between the subprocess and the end."""
    data = make_bpmn(extra=task + '<bpmn:sequenceFlow id="f_rate" sourceRef="rate" targetRef="done" />')
    return data.replace(b'sourceRef="investigate" targetRef="done"', b'sourceRef="investigate" targetRef="rate"')


def parse_with(data: bytes, decisions: dict[str, bytes]) -> ParsedDiagram:
    return parse_diagram(data, filename="capa.bpmn", handlers=HANDLERS, forms=FORMS, decisions=decisions)


def test_a_business_rule_task_deploys_with_the_dmn_file_it_calls() -> None:
    parsed = parse_with(with_rule_task(), {"rating.dmn": make_dmn(), "other.dmn": make_dmn("other")})
    assert set(parsed.decisions) == {"rating.dmn"}
    assert [p.message for p in parsed.warnings] == [
        "other.dmn: no business rule task calls its decision other, so it is not deployed with the diagram"]


BAD_DECISIONS = [
    pytest.param(with_rule_task(), {}, "rate", "calls decision rating, which no .dmn file", id="dmn-missing"),
    pytest.param(with_rule_task(RULE_TASK.replace(
        "<bpmn:extensionElements><spiffworkflow:calledDecisionId>{decision}</spiffworkflow:calledDecisionId>"
        "</bpmn:extensionElements>", "").replace('name="Rate"', 'name="Rate" camunda:decisionRef="rating" '
                                                            'xmlns:camunda="http://camunda.org/schema/1.0/bpmn"')),
                 {"rating.dmn": make_dmn()}, "rate", "<spiffworkflow:calledDecisionId>rating</spiffworkflow:"
                                                     "calledDecisionId>", id="camunda-decision-ref"),
    pytest.param(with_rule_task(), {"rating.dmn": make_dmn(cell="[1..5]")}, "rule0_out", "cells are Python, not FEEL",
                 id="feel-cell"),
    pytest.param(with_rule_task(), {"rating.dmn": make_dmn(decisions=2)}, None, "exactly one decision, found 2",
                 id="two-decisions"),
    pytest.param(with_rule_task(), {"rating.dmn": make_dmn(), "copy.dmn": make_dmn()}, "rating",
                 "decision rating is also defined in", id="duplicate-decision"),
    pytest.param(with_rule_task(), {"rating.dmn": make_dmn().replace(b"<decisionTable", b"<bogus/><decisionTable")},
                 None, "rating.dmn: ", id="dmn-schema-error"),
]


@pytest.mark.parametrize(("data", "decisions", "element_id", "fragment"), BAD_DECISIONS)
def test_bad_decision_tables_are_located(data: bytes, decisions: dict[str, bytes], element_id: str | None,
                                         fragment: str) -> None:
    with pytest.raises(InvalidBpmn) as caught:
        parse_with(data, decisions)
    assert any(p.element_id == element_id and fragment in p.message and p.severity == "error"
               for p in caught.value.problems), caught.value.problems


def test_a_dmn_file_that_is_no_dmn_is_refused() -> None:
    with pytest.raises(InvalidBpmn, match="dmn:definitions of DMN 1.1, 1.2 or 1.3"):
        parse_with(with_rule_task(), {"rating.dmn": make_bpmn()})


def test_call_activities_to_other_files_are_listed_with_their_call_site() -> None:
    call = '<bpmn:callActivity id="call_checklist" calledElement="checklist" />'
    data = with_rule_task(call.replace("call_checklist", "rate"))
    parsed = parse(data)
    assert parsed.calls == {"checklist": validation.CallSite("rate", source_line(data, "rate"))}


def test_a_chain_too_long_for_the_parser_is_refused_with_a_clear_message():
    from tests.unit.services.large_diagrams import chain

    steps = chain(700).replace(b"<bpmn:userTask ", b"<bpmn:task ")  # tasks without a lane or form to lint

    with pytest.raises(InvalidBpmn) as refused:
        parse_diagram(steps, filename="long.bpmn", handlers=HANDLERS, forms=FORMS)

    text = " ".join(problem.message for problem in refused.value.problems)
    assert "too many steps one after another" in text
    assert "RecursionError" not in text and "recursion" not in text.lower()


PRE_SCRIPT = """<bpmn:task id="prepared"><bpmn:extensionElements>
      <spiffworkflow:preScript>x = 1
import os</spiffworkflow:preScript></bpmn:extensionElements></bpmn:task>"""
LOOPED = """<bpmn:task id="looped"><bpmn:standardLoopCharacteristics>
      <bpmn:loopCondition>().__class__ is None</bpmn:loopCondition></bpmn:standardLoopCharacteristics></bpmn:task>"""
EACH = """<bpmn:task id="each"><bpmn:multiInstanceLoopCharacteristics>
      <bpmn:loopCardinality>3</bpmn:loopCardinality>
      <bpmn:completionCondition>open('/etc/passwd')</bpmn:completionCondition>
    </bpmn:multiInstanceLoopCharacteristics></bpmn:task>"""


@pytest.mark.parametrize(("bpmn", "element_id", "message"), [
    (make_bpmn(script="x = 1\nimport os"), "calc",
     "script is refused by the script sandbox on its line 2: imports are not allowed."),
    (make_bpmn(condition="().__class__ is None"), "flow_approved", 'condition is refused by the script sandbox on its '
                                                                   'line 1: "__class__" is an invalid attribute name'),
    (make_bpmn(properties={"assignee": "owner.__class__"}), "review", "assignee is refused by the script sandbox"),
    (make_bpmn(params={"subject": "'{0}'.format(1)"}), "notify",
     'parameter subject: refused by the script sandbox: "format" is a forbidden attribute.'),
    (make_bpmn(timer='__import__("os")'), "escalate_timer", "timeDuration is refused by the script sandbox"),
    (make_bpmn(extra=PRE_SCRIPT), "prepared", "preScript is refused by the script sandbox on its line 2: imports"),
    (make_bpmn(extra=LOOPED), "looped", "loopCondition is refused by the script sandbox"),
    (make_bpmn(extra=EACH), "each", 'completionCondition is refused by the script sandbox on its line 1: "open" is '
                                    "not available in scripts."),
], ids=["script", "condition", "property", "parameter", "timer", "pre-script", "loop", "multi-instance"])
def test_code_the_script_sandbox_refuses_is_reported_at_deploy_with_element_and_line(bpmn: bytes, element_id: str,
                                                                                      message: str) -> None:
    with pytest.raises(InvalidBpmn) as refused:
        parse(bpmn)
    found = [p for p in refused.value.problems if p.element_id == element_id and message in p.message]
    assert found and found[0].line, refused.value.problems

"""Parse uploaded BPMN safely and lint it before deploy, reporting problems by element id and source line."""
from __future__ import annotations

import ast
import datetime
import functools
import re
import threading
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

from flask_babel import gettext as _
from lxml import etree
from marshmallow import ValidationError
from SpiffWorkflow.bpmn.parser.BpmnParser import BpmnValidator
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.bpmn.specs.bpmn_process_spec import BpmnProcessSpec
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from SpiffWorkflow.dmn.parser.BpmnDmnParser import SCHEMAS as DMN_SCHEMAS
from SpiffWorkflow.spiff.parser.process import SPIFF_XSD, SpiffBpmnParser

from app.engine import script_workers
from app.exceptions import BpmnProblem, InvalidBpmn

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
SPIFF_NS = "http://spiffworkflow.org/bpmn/schema/1.0/core"
CAMUNDA_NS = "http://camunda.org/schema/1.0/bpmn"
NSMAP = {"bpmn": BPMN_NS, "spiffworkflow": SPIFF_NS}

SIGNATURE_MEANINGS = ("authored", "reviewed", "approved", "released", "responsibility")
FORM_PROPERTIES = ("formJsonSchemaFilename", "formUiSchemaFilename")
# User-task properties that are sandboxed expressions over the task's own data, evaluated when it is created.
TASK_EXPRESSIONS = ("assignee", "dueDate", "subject")


def _bpmn(tag: str) -> str:
    return f"{{{BPMN_NS}}}{tag}"


_FLOW_NODES = frozenset(_bpmn(tag) for tag in (
    "startEvent", "endEvent", "intermediateCatchEvent", "intermediateThrowEvent", "boundaryEvent",
    "task", "userTask", "manualTask", "serviceTask", "scriptTask", "sendTask", "receiveTask", "businessRuleTask",
    "callActivity", "subProcess", "transaction", "adHocSubProcess",
    "exclusiveGateway", "inclusiveGateway", "parallelGateway", "eventBasedGateway", "complexGateway",
))
_CONTAINERS = frozenset(_bpmn(tag) for tag in ("subProcess", "transaction", "adHocSubProcess"))
_TIMER_KINDS = ("timeDate", "timeDuration", "timeCycle")  # the order SpiffWorkflow looks for them in
_TIMER_EXAMPLES = {"timeDate": '"2030-01-31T09:00:00Z"', "timeDuration": '"PT5M"', "timeCycle": '"R3/PT1H"'}

# Camunda Modeler writes conditions and timers in JUEL: ${...} or #{...}.
_JUEL = re.compile(r"\s*[$#]\{(.*)\}\s*", re.DOTALL)
_JUEL_OPERATORS = ((re.compile(r"&&"), " and "), (re.compile(r"\|\|"), " or "), (re.compile(r"!(?!=)"), "not "),
                   (re.compile(r"\s+"), " "))
# Quartz (Camunda) cron: [seconds] minutes hours day-of-month month day-of-week [year].
_CRON_FIELD = r"[0-9A-Za-z*?/,#LW-]+"
_CRON = re.compile(rf"(?:(?P<second>{_CRON_FIELD})\s+)?(?P<minute>{_CRON_FIELD})\s+(?P<hour>{_CRON_FIELD})\s+"
                   rf"(?P<day>{_CRON_FIELD})\s+(?P<month>{_CRON_FIELD})\s+(?P<weekday>{_CRON_FIELD})"
                   rf"(?:\s+[0-9*?/,-]+)?")
_CRON_WEEKDAYS = {"MON": 1, "TUE": 2, "WED": 3, "THU": 4, "FRI": 5, "SAT": 6, "SUN": 7}  # ISO numbering

# What ast.literal_eval raises for parseable code that is not a plain literal (names, calls, operators).
_NOT_A_LITERAL = (ValueError, TypeError, RecursionError)

_DTD_MARKUP = re.compile(rb"<!(?:DOCTYPE|ENTITY)")
# Names under which a declaration promises bytes that are valid UTF-8 (ASCII is a subset of it).
_UTF8_NAMES = frozenset(("utf-8", "utf8", "ascii", "us-ascii"))
_DECLARED_ENCODING = re.compile(rb"""\A(?:\xef\xbb\xbf)?\s*<\?xml[^>]*?encoding\s*=\s*["']([^"']*)["']""")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = r"\d+(?:[.,]\d+)?"
_DURATION = re.compile(
    rf"P(?!$)(?:(?P<years>{_NUMBER})Y)?(?:(?P<months>{_NUMBER})M)?(?:(?P<weeks>{_NUMBER})W)?(?:(?P<days>{_NUMBER})D)?"
    rf"(?:T(?=\d)(?:(?P<hours>{_NUMBER})H)?(?:(?P<minutes>{_NUMBER})M)?(?:(?P<seconds>{_NUMBER})S)?)?"
)

_DMN_ROOTS = frozenset(f"{{{namespace}}}definitions" for namespace in DMN_SCHEMAS)  # DMN 1.1, 1.2 and 1.3
_DMN_VALIDATORS: dict[str, BpmnValidator] = {}  # by namespace, built on first use (and used under _SCHEMA_LOCK)

# Our own validator instance: lxml keeps the error log on the schema object, so concurrent deploys
# must not share it with each other (the lock) nor with other users of SpiffWorkflow's VALIDATOR.
_SCHEMA = BpmnValidator(imports={"spiffworkflow": SPIFF_XSD})
_SCHEMA_LOCK = threading.Lock()
_SAFE_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
                               huge_tree=False, encoding="utf-8")


@dataclass(frozen=True)
class CallSite:
    """Where a diagram calls another process: the first call activity naming it."""

    element_id: str | None
    line: int | None


@dataclass
class ParsedDiagram:
    """A deployable diagram: its single executable process, parsed specs, referenced forms and warnings.

    `calls` names the processes its call activities call that the file itself does not define (other deployed
    processes); `decision_files` the .dmn files its business rule tasks use.
    """

    process_id: str
    name: str
    spec: BpmnProcessSpec
    subprocess_specs: dict
    forms: set[str]
    warnings: list[BpmnProblem]
    calls: dict[str, CallSite] = field(default_factory=dict)
    decisions: dict[str, str] = field(default_factory=dict)  # .dmn file name -> XML text, of the files it uses


@dataclass(frozen=True)
class DiagramOutline:
    """What a deploy needs to know of a diagram before linting it: its process id, calls and element ids."""

    process_id: str | None
    calls: frozenset[str]
    element_ids: frozenset[str]


def parse_diagram(data: bytes, *, filename: str, handlers: Mapping[str, Any], forms: Collection[str],
                  max_bytes: int = 2_000_000, decisions: Mapping[str, bytes] | None = None) -> ParsedDiagram:
    """Parse and lint a BPMN file with the .dmn files deployed with it (name -> bytes); raise InvalidBpmn."""
    root = _parse_xml(data, filename=filename, max_bytes=max_bytes)
    dmn_roots = {name: _parse_xml(content, filename=name, max_bytes=max_bytes, dmn=True)
                 for name, content in sorted((decisions or {}).items())}
    problems: list[BpmnProblem] = []
    decision_files = _check_decisions(dmn_roots, problems)  # decision id -> file name
    dmn_valid = not problems
    executable = [p for p in root.iterfind("bpmn:process", NSMAP) if p.get("isExecutable") == "true"]
    if not executable:
        problems.append(_at(root, 'the file must contain exactly one executable process (isExecutable="true")'))
    elif len(executable) > 1:
        ids = ", ".join(str(p.get("id")) for p in executable)
        problems.append(_at(executable[1], f"the file must contain exactly one executable process, found: {ids}"))
    schema_valid = _check_schema(root, problems)
    referenced_forms: set[str] = set()
    called_decisions: set[str] = set()
    for process in executable:
        referenced_forms |= _lint_process(process, handlers=handlers, forms=forms, problems=problems)
        called_decisions |= _check_business_rule_tasks(process, decision_files, problems)
    specs = None
    # SpiffWorkflow's parser assumes schema-valid input; on invalid input it only adds confusing follow-up errors.
    if len(executable) == 1 and schema_valid and dmn_valid:
        specs = _build_specs(root, str(executable[0].get("id")), filename, problems, dmn_roots)
    for decision_id, name in sorted(decision_files.items()):
        if decision_id not in called_decisions:
            problems.append(BpmnProblem(_("%(file)s: no business rule task calls its decision %(decision)s, so it "
                                          "is not deployed with the diagram", file=name, decision=decision_id),
                                        severity="warning"))
    problems.sort(key=lambda p: p.line or 0)
    if specs is None or any(p.severity == "error" for p in problems):
        raise InvalidBpmn(problems, filename=filename)
    process = executable[0]
    return ParsedDiagram(process_id=str(process.get("id")), name=process.get("name") or str(process.get("id")),
                         spec=specs[0], subprocess_specs=specs[1], forms=referenced_forms, warnings=problems,
                         calls=_external_calls(root, process),
                         decisions={decision_files[d]: decisions[decision_files[d]].decode("utf-8")
                                    for d in called_decisions if d in decision_files})


def outline(data: bytes, *, filename: str, max_bytes: int) -> DiagramOutline:
    """Read the executable process's id, the other processes it calls and its element ids; raise InvalidBpmn."""
    root = _parse_xml(data, filename=filename, max_bytes=max_bytes)
    executable = [p for p in root.iterfind("bpmn:process", NSMAP) if p.get("isExecutable") == "true"]
    if len(executable) != 1:
        return DiagramOutline(None, frozenset(), frozenset())
    process = executable[0]
    return DiagramOutline(process.get("id"), frozenset(_external_calls(root, process)),
                          frozenset(element.get("id") for element in process.iter(etree.Element) if element.get("id")))


def parse_xml(data: bytes, *, filename: str, max_bytes: int) -> etree._Element:
    """Parse BPMN XML the way deploys do (size limit, UTF-8 only, no DTD or entities); raise InvalidBpmn."""
    return _parse_xml(data, filename=filename, max_bytes=max_bytes)


def extension_properties(task_spec: Any) -> dict[str, str]:
    """Return the spiffworkflow:properties of a task spec, or an empty dict when it has none."""
    extensions = getattr(task_spec, "extensions", None)
    properties = extensions.get("properties") if isinstance(extensions, dict) else None
    return dict(properties) if isinstance(properties, dict) else {}


def parse_duration(text: str) -> datetime.timedelta:
    """Convert an ISO 8601 duration to a timedelta, counting a year as 365 days and a month as 30."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not an ISO 8601 duration such as P3D, PT4H, P1DT2H or P2W")
    n = {unit: float(value.replace(",", ".")) for unit, value in match.groupdict(default="0").items()}
    try:
        return datetime.timedelta(days=n["years"] * 365 + n["months"] * 30 + n["weeks"] * 7 + n["days"],
                                  hours=n["hours"], minutes=n["minutes"], seconds=n["seconds"])
    except OverflowError as exc:
        raise ValueError(f"duration {text!r} is too long") from exc


def _reject(message: str, filename: str, line: int | None = None) -> NoReturn:
    raise InvalidBpmn([BpmnProblem(message, line=line)], filename=filename)


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def _parse_xml(data: bytes, *, filename: str, max_bytes: int, dmn: bool = False) -> etree._Element:
    """Parse the upload into an lxml tree without ever loading a DTD or expanding an entity."""
    if len(data) > max_bytes:
        _reject(f"file is larger than {max_bytes} bytes", filename)
    # Rejected before any XML parser runs: a DTD is the vehicle of XXE, billion laughs and external fetches.
    dtd = _DTD_MARKUP.search(data)
    if dtd:
        _reject("DOCTYPE and entities are not allowed", filename, _line_of(data, dtd.start()))
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        _reject(_("file is not UTF-8 encoded (invalid byte %(byte)s); convert it, e.g. from Latin-1 with "
                  "`iconv -f ISO-8859-1 -t UTF-8 in.bpmn > out.bpmn`", byte=f"{data[exc.start]:#04x}"), filename,
                _line_of(data, exc.start))
    declared = _DECLARED_ENCODING.match(data)
    encoding = declared.group(1).decode() if declared else "utf-8"
    if encoding.lower() not in _UTF8_NAMES:
        _reject(_("file declares encoding %(encoding)s; only UTF-8 (or its subset ASCII) is accepted: convert it "
                  "with `iconv -f %(encoding)s -t UTF-8 in.bpmn > out.bpmn` and change the declaration to "
                  'encoding="UTF-8"', encoding=encoding), filename, 1)
    # Decoded as UTF-8 whatever the declaration names: the bytes were checked above, and ASCII is a subset of it.
    try:
        root = etree.fromstring(data, _SAFE_PARSER)
    except etree.XMLSyntaxError as exc:
        _reject(f"malformed XML: {exc.msg or exc}", filename, exc.lineno)
    docinfo = root.getroottree().docinfo
    # Second line of defence should the byte scan above ever be loosened.
    if docinfo.doctype or docinfo.internalDTD is not None:
        _reject("DOCTYPE and entities are not allowed", filename, 1)
    if dmn and root.tag not in _DMN_ROOTS:
        _reject(_("the root element must be dmn:definitions of DMN 1.1, 1.2 or 1.3"), filename, root.sourceline)
    if not dmn and root.tag != _bpmn("definitions"):
        _reject("the root element must be bpmn:definitions", filename, root.sourceline)
    return root


def _at(element: etree._Element, message: str, *, line: int | None = None, severity: str = "error") -> BpmnProblem:
    return BpmnProblem(message, element_id=element.get("id"), line=line or element.sourceline, severity=severity)


def _short_names(message: str) -> str:
    return message.replace(f"{{{BPMN_NS}}}", "bpmn:").replace(f"{{{SPIFF_NS}}}", "spiffworkflow:")


def _check_schema(root: etree._Element, problems: list[BpmnProblem]) -> bool:
    """Validate against the BPMN and SpiffWorkflow XSDs, adding one problem per schema error."""
    with _SCHEMA_LOCK:
        _SCHEMA.preprocess(root)
        if _SCHEMA.validator.validate(root):
            return True
        entries = list(_SCHEMA.validator.error_log)
    by_line: dict[int, etree._Element] = {}
    for element in root.iter(etree.Element):
        by_line.setdefault(element.sourceline, element)
    for entry in entries:
        # Schema errors carry only a line; name the nearest enclosing element that has an id.
        element = by_line.get(entry.line)
        while element is not None and element.get("id") is None:
            element = element.getparent()
        element_id = element.get("id") if element is not None else None
        problems.append(BpmnProblem(_short_names(entry.message), element_id=element_id, line=entry.line or None))
    return False


def _spiff_specs(root: etree._Element, process_id: str, filename: str,
                 dmn_roots: Mapping[str, etree._Element]) -> tuple[BpmnProcessSpec, dict]:
    parser = SpiffBpmnParser()  # schema validation already ran in _check_schema
    for name, dmn_root in dmn_roots.items():
        parser.add_dmn_xml(dmn_root, filename=name)
    parser.add_bpmn_xml(root, filename=filename)
    spec = parser.get_spec(process_id)
    # A call activity to another deployed process has no spec here (None): the version pinned at deploy gives it.
    subprocess_specs = parser.get_subprocess_specs(process_id, require_call_activity_specs=False)
    return spec, {name: sub for name, sub in subprocess_specs.items() if sub is not None}


def _from_recursion(exc: BaseException) -> bool:
    seen = exc
    while seen is not None:
        if isinstance(seen, RecursionError) or str(seen).startswith("RecursionError"):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _too_long_a_chain(root: etree._Element) -> str:
    steps = len(root.xpath("//*[local-name()='sequenceFlow']"))
    return _("This process chains too many steps one after another for the engine (%(steps)d sequence flows; "
             "about 400 in a row is the limit). Split it into subprocesses or call activities.", steps=steps)


def _build_specs(root: etree._Element, process_id: str, filename: str, problems: list[BpmnProblem],
                 dmn_roots: Mapping[str, etree._Element]) -> tuple[BpmnProcessSpec, dict] | None:
    """Run SpiffWorkflow's parser on the already safely parsed tree, turning its exceptions into problems."""
    try:
        return _spiff_specs(root, process_id, filename, dmn_roots)
    except ValidationException as exc:
        element_id = exc.id or None
        line = exc.line_number if isinstance(exc.line_number, int) and exc.line_number else None
        message = str(exc.args[0]) if exc.args else "invalid diagram"
        if _from_recursion(exc):  # SpiffWorkflow's task parser wraps it
            element_id, line, message = None, None, _too_long_a_chain(root)
    except RecursionError:  # SpiffWorkflow's parser follows a chain of steps by recursion
        element_id, line, message = None, None, _too_long_a_chain(root)
    except Exception as exc:  # SpiffWorkflow lets KeyError, AttributeError etc. escape on malformed extensions
        element_id, line, message = None, None, f"{type(exc).__name__}: {exc}"
    if element_id and line is None:
        element = next(iter(root.xpath("//*[@id=$id]", id=element_id)), None)
        line = element.sourceline if element is not None else None
    # Our lint already explains problems on this element more precisely.
    if element_id is None or not any(p.element_id == element_id and p.severity == "error" for p in problems):
        problems.append(BpmnProblem(message, element_id=element_id, line=line))
    return None


def _lint_process(process: etree._Element, *, handlers: Mapping[str, Any], forms: Collection[str],
                  problems: list[BpmnProblem]) -> set[str]:
    """Check one executable process; return the form files its user tasks reference."""
    referenced = _check_user_tasks(process, forms, problems)
    for task in process.iterfind(".//bpmn:serviceTask", NSMAP):
        _check_service_task(task, handlers, problems)
    _check_scripts(process, problems)
    for condition in process.iterfind(".//bpmn:sequenceFlow/bpmn:conditionExpression", NSMAP):
        text = (condition.text or "").strip()
        foreign = _foreign_expression(text)
        if foreign:
            problems.append(_at(condition.getparent(), _(
                "condition %(text)s is a Camunda expression; conditions are Python expressions over the process "
                "data: write %(python)s", text=text, python=foreign), line=condition.sourceline))
            continue
        # An empty condition is SpiffWorkflow's to judge: it is only an error on a non-default gateway flow.
        error = _syntax_error(text, "eval") if text else None
        if error:
            problems.append(_at(condition.getparent(), f"condition has a syntax error: {error.msg}",
                                line=condition.sourceline))
    for definition in process.iterfind(".//bpmn:timerEventDefinition", NSMAP):
        _check_timer(definition, problems)
    _check_reachable(process, problems)
    return referenced


def _external_calls(root: etree._Element, process: etree._Element) -> dict[str, CallSite]:
    """Map each process the call activities call, and the file does not define, to its first call site."""
    defined = {p.get("id") for p in root.iterfind("bpmn:process", NSMAP)}
    calls: dict[str, CallSite] = {}
    for activity in process.iterfind(".//bpmn:callActivity", NSMAP):
        called = (activity.get("calledElement") or "").strip()
        if called and called not in defined:
            calls.setdefault(called, CallSite(activity.get("id"), activity.sourceline))
    return calls


def _check_decisions(dmn_roots: Mapping[str, etree._Element], problems: list[BpmnProblem]) -> dict[str, str]:
    """Check each .dmn file (schema, one decision, Python cells); return decision id -> file name."""
    files: dict[str, str] = {}
    for name, root in dmn_roots.items():
        namespace = etree.QName(root).namespace
        nsmap = {"dmn": namespace}
        if not _check_dmn_schema(name, root, namespace, problems):
            continue
        decisions = root.findall("dmn:decision", nsmap)
        if len(decisions) != 1:
            problems.append(BpmnProblem(_("%(file)s: a .dmn file must hold exactly one decision, found %(n)s",
                                          file=name, n=len(decisions)), line=root.sourceline))
            continue
        decision_id = decisions[0].get("id")
        if decision_id in files:
            problems.append(BpmnProblem(_("%(file)s: decision %(decision)s is also defined in %(other)s",
                                          file=name, decision=decision_id, other=files[decision_id]),
                                        element_id=decision_id, line=decisions[0].sourceline))
            continue
        files[decision_id] = name
        _check_decision_cells(name, decisions[0], nsmap, problems)
    return files


def _check_dmn_schema(name: str, root: etree._Element, namespace: str, problems: list[BpmnProblem]) -> bool:
    with _SCHEMA_LOCK:
        validator = _DMN_VALIDATORS.get(namespace)
        if validator is None:
            validator = _DMN_VALIDATORS[namespace] = BpmnValidator(DMN_SCHEMAS[namespace])
        if validator.validator.validate(root):
            return True
        entries = list(validator.validator.error_log)
    problems.extend(BpmnProblem(f"{name}: {entry.message}", line=entry.line or None) for entry in entries)
    return False


def _check_decision_cells(name: str, decision: etree._Element, nsmap: dict[str, str],
                          problems: list[BpmnProblem]) -> None:
    """Check that rule cells are Python, as SpiffWorkflow's DMN engine evaluates them (FEEL is not supported)."""
    for row, rule in enumerate(decision.iterfind("dmn:decisionTable/dmn:rule", nsmap), start=1):
        for entry in rule:
            kind = etree.QName(entry).localname
            text = (entry.findtext("dmn:text", namespaces=nsmap) or "").strip()
            if kind not in ("inputEntry", "outputEntry") or text in ("", "-"):
                continue
            # An input cell is a value to compare with (== is added), a comparison such as >= 3, or uses ? (the input).
            source = text.replace("?", "dmn_input")
            valid = (_syntax_error(source, "eval") is None
                     or (kind == "inputEntry" and _syntax_error(f"dmn_input {source}", "eval") is None))
            if not valid:
                problems.append(BpmnProblem(_(
                    "%(file)s: rule %(row)s of decision %(decision)s: %(text)s is not a Python expression; cells are "
                    "Python, not FEEL: write e.g. \"high\", >= 3 or 1 <= ? <= 5", file=name, row=row,
                    decision=decision.get("id"), text=text), element_id=entry.get("id"), line=entry.sourceline))


def _check_business_rule_tasks(process: etree._Element, decision_files: Mapping[str, str],
                               problems: list[BpmnProblem]) -> set[str]:
    """Check that every business rule task calls a decision of the .dmn files deployed with it; return their ids."""
    called: set[str] = set()
    for task in process.iterfind(".//bpmn:businessRuleTask", NSMAP):
        decision_id = (task.findtext("bpmn:extensionElements/spiffworkflow:calledDecisionId", namespaces=NSMAP)
                       or "").strip()
        if not decision_id:
            camunda = task.get(f"{{{CAMUNDA_NS}}}decisionRef")
            hint = _(" (camunda:decisionRef is Camunda's way to say it)") if camunda else ""
            problems.append(_at(task, _(
                "business rule task %(id)s names no decision: add <spiffworkflow:calledDecisionId>%(decision)s"
                "</spiffworkflow:calledDecisionId> to its extensionElements%(hint)s", id=task.get("id"),
                decision=camunda or "decision_id", hint=hint)))
            continue
        called.add(decision_id)
        if decision_id not in decision_files:
            problems.append(_at(task, _(
                "business rule task %(id)s calls decision %(decision)s, which no .dmn file deployed with the diagram "
                "defines (%(found)s); deploy the .dmn file together with the .bpmn", id=task.get("id"),
                decision=decision_id, found=", ".join(sorted(decision_files)) or _("none given"))))
    return called


def _check_user_tasks(process: etree._Element, forms: Collection[str], problems: list[BpmnProblem]) -> set[str]:
    """Check lanes, forms and our extension properties of every user task."""
    for lane in process.iterfind(".//bpmn:lane", NSMAP):
        if not (lane.get("name") or "").strip():
            problems.append(_at(lane, f"lane {lane.get('id')} has no name (lane names map to groups)"))
    in_lane = {ref.text.strip() for ref in process.iterfind(".//bpmn:flowNodeRef", NSMAP) if ref.text}
    referenced: set[str] = set()
    for task in process.iterfind(".//bpmn:userTask", NSMAP):
        task_id = task.get("id")
        # SpiffWorkflow gives tasks inside a subprocess the subprocess's lane.
        if not any(node.get("id") in in_lane for node in (task, *task.iterancestors())):
            problems.append(_at(task, f"user task {task_id} has no lane"))
        properties = _properties(task, problems)
        if not properties.get("formJsonSchemaFilename"):
            problems.append(_at(task, f"user task {task_id} has no form (property formJsonSchemaFilename)"))
        for name in FORM_PROPERTIES:
            form = properties.get(name)
            if form:
                referenced.add(form)
                if form not in forms:
                    problems.append(_at(task, f"form {form} does not exist"))
        _check_task_properties(task, properties, problems)
    return referenced


def _properties(task: etree._Element, problems: list[BpmnProblem]) -> dict[str, str]:
    properties = {}
    for prop in task.iterfind("bpmn:extensionElements/spiffworkflow:properties/spiffworkflow:property", NSMAP):
        name, value = prop.get("name"), prop.get("value")
        if name is None or value is None:
            problems.append(_at(task, "spiffworkflow:property needs both name and value", line=prop.sourceline))
        else:
            properties[name] = value
    return properties


def _check_task_properties(task: etree._Element, properties: dict[str, str], problems: list[BpmnProblem]) -> None:
    due_in = properties.get("dueIn")
    if due_in is not None:
        try:
            parse_duration(due_in)
        except ValueError:
            problems.append(_at(task, f"dueIn {due_in!r} is not an ISO 8601 duration such as P3D, PT4H or P1DT2H"))
    meaning = properties.get("signatureMeaning")
    if meaning is not None and meaning not in SIGNATURE_MEANINGS:
        problems.append(_at(task, f"signatureMeaning {meaning!r} must be one of {', '.join(SIGNATURE_MEANINGS)}"))
    four_eyes = properties.get("fourEyesWith")
    if four_eyes is not None and not all(_IDENTIFIER.fullmatch(step.strip()) for step in four_eyes.split(",")):
        problems.append(_at(task, f"fourEyesWith {four_eyes!r} must be a comma-separated list of step ids"))
    evidence = properties.get("evidence")
    if evidence is not None and not all(_IDENTIFIER.fullmatch(kind.strip()) for kind in evidence.split(",")):
        problems.append(_at(task, f"evidence {evidence!r} must be a comma-separated list of document kind identifiers"))
    for name in TASK_EXPRESSIONS:
        expression = properties.get(name)
        if expression is None:
            continue
        error = _syntax_error(expression.strip(), "eval") if expression.strip() else SyntaxError("it is empty")
        if error:
            problems.append(_at(task, f"{name} must be an expression over the task's data: {error.msg}"))
            continue
        for _line, reason, severity in _sandbox_problems(expression.strip(), "eval"):
            problems.append(_at(task, _("%(name)s is refused by the script sandbox: %(reason)s", name=name,
                                        reason=reason), severity=severity))


def _check_service_task(task: etree._Element, handlers: Mapping[str, Any], problems: list[BpmnProblem]) -> None:
    """Check that a service task names a registered handler and passes parameters its schema accepts."""
    operator = task.find("bpmn:extensionElements/spiffworkflow:serviceTaskOperator", NSMAP)
    handler_id = operator.get("id") if operator is not None else None
    if not handler_id:
        problems.append(_at(task, f"service task {task.get('id')} names no handler "
                                  "(spiffworkflow:serviceTaskOperator id)"))
        return
    handler = handlers.get(handler_id)
    if handler is None:
        problems.append(_at(task, f"unknown handler {handler_id}", line=operator.sourceline))
        return
    given: dict[str, tuple[str, etree._Element]] = {}
    for param in operator.iterfind("spiffworkflow:parameters/spiffworkflow:parameter", NSMAP):
        if param.get("id") is None or param.get("value") is None:
            problems.append(_at(task, "spiffworkflow:parameter needs both id and value", line=param.sourceline))
        else:
            given[param.get("id")] = (param.get("value"), param)
    load_fields = handler.schema().load_fields
    names = {schema_field.data_key or name: name for name, schema_field in load_fields.items()}
    for key, name in names.items():
        if load_fields[name].required and key not in given:
            problems.append(_at(task, f"handler {handler_id} requires parameter {key}", line=operator.sourceline))
    for key, (value, param) in given.items():
        if key not in names:
            problems.append(_at(task, f"unknown parameter {key} for handler {handler_id}", line=param.sourceline))
            continue
        message = _parameter_error(handler.schema, names[key], key, value)
        if message:
            problems.append(_at(task, f"parameter {key}: {message}", line=param.sourceline))


def _parameter_error(schema: Any, name: str, key: str, value: str) -> str | None:
    """Validate a literal parameter against its schema field; only syntax-check an expression over data."""
    error = _syntax_error(value.strip(), "eval")
    if error:
        return f"invalid expression: {error.msg}"
    refused = [reason for _line, reason, severity in _sandbox_problems(value.strip(), "eval") if severity == "error"]
    if refused:
        return _("refused by the script sandbox: %(reason)s", reason=" ".join(refused))
    try:
        literal = ast.literal_eval(value.strip())
    except _NOT_A_LITERAL:
        return None  # an expression over process data, evaluated when the task runs
    try:
        schema(only=(name,)).load({key: literal}, partial=True)
    except ValidationError as exc:
        return "; ".join(_messages(exc.messages))
    return None


def _messages(messages: Any) -> Iterator[str]:
    if isinstance(messages, dict):
        for nested in messages.values():
            yield from _messages(nested)
    elif isinstance(messages, list):
        for nested in messages:
            yield from _messages(nested)
    else:
        yield str(messages)


def _syntax_error(source: str, mode: str) -> SyntaxError | None:
    """Return why source is not valid Python, or None; nothing is executed."""
    try:
        ast.parse(source, mode=mode)
    except SyntaxError as exc:
        return exc
    except (MemoryError, RecursionError):
        # CPython's parser gives up on pathologically nested code instead of raising SyntaxError.
        return SyntaxError("code is nested too deeply")
    return None


def _sandbox_problems(source: str, mode: str) -> list[tuple[int, str, str]]:
    """Return (line, reason, severity) for what the script sandbox refuses in source, checked by its own compiler.

    The check runs in a script worker, under its memory and time limits, like the code will.
    """
    return list(_sandbox_verdict(source, mode))


@functools.lru_cache(maxsize=4096)
def _sandbox_verdict(source: str, mode: str) -> tuple[tuple[int, str, str], ...]:
    """The worker's verdict on one source: the same text always gets the same one, so redeploys ask once."""
    errors, warnings = script_workers.pool().check(source, mode)
    return tuple([(line, reason, "error") for line, reason in errors]
                 + [(line, reason, "warning") for line, reason in warnings])


# Expressions of loops and multi-instance activities, checked like conditions.
_LOOP_EXPRESSIONS = ("bpmn:standardLoopCharacteristics/bpmn:loopCondition",
                     "bpmn:multiInstanceLoopCharacteristics/bpmn:loopCardinality",
                     "bpmn:multiInstanceLoopCharacteristics/bpmn:completionCondition")


def _check_scripts(process: etree._Element, problems: list[BpmnProblem]) -> None:
    """Check scripts, conditions and loop expressions against the script sandbox's rules."""
    for task in process.iterfind(".//bpmn:scriptTask", NSMAP):
        script = task.find("bpmn:script", NSMAP)
        if script is None or not (script.text or "").strip():
            problems.append(_at(task, f"script task {task.get('id')} has no script"))
            continue
        _check_script(task, script, "script", problems)
    for script in process.xpath(".//spiffworkflow:preScript | .//spiffworkflow:postScript", namespaces=NSMAP):
        if (script.text or "").strip():
            _check_script(script.getparent().getparent(), script, etree.QName(script).localname, problems)
    # _lint_process reports their syntax errors and Camunda expressions.
    for condition in process.iterfind(".//bpmn:sequenceFlow/bpmn:conditionExpression", NSMAP):
        text = (condition.text or "").strip()
        if text and _syntax_error(text, "eval") is None:
            _check_script(condition.getparent(), condition, "condition", problems, mode="eval")
    for path in _LOOP_EXPRESSIONS:
        for expression in process.iterfind(f".//{path}", NSMAP):
            if (expression.text or "").strip():
                _check_script(expression.getparent().getparent(), expression, etree.QName(expression).localname,
                              problems, mode="eval")


def _check_script(owner: etree._Element, script: etree._Element, label: str, problems: list[BpmnProblem],
                  mode: str = "exec") -> None:
    """Report a syntax error of a script or expression element, or each thing the script sandbox refuses in it."""
    source = script.text.strip() if mode == "eval" else script.text
    error = _syntax_error(source, mode)
    if error:
        line = error.lineno or 1
        # The script text starts on its element's line, so its line N is N - 1 lines further down the file.
        problems.append(_at(owner, f"{label} has a syntax error on its line {line}: {error.msg}",
                            line=script.sourceline + line - 1))
        return
    for line, reason, severity in _sandbox_problems(source, mode):
        problems.append(_at(owner, _("%(label)s is refused by the script sandbox on its line %(line)s: %(reason)s",
                                     label=label, line=line, reason=reason),
                            line=script.sourceline + line - 1, severity=severity))


def _check_timer(definition: etree._Element, problems: list[BpmnProblem]) -> None:
    """Check that a timer expression is a string literal SpiffWorkflow can parse; warn when it depends on data."""
    event = definition.getparent()
    expression = next((e for kind in _TIMER_KINDS if (e := definition.find(f"bpmn:{kind}", NSMAP)) is not None), None)
    if expression is None:
        problems.append(_at(event, f"timer {event.get('id')} has no timeDate, timeDuration or timeCycle"))
        return
    kind = etree.QName(expression).localname
    text = (expression.text or "").strip()
    example = f"a string literal such as {_TIMER_EXAMPLES[kind]}"
    if not text:
        problems.append(_at(event, f"{kind} is empty; expected {example}", line=expression.sourceline))
        return
    foreign = _foreign_timer(text, kind)
    if foreign:
        problems.append(_at(event, foreign, line=expression.sourceline))
        return
    error = _syntax_error(text, "eval")
    if error:
        problems.append(_at(event, f"{kind} has a syntax error: {error.msg}", line=expression.sourceline))
        return
    refused = _sandbox_problems(text, "eval")
    for _line, reason, severity in refused:
        problems.append(_at(event, _("%(kind)s is refused by the script sandbox: %(reason)s", kind=kind,
                                     reason=reason), line=expression.sourceline, severity=severity))
    if any(severity == "error" for _line, _reason, severity in refused):
        return
    try:
        value = ast.literal_eval(text)
    except _NOT_A_LITERAL:
        problems.append(_at(event, f"{kind} {text} depends on process data and is checked only when the timer starts",
                            line=expression.sourceline, severity="warning"))
        return
    if not isinstance(value, str) or not _timer_value_valid(kind, value):
        problems.append(_at(event, f"{kind} {text} is not valid; expected {example}", line=expression.sourceline))


def _foreign_expression(text: str) -> str | None:
    """Return the Python equivalent of a Camunda (JUEL) expression such as ${amount > 100}, or None."""
    match = _JUEL.fullmatch(text)
    if match is None:
        return None
    python = match.group(1).strip()
    for juel, replacement in _JUEL_OPERATORS:
        python = juel.sub(replacement, python)
    return python


def _foreign_timer(text: str, kind: str) -> str | None:
    """Explain how to write a Camunda expression, a bare ISO 8601 value or a cron timer as the Python timer it means."""
    python = _foreign_expression(text)
    if python is not None:
        return _("timer %(text)s is a Camunda expression; timers are Python expressions: a string literal such as "
                 '"P5D" or a data field, here %(python)s', text=text, python=python)
    if _timer_value_valid(kind, text):  # Camunda reads PT5M as text; in Python it is a name (or a division)
        return _("timer %(text)s is ISO 8601 without quotes; timers are Python expressions: write %(quoted)s",
                 text=text, quoted=f'"{text}"')
    try:
        value = ast.literal_eval(text)
    except (*_NOT_A_LITERAL, SyntaxError, MemoryError):
        value = text  # a bare cron is no Python; an expression over data never reaches here as one
    cron = _CRON.fullmatch(value.strip()) if isinstance(value, str) else None
    if cron is None or not ("*" in value or "?" in value or cron.group("minute").isdigit()):
        return None
    return _("timer %(text)s is a cron expression; timers are Python expressions giving ISO 8601, e.g. %(example)s",
             text=text, example=_cron_example(cron))


def _cron_example(cron: re.Match) -> str:
    """Turn a daily or weekly cron into the equivalent repeating ISO 8601 interval, else a daily example."""
    second, minute, hour = (cron.group("second") or "0"), cron.group("minute"), cron.group("hour")
    if not all(part.isdigit() for part in (second, minute, hour)):
        second, minute, hour = "0", "0", "9"
    weekday = cron.group("weekday").upper()
    every = "P1D"
    day = "2026-01-01"
    if weekday not in ("*", "?") and cron.group("day") in ("*", "?"):
        if weekday in _CRON_WEEKDAYS:
            iso_weekday = _CRON_WEEKDAYS[weekday]
        elif weekday.isdigit() and int(weekday) <= 7:
            # Quartz (with a seconds field) counts 1 = Sunday, Unix cron 0 or 7 = Sunday, 1 = Monday.
            iso_weekday = (int(weekday) + 5) % 7 + 1 if cron.group("second") else int(weekday) or 7
        else:
            iso_weekday = 0
        if iso_weekday:
            every, day = "P1W", f"2026-01-{4 + iso_weekday:02d}"  # 2026-01-05 is a Monday
    return f'"R/{day}T{int(hour):02d}:{int(minute):02d}:{int(second):02d}/{every}"'


def _timer_value_valid(kind: str, value: str) -> bool:
    """Tell whether SpiffWorkflow's timer parsers accept value the way they will when the timer starts."""
    try:
        if kind == "timeDuration":
            # SpiffWorkflow alone also accepts designator-less text such as "5M".
            parse_duration(value)
            TimerEventDefinition.parse_iso_duration(value)
        elif kind == "timeDate":
            # A timeDate is compared with a datetime at runtime, so a duration here would fail then.
            return isinstance(TimerEventDefinition.parse_time_or_duration(value), datetime.datetime)
        else:
            TimerEventDefinition.parse_iso_recurring_interval(value)
    except Exception:  # SpiffWorkflow's timer parsers raise bare Exception, ValueError, AttributeError or TypeError
        return False
    return True


def _check_reachable(container: etree._Element, problems: list[BpmnProblem]) -> None:
    """Report flow nodes that no start event reaches through sequence flows, recursing into subprocesses."""
    nodes = {node.get("id"): node for node in container if node.tag in _FLOW_NODES and node.get("id")}
    edges: dict[str, list[str]] = {}
    for flow in container.iterfind("bpmn:sequenceFlow", NSMAP):
        edges.setdefault(flow.get("sourceRef"), []).append(flow.get("targetRef"))
    for node_id, node in nodes.items():
        if node.tag == _bpmn("boundaryEvent"):
            edges.setdefault(node.get("attachedToRef"), []).append(node_id)
    ad_hoc = container.tag == _bpmn("adHocSubProcess")  # its activities need no incoming flow
    pending = [node_id for node_id, node in nodes.items()
               if ad_hoc or node.tag == _bpmn("startEvent") or node.get("triggeredByEvent") == "true"]
    reached = set(pending)
    while pending:
        for target in edges.get(pending.pop(), ()):
            if target not in reached:
                reached.add(target)
                pending.append(target)
    for node_id, node in nodes.items():
        if node_id not in reached:
            problems.append(_at(node, f"element {node_id} is unreachable"))
        if node.tag in _CONTAINERS:
            _check_reachable(node, problems)

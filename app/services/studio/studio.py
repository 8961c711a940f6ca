"""The process owners' studio: BPMN drafts, validation, deploying a draft as a new version, the semantic diff
between versions, the handler and form catalogues, and moving a running instance onto another version."""
from __future__ import annotations

from dataclasses import asdict
from datetime import datetime

from apispec import APISpec
from apispec.ext.marshmallow.openapi import OpenAPIConverter
from flask import current_app
from flask_babel import gettext
from lxml import etree
from sqlalchemy import func, select

from app import engine
from app.exceptions import BpmnProblem, Conflict, FormInvalid, InvalidBpmn, NotFound, PermissionDenied
from app.extensions import db
from app.models import ProcessDraft, ProcessInstance, ProcessVersion, StudioForm, User
from app.models.instances import OPEN_STATES
from app.models.processes import VERSION_APPROVED
from app.models.types import utcnow
from app.models.users import OWNER_ROLES
from app.services.evidence import audit
from app.services.studio import diagrams
from app.services.workflow import instances, procedure_control, processes, registry
from app.services.workflow.execution import engine_context
from app.services.workflow.transaction import atomic

DRAFT_FILENAME = "draft.bpmn"

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
SPIFF_NS = "http://spiffworkflow.org/bpmn/schema/1.0/core"
NSMAP = {"bpmn": BPMN_NS, "spiffworkflow": SPIFF_NS}
_FLOW_NODES = frozenset(f"{{{BPMN_NS}}}{tag}" for tag in (
    "startEvent", "endEvent", "intermediateCatchEvent", "intermediateThrowEvent", "boundaryEvent",
    "task", "userTask", "manualTask", "serviceTask", "scriptTask", "sendTask", "receiveTask", "businessRuleTask",
    "callActivity", "subProcess", "transaction", "adHocSubProcess",
    "exclusiveGateway", "inclusiveGateway", "parallelGateway", "eventBasedGateway", "complexGateway",
))
_COMPARED = _FLOW_NODES | {f"{{{BPMN_NS}}}sequenceFlow", f"{{{BPMN_NS}}}lane"}
# spiffworkflow:property names as the diff calls them; any other property keeps its own name.
_PROPERTY_LABELS = {"formJsonSchemaFilename": "form", "formUiSchemaFilename": "uiForm"}
_LOOP_SETTINGS = ("loopCardinality", "loopDataInputRef", "loopDataOutputRef", "completionCondition")


def _require_studio_user(actor: User) -> None:
    if not actor.has_role(*OWNER_ROLES):
        raise PermissionDenied("Only process owners and admins use the process studio.")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


# --- catalogue --------------------------------------------------------------------------------------------

def process_catalogue(actor: User) -> dict:
    """List every process with its versions (open instances per version) and its undeployed drafts."""
    _require_studio_user(actor)
    open_counts = dict(db.session.execute(
        select(ProcessInstance.version_id, func.count()).where(ProcessInstance.status.in_(OPEN_STATES))
        .group_by(ProcessInstance.version_id)).all())
    drafts = db.session.scalars(select(ProcessDraft).where(ProcessDraft.deployed_version_id.is_(None))
                                .order_by(ProcessDraft.updated_at.desc(), ProcessDraft.id.desc()))
    entries: dict[str, dict] = {}
    now = utcnow()
    for definition in processes.list_definitions():
        effective = processes.effective_version(definition.key, now)
        entries[definition.key] = {
            "key": definition.key, "name": definition.name,
            "versions": [{"version": v.version, "author": v.author.username if v.author else None,
                          "status": procedure_control.shown_status(v, effective, now),
                          "created_at": _iso(v.created_at), "change_note": v.change_note,
                          "instances_open": open_counts.get(v.id, 0),
                          "calls": [{"key": c.definition.key, "version": c.version} for c in v.callees]}
                         for v in definition.versions],
            "drafts": []}
    for draft in drafts:
        entry = entries.setdefault(draft.key, {"key": draft.key, "name": draft.name, "versions": [], "drafts": []})
        entry["drafts"].append(draft_summary(draft))
    return {"processes": sorted(entries.values(), key=lambda e: (e["name"].lower(), e["key"]))}


def draft_summary(draft: ProcessDraft) -> dict:
    return {"id": draft.id, "key": draft.key, "name": draft.name,
            "author": draft.author.username if draft.author else None, "updated_at": _iso(draft.updated_at),
            "base_version": draft.base_version.version if draft.base_version else None,
            "deployed_version": draft.deployed_version.version if draft.deployed_version else None}


def version_xml(actor: User, key: str, version: int) -> bytes:
    """Return a deployed version's BPMN with diagram interchange, for the modeler to open."""
    _require_studio_user(actor)
    return diagrams.version_diagram(key, version)


def handler_catalogue(actor: User) -> dict:
    """List the service-task operators: id, description and the JSON Schema of their parameters."""
    _require_studio_user(actor)
    converter = OpenAPIConverter("3.0.2", lambda schema: None, APISpec("handlers", "1", "3.0.2"))
    # The description in the request's language where the catalog has it (handlers/ registers them in English).
    return {"handlers": [{"id": key, "description": gettext(handler.description),
                          "parameters": converter.schema2jsonschema(handler.schema)}
                         for key, handler in sorted(registry.HANDLERS.items())]}


def form_catalogue(actor: User) -> dict:
    """List the forms a diagram may name: files in forms/ and forms saved in the studio (which win)."""
    _require_studio_user(actor)
    in_studio = set(db.session.scalars(select(StudioForm.name)))
    return {"forms": [{"name": name, "source": "studio" if name in in_studio else "file",
                       "title": content.get("title") or "",
                       "title_zh": (content.get("x-i18n") or {}).get("zh-CN", {}).get("title") or ""}
                      for name, content in sorted(processes.available_forms().items())]}


# --- drafts -----------------------------------------------------------------------------------------------

def _parse(data: bytes, filename: str = DRAFT_FILENAME) -> etree._Element:
    return engine.parse_xml(data, filename=filename, max_bytes=current_app.config["BPMN_MAX_BYTES"])


def _executable_process(root: etree._Element, filename: str = DRAFT_FILENAME) -> etree._Element:
    executable = [p for p in root.iterfind("bpmn:process", NSMAP) if p.get("isExecutable") == "true"]
    if len(executable) != 1 or not executable[0].get("id"):
        element = executable[1] if len(executable) > 1 else root
        raise InvalidBpmn([BpmnProblem(
            'a diagram needs exactly one executable process (isExecutable="true") with an id',
            element_id=element.get("id"), line=element.sourceline)],
            filename=filename)
    return executable[0]


def _draft_fields(data: bytes) -> tuple[str, str]:
    """Return (key, name) of the draft's executable process, refusing unsafe or malformed XML."""
    process = _executable_process(_parse(data))
    key = process.get("id")
    return key, (process.get("name") or key)


def get_draft(actor: User, draft_id: int) -> ProcessDraft:
    _require_studio_user(actor)
    draft = db.session.get(ProcessDraft, draft_id)
    if draft is None:
        raise NotFound(gettext("No draft %(id)s.", id=draft_id))
    return draft


def draft_xml(actor: User, draft_id: int) -> bytes:
    """Return a draft's BPMN, laid out when it has no diagram interchange (a file written by hand)."""
    return diagrams.laid_out(get_draft(actor, draft_id).bpmn_xml)


def create_draft(actor: User, data: bytes, base_version_id: int | None = None, *,
                 now: datetime | None = None) -> ProcessDraft:
    """Save BPMN XML as a new draft, optionally based on a deployed version (its ProcessVersion id)."""
    _require_studio_user(actor)
    key, name = _draft_fields(data)
    now = now or utcnow()
    with atomic():
        base = None
        if base_version_id is not None:
            base = db.session.get(ProcessVersion, base_version_id)
            if base is None:
                raise NotFound(gettext("No process version with id %(id)s.", id=base_version_id))
        draft = ProcessDraft(key=key, name=name, bpmn_xml=data.decode("utf-8"), base_version=base, author_id=actor.id,
                             created_at=now, updated_at=now)
        db.session.add(draft)
        db.session.flush()
        audit.record(actor, "draft.created", "process_draft", draft.id, at=now,
                     new={"process": key, "base_version": base.version if base else None})
    return draft


def _editable_draft(actor: User, draft_id: int) -> ProcessDraft:
    draft = get_draft(actor, draft_id)
    if draft.deployed_version is not None:
        raise Conflict(gettext("This draft was deployed as version %(version)s and is now read-only; start a new "
                               "draft from that version.", version=draft.deployed_version.version))
    return draft


def save_draft(actor: User, draft_id: int, data: bytes, *, now: datetime | None = None) -> ProcessDraft:
    """Replace a draft's BPMN; key and name follow its executable process."""
    _require_studio_user(actor)
    key, name = _draft_fields(data)
    with atomic():
        draft = _editable_draft(actor, draft_id)
        draft.key, draft.name, draft.bpmn_xml = key, name, data.decode("utf-8")
        draft.author_id = actor.id
        draft.updated_at = now or utcnow()
    return draft


def delete_draft(actor: User, draft_id: int) -> None:
    """Delete an undeployed draft."""
    with atomic():
        draft = _editable_draft(actor, draft_id)
        audit.record(actor, "draft.deleted", "process_draft", draft.id, old={"process": draft.key, "name": draft.name})
        db.session.delete(draft)


# --- validation and deploy ---------------------------------------------------------------------------------

def validate_diagram(actor: User, data: bytes) -> dict:
    """Lint BPMN XML exactly as a deploy would; answer whether it is deployable and every problem found."""
    _require_studio_user(actor)
    try:
        parsed = processes.check_diagram(data, DRAFT_FILENAME, processes.available_forms())
    except InvalidBpmn as err:
        return {"valid": False, "problems": [asdict(p) for p in err.problems]}
    return {"valid": True, "problems": [asdict(p) for p in parsed.warnings]}


def deploy_draft(actor: User, draft_id: int, change_note: str | None, *, replace: bool = False) -> ProcessVersion:
    """Deploy a draft as the process's next version (process owners and admins, with a change note).

    It keeps the decision tables of its process's latest version; `replace` confirms that a draft not based on that
    process (a new diagram or an import) replaces the procedure that has its process id.
    """
    _require_studio_user(actor)
    note = (change_note or "").strip()
    if not note:
        raise FormInvalid({"change_note": ["Say what changed and why."]}, "A change note is required to deploy.")
    with atomic():
        draft = _editable_draft(actor, draft_id)
        result = processes.deploy_file(draft.bpmn_xml.encode("utf-8"), f"{draft.key}.bpmn", actor, note,
                                       draft_id=draft.id, replace=replace)
        if not result.created:
            raise Conflict(gettext("This draft is identical to version %(version)s; there is nothing to deploy.",
                                   version=result.version.version))
        draft.deployed_version = result.version
    return result.version


# --- semantic diff -----------------------------------------------------------------------------------------

def diff(actor: User, key: str, from_version: int, to_version: int | None = None,
         draft_id: int | None = None) -> dict:
    """Compare two versions of a process, or a version and a draft: elements added, removed and changed."""
    _require_studio_user(actor)
    if (to_version is None) == (draft_id is None):
        raise FormInvalid({"to": ["Give either a version to compare with or a draft."]},
                          "Give either a version to compare with or a draft.")
    if draft_id is not None:
        return _compare(key, from_version, get_draft(actor, draft_id).bpmn_xml, {"draft": draft_id})
    return compare_versions(key, from_version, to_version)


def compare_versions(key: str, from_version: int, to_version: int) -> dict:
    """Compare two deployed versions of a process (any signed-in reader: the version history's comparison)."""
    return _compare(key, from_version, processes.get_version(key, to_version).bpmn_xml, {"version": to_version})


def _compare(key: str, from_version: int, new_xml: str, target: dict) -> dict:
    old = processes.get_version(key, from_version)
    before = _elements(old.bpmn_xml, old.filename)
    after = _elements(new_xml, DRAFT_FILENAME)
    changed = []
    for element_id, (kind, properties) in after.items():
        if element_id not in before:
            continue
        old_kind, old_properties = before[element_id]
        changes = [{"property": "type", "old": old_kind, "new": kind}] if old_kind != kind else []
        changes += [{"property": name, "old": old_properties.get(name), "new": properties.get(name)}
                    for name in _union(old_properties, properties)
                    if old_properties.get(name) != properties.get(name)]
        if changes:
            changed.append({**_summary(element_id, kind, properties), "changes": changes})
    return {
        "key": key, "from": {"version": from_version}, "to": target,
        "added": [_summary(i, kind, props) for i, (kind, props) in after.items() if i not in before],
        "removed": [_summary(i, kind, props) for i, (kind, props) in before.items() if i not in after],
        "changed": changed,
    }


def _union(first: dict, second: dict) -> list[str]:
    return list(first) + [name for name in second if name not in first]


def _summary(element_id: str, kind: str, properties: dict) -> dict:
    return {"id": element_id, "type": kind, "name": properties.get("name")}


def _elements(xml: str, filename: str) -> dict[str, tuple[str, dict[str, str | None]]]:
    """Map each flow node, sequence flow and lane of the executable process to (type, properties), in file order."""
    process = _executable_process(_parse(xml.encode("utf-8"), filename), filename)
    lane_of: dict[str, str | None] = {}
    for lane in process.iter(f"{{{BPMN_NS}}}lane"):  # nested lanes come later and win
        for ref in lane.iterfind("bpmn:flowNodeRef", NSMAP):
            if ref.text:
                lane_of[ref.text.strip()] = lane.get("name")
    found = {}
    for element in process.iter(etree.Element):
        element_id = element.get("id")
        if element.tag in _COMPARED and element_id:
            properties = _properties(element)
            if element.tag in _FLOW_NODES:
                properties["lane"] = lane_of.get(element_id)
            found[element_id] = (etree.QName(element).localname, properties)
    return found


def _text(element: etree._Element | None) -> str | None:
    return (element.text or "").strip() if element is not None else None


def _properties(element: etree._Element) -> dict[str, str | None]:
    """Return what the engine reads from one element, as comparable strings."""
    props: dict[str, str | None] = {"name": element.get("name")}
    extensions = element.find("bpmn:extensionElements", NSMAP)
    if extensions is not None:
        for prop in extensions.iterfind("spiffworkflow:properties/spiffworkflow:property", NSMAP):
            name = prop.get("name") or ""
            props[_PROPERTY_LABELS.get(name, name)] = prop.get("value")
        operator = extensions.find("spiffworkflow:serviceTaskOperator", NSMAP)
        if operator is not None:
            props["operator"] = operator.get("id")
            props["resultVariable"] = operator.get("resultVariable")
            for param in operator.iterfind("spiffworkflow:parameters/spiffworkflow:parameter", NSMAP):
                props[f"parameter {param.get('id')}"] = param.get("value")
        decision = extensions.find("spiffworkflow:calledDecisionId", NSMAP)
        if decision is not None:
            props["decision"] = _text(decision)
        for kind in ("preScript", "postScript"):
            script = extensions.find(f"spiffworkflow:{kind}", NSMAP)
            if script is not None:
                props[kind] = _text(script)
    for attribute in ("sourceRef", "targetRef", "default", "attachedToRef", "cancelActivity", "calledElement"):
        if element.get(attribute) is not None:
            props[attribute.removesuffix("Ref")] = element.get(attribute)
    script = element.find("bpmn:script", NSMAP)
    if script is not None:
        props["script"] = _text(script)
    condition = element.find("bpmn:conditionExpression", NSMAP)
    if condition is not None:
        props["condition"] = _text(condition)
    for definition in element:
        kind = etree.QName(definition).localname
        if kind == "timerEventDefinition":
            expression = next(iter(definition), None)
            props["timer"] = f"{etree.QName(expression).localname}: {_text(expression)}" if expression is not None \
                else ""
        elif kind.endswith("EventDefinition"):
            reference = next((v for a, v in definition.attrib.items() if a.endswith("Ref")), None)
            props["event"] = f"{kind}{f' {reference}' if reference else ''}"
    loop = element.find("bpmn:multiInstanceLoopCharacteristics", NSMAP)
    if loop is not None:
        settings = [f"sequential={loop.get('isSequential', 'false')}"]
        settings += [f"{name}={_text(found)}" for name in _LOOP_SETTINGS
                     if (found := loop.find(f"bpmn:{name}", NSMAP)) is not None]
        settings += [f"{name}={found.get('name')}" for name in ("inputDataItem", "outputDataItem")
                     if (found := loop.find(f"bpmn:{name}", NSMAP)) is not None]
        props["multiInstance"] = "; ".join(settings)
    elif element.find("bpmn:standardLoopCharacteristics", NSMAP) is not None:
        props["loop"] = "standard"
    return props


# --- instance migration ------------------------------------------------------------------------------------

def migrate_instance(actor: User, instance_id: int, version: int, reason: str | None, *,
                     now: datetime | None = None) -> dict:
    """Move a running instance onto another version of its process, with a reason (process owners and admins).

    Refused (409) when the instance is finished or stands at a step the target version no longer has.
    """
    _require_studio_user(actor)
    reason = (reason or "").strip()
    if not reason:
        raise FormInvalid({"reason": ["Say why this instance moves to another version."]},
                          "A reason is required to migrate an instance.")
    now = now or utcnow()
    with atomic():
        instance = instances.get_instance(instance_id)
        source = instance.version
        target = processes.get_version(source.definition.key, version)
        if instance.status not in OPEN_STATES:
            raise Conflict(gettext("Instance %(id)s is %(status)s; only running instances can migrate.",
                                   id=instance.id, status=instance.status))
        if target.id == source.id:
            raise Conflict(gettext("Instance %(id)s already runs on version %(version)s.", id=instance.id,
                                   version=source.version))
        if target.status != VERSION_APPROVED:
            raise Conflict(gettext("Version %(version)s is %(status)s: instances move only onto an approved "
                                   "version.", version=target.version, status=target.status))
        outcome = engine.migrate(instance, target, engine_context(now))
        audit.record(actor, "instance.migrated", "instance", instance.id, instance_id=instance.id, at=now,
                     old={"process": source.definition.key, "version": source.version},
                     new={"process": target.definition.key, "version": target.version,
                          "changed_elements": outcome.changed_elements},
                     reason=reason)
        instances.record_outcome(actor, instance, outcome.step, now)
    return {"instance": instance.id, "from": source.version, "to": target.version}

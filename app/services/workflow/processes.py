"""Process definitions: validate and deploy BPMN files (with their DMN files) as immutable versions pinned to the
versions of the processes they call; list and read them."""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import select

from app import engine
from app.exceptions import BpmnProblem, InvalidBpmn, NotFound, PermissionDenied, ProcessIdTaken
from app.extensions import db
from app.models import ProcessDefinition, ProcessDraft, ProcessVersion, StudioForm, User
from app.models.users import OWNER_ROLES
from app.services.evidence import audit
from app.services.workflow import form_checks, registry
from app.services.workflow.forms import read_form_files
from app.services.workflow.transaction import atomic


@dataclass(frozen=True)
class DeployResult:
    version: ProcessVersion
    created: bool  # False when the file (and its forms) were already deployed as the latest version


# A diagram is "derived" from the latest version of its process id (a new version of the same procedure) when it
# keeps at least this share of that version's element ids; a studio draft based on a version of it always is.
DERIVED_SHARE = 0.5


def _content_hash(bpmn: bytes, forms: dict[str, dict], decisions: dict[str, str], callees: list[ProcessVersion]) -> str:
    digest = hashlib.sha256(bpmn)
    digest.update(json.dumps(forms, sort_keys=True, separators=(",", ":")).encode())
    # Only when present, so versions without DMN files or calls keep the hashes they were deployed with.
    if decisions or callees:
        pins = {version.definition.key: version.content_hash for version in callees}
        digest.update(json.dumps([decisions, pins], sort_keys=True, separators=(",", ":")).encode())
    return digest.hexdigest()


def _max_bytes() -> int:
    return current_app.config["BPMN_MAX_BYTES"]


def _latest_version(key: str | None) -> ProcessVersion | None:
    return db.session.scalar(select(ProcessVersion).join(ProcessDefinition).where(ProcessDefinition.key == key)
                             .order_by(ProcessVersion.version.desc()).limit(1))


def check_diagram(data: bytes, filename: str, available_forms: dict[str, dict],
                  decisions: Mapping[str, bytes] | None = None) -> engine.ParsedDiagram:
    """Lint a BPMN file as a deploy does (engine lint, the forms' server-side checks, the called processes).

    Without decisions (.dmn file name -> bytes) the diagram gets those of its process's latest version, so a
    redeployed .bpmn or a studio draft keeps its decision tables. Raise InvalidBpmn.
    """
    if decisions is None:
        process_id = engine.outline(data, filename=filename, max_bytes=_max_bytes()).process_id
        latest = _latest_version(process_id)
        decisions = {name: xml.encode("utf-8") for name, xml in (latest.decisions if latest else {}).items()}
    parsed = engine.parse_diagram(data, filename=filename, handlers=registry.HANDLERS, forms=available_forms.keys(),
                                  max_bytes=_max_bytes(), decisions=decisions)
    _check_form_rules({name: available_forms[name] for name in sorted(parsed.forms)}, filename)
    _callee_versions(parsed, filename)
    return parsed


def _callee_versions(parsed: engine.ParsedDiagram, filename: str) -> list[ProcessVersion]:
    """Return the latest version of every process the diagram calls; refuse when one is not deployed."""
    found, problems = [], []
    for key, site in sorted(parsed.calls.items()):
        callee = _latest_version(key)
        if callee is None:
            problems.append(BpmnProblem(_(
                "call activity %(id)s calls process %(key)s, which is not deployed: deploy %(key)s first (a directory "
                "deploy orders callees first)", id=site.element_id, key=key), element_id=site.element_id,
                line=site.line))
        else:
            found.append(callee)
    if problems:
        raise InvalidBpmn(problems, filename=filename)
    return found


def _deploy_one(data: bytes, filename: str, actor: User | None, change_note: str, available_forms: dict[str, dict],
                decisions: Mapping[str, bytes] | None = None, draft_id: int | None = None,
                replace: bool = False) -> DeployResult:
    parsed = check_diagram(data, filename, available_forms, decisions)
    callees = _callee_versions(parsed, filename)
    forms = {name: available_forms[name] for name in sorted(parsed.forms)}
    # Tasks of a called process look their forms up in the caller's version: freeze them with it.
    forms = {**{name: form for callee in callees for name, form in callee.forms.items()}, **forms}
    content_hash = _content_hash(data, forms, parsed.decisions, callees)
    definition = db.session.scalar(select(ProcessDefinition).where(ProcessDefinition.key == parsed.process_id))
    if definition is None:
        definition = ProcessDefinition(key=parsed.process_id, name=parsed.name)
        db.session.add(definition)
        db.session.flush()
    latest = _latest_version(definition.key)
    if latest is not None and latest.content_hash == content_hash:
        return DeployResult(latest, created=False)
    if latest is not None and not replace and not _derived(data, filename, latest, draft_id):
        raise ProcessIdTaken(definition.key, _(
            "The process id %(key)s is already the procedure \"%(name)s\" (version %(version)s), and this diagram "
            "keeps too few of its element ids to be a new version of it. Give the diagram its own process id, or "
            "confirm that it replaces %(key)s (API: replace=true, CLI: --replace, studio: the \"replaces\" checkbox).",
            key=definition.key, name=definition.name, version=latest.version))
    definition.name = parsed.name
    version = ProcessVersion(
        definition=definition, version=(latest.version + 1) if latest else 1, filename=filename,
        bpmn_xml=data.decode("utf-8"), forms=forms, decisions=parsed.decisions, content_hash=content_hash,
        change_note=change_note, author_id=actor.id if actor else None, callees=callees)
    db.session.add(version)
    db.session.flush()
    audit.record(actor, "process.deployed", "process_version", version.id,
                 new={"process": definition.key, "version": version.version, "hash": content_hash,
                      "file": filename, "note": change_note,
                      **({"decisions": sorted(parsed.decisions)} if parsed.decisions else {}),
                      **({"calls": {c.definition.key: c.version for c in callees}} if callees else {}),
                      **({"replaced": True} if replace else {}),
                      **({"draft": draft_id} if draft_id is not None else {})})
    return DeployResult(version, created=True)


def _derived(data: bytes, filename: str, latest: ProcessVersion, draft_id: int | None) -> bool:
    """Tell whether a diagram is a new version of latest's procedure: see DERIVED_SHARE."""
    draft = db.session.get(ProcessDraft, draft_id) if draft_id is not None else None
    base = draft.base_version if draft is not None else None
    if base is not None and base.definition_id == latest.definition_id:
        return True
    before = engine.outline(latest.bpmn_xml.encode("utf-8"), filename=latest.filename, max_bytes=_max_bytes())
    after = engine.outline(data, filename=filename, max_bytes=_max_bytes())
    return len(before.element_ids & after.element_ids) >= DERIVED_SHARE * len(before.element_ids)


def _check_form_rules(forms: dict[str, dict], filename: str) -> None:
    """Refuse a diagram whose forms name server-side checks (`x-checks`) that do not exist."""
    # Imported here: the checks live in the domain services, which themselves ask whether a process is deployed.
    problems = [BpmnProblem(f"form {name} names an unknown check {check!r} in x-checks; known checks: "
                            f"{', '.join(sorted({*registry.FORM_CHECKS, *registry.CLOCKED_FORM_CHECKS}))}")
                for name, schema in forms.items() for check in form_checks.unknown_checks(schema)]
    if problems:
        raise InvalidBpmn(problems, filename=filename)


def available_forms() -> dict[str, dict]:
    """The forms a diagram may use: the files in forms/, overridden by same-named forms saved in the studio."""
    forms = read_form_files(current_app.config["FORMS_DIR"])
    forms.update({form.name: form.content for form in db.session.scalars(select(StudioForm))})
    return forms


def _require_deployer(actor: User | None) -> None:
    """Only process owners and admins deploy; None is the operator at the command line."""
    if actor is not None and not actor.has_role(*OWNER_ROLES):
        raise PermissionDenied("Only process owners deploy procedures.")


def deploy_file(data: bytes, filename: str, actor: User | None, change_note: str = "", *,
                decisions: Mapping[str, bytes] | None = None, draft_id: int | None = None,
                replace: bool = False) -> DeployResult:
    """Validate one BPMN upload with its .dmn files and deploy it as the next version; identical content is a no-op.

    `replace` confirms that a diagram not derived from the latest version of its process id replaces it.
    """
    _require_deployer(actor)
    with atomic():
        return _deploy_one(data, filename, actor, change_note, available_forms(), decisions, draft_id, replace)


def deploy_directory(directory: Path, actor: User | None, change_note: str = "", *,
                     replace: bool = False) -> list[DeployResult]:
    """Deploy every *.bpmn file of a directory, with the directory's .dmn files, in one transaction: all deploy,
    or none on any error. Called processes deploy before their callers."""
    _require_deployer(actor)
    files = sorted(Path(directory).glob("*.bpmn"))
    if not files:
        raise NotFound(f"No .bpmn files in {directory}.")
    # Without .dmn files in the directory each diagram keeps its latest version's decision tables.
    decisions = {path.name: path.read_bytes() for path in sorted(Path(directory).glob("*.dmn"))} or None
    forms = available_forms()
    results, problems = [], []
    with atomic():
        for path, data in _callees_first({path: path.read_bytes() for path in files}):
            try:
                results.append(_deploy_one(data, path.name, actor, change_note, forms, decisions, replace=replace))
            except InvalidBpmn as err:
                problems.append(err)
        if problems:
            raise InvalidBpmn([p for err in problems for p in err.problems],
                              "; ".join(e.filename or "" for e in problems))
    return results


def _callees_first(files: dict[Path, bytes]) -> list[tuple[Path, bytes]]:
    """Order files so that a process called by another file's process comes before it (else by name)."""
    outlines = {}
    for path, data in files.items():
        try:
            outlines[path] = engine.outline(data, filename=path.name, max_bytes=_max_bytes())
        except InvalidBpmn:
            outlines[path] = engine.DiagramOutline(None, frozenset(), frozenset())  # its deploy reports why
    by_process = {o.process_id: path for path, o in outlines.items() if o.process_id}
    ordered: dict[Path, bytes] = {}

    def visit(path: Path, seen: frozenset[Path]) -> None:
        for called in sorted(outlines[path].calls):
            callee = by_process.get(called)
            if callee is not None and callee not in seen and callee not in ordered:
                visit(callee, seen | {path})
        ordered.setdefault(path, files[path])

    for path in sorted(files):
        visit(path, frozenset())
    return list(ordered.items())


def list_definitions() -> list[ProcessDefinition]:
    return list(db.session.scalars(select(ProcessDefinition).order_by(ProcessDefinition.name)))


def get_definition(key: str) -> ProcessDefinition:
    definition = db.session.scalar(select(ProcessDefinition).where(ProcessDefinition.key == key))
    if definition is None:
        raise NotFound(f"No process {key!r}.")
    return definition


def is_deployed(key: str) -> bool:
    """Tell whether a process has a deployed version."""
    return db.session.scalar(select(ProcessVersion.id).join(ProcessDefinition).where(
        ProcessDefinition.key == key).limit(1)) is not None


def get_version(key: str, version: int | None = None) -> ProcessVersion:
    """Return a version of a process, the latest when `version` is None."""
    definition = get_definition(key)
    if version is None:
        if definition.latest is None:
            raise NotFound(f"Process {key!r} has no deployed version.")
        return definition.latest
    found = next((v for v in definition.versions if v.version == version), None)
    if found is None:
        raise NotFound(f"Process {key!r} has no version {version}.")
    return found

"""Process definitions: validate and deploy BPMN files as immutable versions, list and read them."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from flask import current_app
from sqlalchemy import select

from app import engine
from app.exceptions import BpmnProblem, InvalidBpmn, NotFound, PermissionDenied
from app.extensions import db
from app.models import ProcessDefinition, ProcessVersion, StudioForm, User
from app.models.users import OWNER_ROLES
from app.services import audit
from app.services.forms import read_form_files
from app.services.transaction import atomic
from handlers import REGISTRY


@dataclass(frozen=True)
class DeployResult:
    version: ProcessVersion
    created: bool  # False when the file (and its forms) were already deployed as the latest version


def _content_hash(bpmn: bytes, forms: dict[str, dict]) -> str:
    digest = hashlib.sha256(bpmn)
    digest.update(json.dumps(forms, sort_keys=True, separators=(",", ":")).encode())
    return digest.hexdigest()


def check_diagram(data: bytes, filename: str, available_forms: dict[str, dict]) -> engine.ParsedDiagram:
    """Lint a BPMN file as a deploy does (engine lint, then the forms' server-side checks); raise InvalidBpmn."""
    parsed = engine.parse_diagram(data, filename=filename, handlers=REGISTRY, forms=available_forms.keys(),
                                  max_bytes=current_app.config["BPMN_MAX_BYTES"])
    _check_form_rules({name: available_forms[name] for name in sorted(parsed.forms)}, filename)
    return parsed


def _deploy_one(data: bytes, filename: str, actor: User | None, change_note: str,
                available_forms: dict[str, dict], draft_id: int | None = None) -> DeployResult:
    parsed = check_diagram(data, filename, available_forms)
    forms = {name: available_forms[name] for name in sorted(parsed.forms)}
    content_hash = _content_hash(data, forms)
    definition = db.session.scalar(select(ProcessDefinition).where(ProcessDefinition.key == parsed.process_id))
    if definition is None:
        definition = ProcessDefinition(key=parsed.process_id, name=parsed.name)
        db.session.add(definition)
        db.session.flush()
    latest = definition.latest
    if latest is not None and latest.content_hash == content_hash:
        return DeployResult(latest, created=False)
    definition.name = parsed.name
    version = ProcessVersion(
        definition=definition, version=(latest.version + 1) if latest else 1, filename=filename,
        bpmn_xml=data.decode("utf-8"), forms=forms, content_hash=content_hash, change_note=change_note,
        author_id=actor.id if actor else None)
    db.session.add(version)
    db.session.flush()
    audit.record(actor, "process.deployed", "process_version", version.id,
                 new={"process": definition.key, "version": version.version, "hash": content_hash,
                      "file": filename, "note": change_note,
                      **({"draft": draft_id} if draft_id is not None else {})})
    return DeployResult(version, created=True)


def _check_form_rules(forms: dict[str, dict], filename: str) -> None:
    """Refuse a diagram whose forms name server-side checks (`x-checks`) that do not exist."""
    # Imported here: the checks live in the domain services, which themselves ask whether a process is deployed.
    from app.services import form_checks
    problems = [BpmnProblem(f"form {name} names an unknown check {check!r} in x-checks; known checks: "
                            f"{', '.join(sorted(form_checks.CHECKS))}")
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
                draft_id: int | None = None) -> DeployResult:
    """Validate one BPMN upload and deploy it as the next version; identical content is a no-op."""
    _require_deployer(actor)
    with atomic():
        return _deploy_one(data, filename, actor, change_note, available_forms(), draft_id)


def deploy_directory(directory: Path, actor: User | None, change_note: str = "") -> list[DeployResult]:
    """Deploy every *.bpmn file of a directory in one transaction: all deploy, or none on any error."""
    _require_deployer(actor)
    files = sorted(Path(directory).glob("*.bpmn"))
    if not files:
        raise NotFound(f"No .bpmn files in {directory}.")
    forms = available_forms()
    results, problems = [], []
    with atomic():
        for path in files:
            try:
                results.append(_deploy_one(path.read_bytes(), path.name, actor, change_note, forms))
            except InvalidBpmn as err:
                problems.append(err)
        if problems:
            raise InvalidBpmn([p for err in problems for p in err.problems],
                              "; ".join(e.filename or "" for e in problems))
    return results


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

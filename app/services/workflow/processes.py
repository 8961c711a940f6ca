"""Process definitions: validate and deploy BPMN files (with their DMN files) as immutable versions pinned to the
versions of the processes they call; list and read them; find the version new instances start on.

A deployed version is a controlled document: it is pending until QA approves it (procedure_control.py) and new
instances start on the newest version that is approved and effective. The one exception is the initial release at
installation: a deploy by the system (no user: the command line or the set-up code) that names a release reason
releases the first version of a procedure that has no approved version yet (see docs/studio.md).
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import bindparam, func, or_, select
from sqlalchemy.orm import contains_eager

from app import engine
from app.exceptions import BpmnProblem, Conflict, FormInvalid, InvalidBpmn, NotFound, PermissionDenied, ProcessIdTaken
from app.extensions import db
from app.models import Group, OutboxMessage, ProcessDefinition, ProcessDraft, ProcessVersion, StudioForm, User
from app.models.processes import VERSION_APPROVED, VERSION_CLOSED, VERSION_PENDING
from app.models.types import utcnow
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
    """The newest version of a process that is not rejected or withdrawn (pending or approved): what a new version
    derives from, what a caller pins and whose decision tables a redeployed diagram keeps."""
    return db.session.scalar(select(ProcessVersion).join(ProcessDefinition).where(
        ProcessDefinition.key == key, ProcessVersion.status.not_in(VERSION_CLOSED))
        .order_by(ProcessVersion.version.desc()).limit(1))


def _effective_clause(now: datetime):
    # effective_at NULL: released at installation, effective from the start (no earlier version to take over from)
    return (ProcessVersion.status == VERSION_APPROVED) & or_(ProcessVersion.effective_at.is_(None),
                                                           ProcessVersion.effective_at <= now)


def effective_version(key: str, now: datetime | None = None) -> ProcessVersion | None:
    """The version new instances of a process start on at `now`: the newest approved one whose effective time has
    come (None when there is none)."""
    return db.session.scalar(select(ProcessVersion).join(ProcessDefinition).where(
        ProcessDefinition.key == key, _effective_clause(now or utcnow()))
        .order_by(ProcessVersion.version.desc()).limit(1))


# Built once: building a statement and its cache key costs more than running it (~0.3 ms of CPU per call).
_VERSION_TO_START = (
    select(ProcessVersion).join(ProcessVersion.definition).options(contains_eager(ProcessVersion.definition))
    .where(ProcessDefinition.key == bindparam("key"), _effective_clause(bindparam("now")))
    .order_by(ProcessVersion.version.desc()).limit(1))


def version_to_start(key: str, now: datetime | None = None) -> ProcessVersion:
    """The effective version of a process, refusing (409) when it has none yet: its versions await approval."""
    # One statement for the version and its definition (every start asks); the definition alone only to refuse.
    version = db.session.scalar(_VERSION_TO_START, {"key": key, "now": now or utcnow()})
    if version is None:
        definition = get_definition(key)
        pending = [v.version for v in definition.versions if v.status == VERSION_PENDING]
        raise Conflict(_("%(name)s has no effective version yet, so it cannot be started: %(state)s",
                         name=definition.name,
                         state=_("version %(version)s awaits approval by QA.", version=pending[0]) if pending
                         else _("no version has been approved.")))
    return version


def startable(now: datetime | None = None) -> list[tuple[ProcessDefinition, ProcessVersion]]:
    """Every process that has an effective version, with that version, by name."""
    now = now or utcnow()
    newest = (select(ProcessVersion.definition_id, func.max(ProcessVersion.version).label("version"))
              .where(_effective_clause(now)).group_by(ProcessVersion.definition_id).subquery())
    rows = db.session.execute(select(ProcessDefinition, ProcessVersion).join(
        ProcessVersion, ProcessVersion.definition_id == ProcessDefinition.id).join(
        newest, (newest.c.definition_id == ProcessVersion.definition_id) & (newest.c.version == ProcessVersion.version))
        .order_by(ProcessDefinition.name))
    return [(definition, version) for definition, version in rows]


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
                replace: bool = False, release: str | None = None) -> DeployResult:
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
    if actor is not None and not change_note.strip():  # the reason for the change is part of the controlled record
        raise FormInvalid({"change_note": [_("Say what changed and why.")]},
                          _("A reason for the change is required to deploy a new version."))
    definition.name = parsed.name
    highest = db.session.scalar(select(func.max(ProcessVersion.version)).where(
        ProcessVersion.definition_id == definition.id)) or 0  # rejected and withdrawn versions keep their numbers
    version = ProcessVersion(
        definition=definition, version=highest + 1, filename=filename,
        bpmn_xml=data.decode("utf-8"), forms=forms, decisions=parsed.decisions, content_hash=content_hash,
        change_note=change_note, author_id=actor.id if actor else None, callees=callees, status=VERSION_PENDING)
    db.session.add(version)
    db.session.flush()
    audit.record(actor, "process.deployed", "process_version", version.id,
                 new={"process": definition.key, "version": version.version, "hash": content_hash,
                      "file": filename, "note": change_note,
                      **({"decisions": sorted(parsed.decisions)} if parsed.decisions else {}),
                      **({"calls": {c.definition.key: c.version for c in callees}} if callees else {}),
                      **({"replaced": True} if replace else {}),
                      **({"draft": draft_id} if draft_id is not None else {}), "status": version.status})
    if release is not None and _first_release(definition):
        _release_at_installation(version, release)
    else:
        _ask_for_approval(version)
    return DeployResult(version, created=True)


def approver_group() -> str:
    """The group whose members approve procedures (config PROCEDURE_APPROVER_GROUP, by default qa_management)."""
    return current_app.config.get("PROCEDURE_APPROVER_GROUP", "qa_management")


def _ask_for_approval(version: ProcessVersion) -> None:
    """Queue an e-mail, in each approver's language, to every active approver other than the author: a version
    awaits their approval, with its reason for change and the link to its review page."""
    approvers = db.session.scalars(select(User).where(User.groups.any(Group.name == approver_group()),
                                                      User.active.is_(True)).order_by(User.id))
    link = (f"{current_app.config['BASE_URL'].rstrip('/')}/processes/{version.definition.key}/{version.version}"
            "/review")
    for approver in approvers:
        if approver.id == version.author_id or not approver.email:
            continue
        with force_locale("zh_CN" if approver.language == "zh-CN" else "en"):
            author = version.author.full_name if version.author else _("system")
            subject = _("%(name)s v%(version)s awaits your approval", name=version.definition.name,
                        version=version.version)
            body = _("%(author)s deployed version %(version)s of the procedure %(name)s (%(key)s).\n\n"
                     "Reason for change: %(reason)s\n\nIt takes effect only after a person from QA other than its "
                     "author approves it with an electronic signature. Review it, compare it with the version before "
                     "and approve or reject it here:\n%(link)s\n",
                     author=author, version=version.version, name=version.definition.name,
                     key=version.definition.key, reason=version.change_note or "-", link=link)
        db.session.add(OutboxMessage(idempotency_key=f"procedure-approval:{version.id}:{approver.id}",
                                     recipients=approver.email, subject=subject[:300], body=body))


def _first_release(definition: ProcessDefinition) -> bool:
    """Tell whether no version of a procedure was ever approved: only then may the system release one itself."""
    return db.session.scalar(select(ProcessVersion.id).where(
        ProcessVersion.definition_id == definition.id, ProcessVersion.status == VERSION_APPROVED).limit(1)) is None


def _release_at_installation(version: ProcessVersion, reason: str) -> None:
    """Make a procedure's first version effective at once, released by the system (no approver, no signature)."""
    now = utcnow()
    version.status, version.decided_at, version.decision_reason = VERSION_APPROVED, now, reason
    version.effective_at = None  # effective from the start: there was no earlier version
    audit.record(None, "process.released", "process_version", version.id, at=now,
                 new={"process": version.definition.key, "version": version.version, "by": "system at installation",
                      "reason": reason})


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


def _require_deployer(actor: User | None, change_note: str, release: str | None) -> None:
    """Only process owners and admins deploy; None is the system (the operator at the command line, the set-up
    code), the only one who may release a first version at installation."""
    if actor is not None and not actor.has_role(*OWNER_ROLES):
        raise PermissionDenied("Only process owners deploy procedures.")
    if actor is not None and release is not None:
        raise PermissionDenied(_("Only the system releases procedures at installation; a version deployed by a "
                                 "user is approved by QA."))
    if release is not None and not release.strip():
        raise FormInvalid({"release": [_("Say why the procedures are released at installation.")]},
                          _("A reason is required to release procedures at installation."))


def deploy_file(data: bytes, filename: str, actor: User | None, change_note: str = "", *,
                decisions: Mapping[str, bytes] | None = None, draft_id: int | None = None,
                replace: bool = False, release: str | None = None) -> DeployResult:
    """Validate one BPMN upload with its .dmn files and deploy it as the next version, pending approval; identical
    content is a no-op.

    `replace` confirms that a diagram not derived from the latest version of its process id replaces it. `release`
    (the system only) is the reason of an initial release at installation: see the module's docstring.
    """
    _require_deployer(actor, change_note, release)
    with atomic():
        return _deploy_one(data, filename, actor, change_note, available_forms(), decisions, draft_id, replace,
                           release)


def deploy_directory(directory: Path, actor: User | None, change_note: str = "", *,
                     replace: bool = False, release: str | None = None) -> list[DeployResult]:
    """Deploy every *.bpmn file of a directory, with the directory's .dmn files, in one transaction: all deploy,
    or none on any error. Called processes deploy before their callers. `release`: as for deploy_file."""
    _require_deployer(actor, change_note, release)
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
                results.append(_deploy_one(data, path.name, actor, change_note, forms, decisions, replace=replace,
                                           release=release))
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
        raise NotFound(_("No process %(key)s.", key=repr(key)))
    return definition


def is_deployed(key: str, now: datetime | None = None) -> bool:
    """Tell whether a process can start: it has an effective version (a pending one does not count)."""
    return effective_version(key, now) is not None


def get_version(key: str, version: int | None = None) -> ProcessVersion:
    """Return a version of a process, the latest when `version` is None."""
    definition = get_definition(key)
    if version is None:
        if definition.latest is None:
            raise NotFound(_("Process %(key)s has no deployed version.", key=repr(key)))
        return definition.latest
    found = next((v for v in definition.versions if v.version == version), None)
    if found is None:
        raise NotFound(_("Process %(key)s has no version %(version)s.", key=repr(key), version=version))
    return found

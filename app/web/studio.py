"""The process studio's pages for process owners: the index of processes, versions and drafts, the BPMN
modeler (bpmn-js bundle in static/vendor/studio) and the visual diff of two versions. The pages hold no data
of their own: the bundle reads and writes through the session JSON API (app/web/studio_api.py)."""
from __future__ import annotations

from functools import wraps
from urllib.parse import urlencode

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from werkzeug.routing import BuildError

from app.exceptions import InvalidBpmn, PermissionDenied, ProcessIdTaken
from app.services import users
from app.services.studio import studio
from app.services.workflow import procedure_control, processes
from app.services.workflow.instances import OWNER_ROLES
from app.web.common import ui_lang

bp = Blueprint("studio", __name__, url_prefix="/studio")

def owner_required(view):
    @wraps(view)
    @login_required
    def wrapper(*args, **kwargs):
        if not current_user.has_role(*OWNER_ROLES):
            raise PermissionDenied(_("The studio is for process owners and administrators."))
        return view(*args, **kwargs)

    return wrapper


def _forms_url() -> str | None:
    """The form editor's list (its own blueprint); None while that blueprint is not registered."""
    try:
        return url_for("studio_forms.index")
    except BuildError:
        return None


def _unit(one: str, other: str) -> list[str]:
    return [one, other]


def _preview_messages() -> dict:
    """Texts of js/studio/timer-preview.js: durations, timers ("every Monday 09:00") and their parts."""
    return {
        "units": {
            "years": _unit(_("%(n)s year", n="{n}"), _("%(n)s years", n="{n}")),
            "months": _unit(_("%(n)s month", n="{n}"), _("%(n)s months", n="{n}")),
            "weeks": _unit(_("%(n)s week", n="{n}"), _("%(n)s weeks", n="{n}")),
            "days": _unit(_("%(n)s day", n="{n}"), _("%(n)s days", n="{n}")),
            "hours": _unit(_("%(n)s hour", n="{n}"), _("%(n)s hours", n="{n}")),
            "minutes": _unit(_("%(n)s minute", n="{n}"), _("%(n)s minutes", n="{n}")),
            "seconds": _unit(_("%(n)s second", n="{n}"), _("%(n)s seconds", n="{n}")),
        },
        "separator": " ",
        "everyOne": {"years": _("every year"), "months": _("every month"), "weeks": _("every week"),
                     "days": _("every day"), "hours": _("every hour"), "minutes": _("every minute"),
                     "seconds": _("every second")},
        "every": _("every %(duration)s", duration="{duration}"),
        "everyWeekday": _("every %(weekday)s %(time)s", weekday="{weekday}", time="{time}"),
        "everyDayAt": _("every day at %(time)s", time="{time}"),
        "everyFrom": _("%(every)s from %(date)s %(time)s", every="{every}", date="{date}", time="{time}"),
        "times": _("%(text)s, %(n)s times", text="{text}", n="{n}"),
        "onDate": _("on %(date)s at %(time)s", date="{date}", time="{time}"),
        "weekdays": [_("Sunday"), _("Monday"), _("Tuesday"), _("Wednesday"), _("Thursday"), _("Friday"),
                     _("Saturday")],
        "workingDays": _unit(_("%(n)s working day", n="{n}"), _("%(n)s working days", n="{n}")),
        "workingDaysAfter": _("%(days)s after %(start)s", days="{days}", start="{start}"),
        "fromData": _("computed from the process data when the timer starts: %(expression)s",
                      expression="{expression}"),
        "invalid": _("%(value)s is not a timer the engine understands", value="{value}"),
        "empty": _("no timer value yet"),
    }


def _bpmn_messages() -> dict:
    """bpmn-js and properties panel texts (their `translate` service), for the Chinese page."""
    # Keys are bpmn-js's own English texts; each value is a literal so that pybabel extracts it.
    return {
        "General": _("General"),
        "Name": _("Name"),
        "ID": _("ID"),
        "Documentation": _("Documentation"),
        "Element documentation": _("Element documentation"),
        "Process name": _("Process name"),
        "Process ID": _("Process ID"),
        "Executable": _("Executable"),
        "Timer": _("Timer"),
        "Type": _("Type"),
        "Value": _("Value"),
        "Date": _("Date"),
        "Duration": _("Duration"),
        "Cycle": _("Cycle"),
        "<none>": _("<none>"),
        "Multi-instance": _("Multi-instance"),
        "Loop cardinality": _("Loop cardinality"),
        "Completion condition": _("Completion condition"),
        "Toggle section": _("Toggle section"),
        "Section contains an error": _("Section contains an error"),
        "Section contains edits": _("Section contains edits"),
        "Activate hand tool": _("Activate hand tool"),
        "Activate lasso tool": _("Activate lasso tool"),
        "Activate create/remove space tool": _("Activate create/remove space tool"),
        "Activate global connect tool": _("Activate global connect tool"),
        "Create start event": _("Create start event"),
        "Create end event": _("Create end event"),
        "Create task": _("Create task"),
        "Create gateway": _("Create gateway"),
        "Create intermediate/boundary event": _("Create intermediate/boundary event"),
        "Create expanded sub-process": _("Create expanded sub-process"),
        "Create pool/participant": _("Create pool/participant"),
        "Append task": _("Append task"),
        "Append end event": _("Append end event"),
        "Append gateway": _("Append gateway"),
        "Append intermediate/boundary event": _("Append intermediate/boundary event"),
        "Append text annotation": _("Append text annotation"),
        "Connect to other element": _("Connect to other element"),
        "Change element": _("Change element"),
        "Delete": _("Delete"),
        "Add lane above": _("Add lane above"),
        "Add lane below": _("Add lane below"),
        "Divide into two lanes": _("Divide into two lanes"),
        "Divide into three lanes": _("Divide into three lanes"),
        "Select an element to edit its properties.": _("Select an element to edit its properties."),
        "Multiple elements are selected. Select a single element to edit its properties.":
            _("Multiple elements are selected. Select a single element to edit its properties."),
    }


def studio_messages() -> dict:
    """Every text the studio bundle shows, translated for the page (the bundle itself holds none)."""
    return {
        "loading": _("Loading the diagram…"),
        "loaded": _("Diagram loaded. Select an element to edit its properties."),
        "loadFailed": _("The diagram could not be loaded: %(message)s", message="{message}"),
        "saved": _("Draft #%(id)s saved at %(time)s.", id="{id}", time="{time}"),
        "saveFailed": _("The draft was not saved: %(message)s", message="{message}"),
        "validating": _("Validating…"),
        "valid": _("The diagram is valid: it can be deployed."),
        "invalid": _("The diagram has %(n)s error(s): see the list below.", n="{n}"),
        "lintFailed": _("The generic BPMN checks did not run: %(message)s", message="{message}"),
        "noProblems": _("No errors or warnings."),
        "noLintProblems": _("No generic BPMN findings."),
        "error": _("error"),
        "warning": _("warning"),
        "line": _("line %(n)s", n="{n}"),
        "showElement": _("Select this element in the diagram"),
        "elementNotShown": _("%(id)s is not an element of the diagram.", id="{id}"),
        "noteRequired": _("A change note is required."),
        "deployed": _("%(key)s deployed as version %(version)s. It is pending: QA approves it before it takes effect.",
                      key="{key}", version="{version}"),
        "openVersion": _("Open version %(version)s", version="{version}"),
        "editVersion": _("Edit version %(version)s in the studio", version="{version}"),
        "deployInvalid": _("The diagram has errors and was not deployed: see the list on the page."),
        "deployFailed": _("Not deployed: %(message)s", message="{message}"),
        "timerPreview": _("Preview: %(text)s", text="{text}"),
        "dueInPreview": _("Due %(duration)s after the task opens.", duration="{duration}"),
        "invalidDuration": _("Not an ISO 8601 duration such as P3D, PT4H or P1DT12H."),
        "invalidEvidence": _("A comma-separated list of document kinds such as capa_report."),
        "invalidIdentifier": _("A variable name: letters, digits and underscores, not starting with a digit."),
        "chooseForm": _("(choose a form)"),
        "noUiSchema": _("(no UI schema)"),
        "studioForm": _("%(name)s (edited in the studio)", name="{name}"),
        "missingForm": _("%(name)s (missing)", name="{name}"),
        "formRequired": _("A user task needs a form."),
        "formMissing": _("There is no form %(name)s.", name="{name}"),
        "noLane": _("Group: none - this task takes the lane of its subprocess or is not in a lane."),
        "laneGroup": _("Group (lane): %(group)s", group="{group}"),
        "chooseGroup": _("(choose a group)"),
        "unknownGroup": _("%(name)s (not a group)", name="{name}"),
        "groupRequired": _("A lane is named after the group that works on its tasks."),
        "chooseOperator": _("(choose a handler)"),
        "unknownOperator": _("%(name)s (not a registered handler)", name="{name}"),
        "operatorRequired": _("A service task needs a handler."),
        "requiredLabel": _("%(label)s (required)", label="{label}"),
        "expressionHint": _("A Python expression over the process data, e.g. 'text' or lot_number."),
        "unknownParameter": _("The handler has no parameter %(name)s.", name="{name}"),
        "removeParameter": _("Remove %(name)s", name="{name}"),
        "parameterProblems": {"required": _("Required."),
                              "wrongType": _("This literal is not of the type %(type)s.", type="{type}")},
        "meanings": {"": _("(no e-signature)"), "authored": _("authored"), "reviewed": _("reviewed"),
                     "approved": _("approved (the approval of a step)"), "released": _("released (QA releaser only)"),
                     "responsibility": _("responsibility")},
        "groups": {"userTask": _("Qualiflow task"), "serviceTask": _("Handler"), "script": _("Script"),
                   "lane": _("Group"), "condition": _("Condition")},
        "labels": {"nameZh": _("Chinese name"), "formJsonSchemaFilename": _("Form"),
                   "formUiSchemaFilename": _("UI schema"), "dueIn": _("Due in (ISO 8601 duration)"),
                   "signatureMeaning": _("E-signature meaning"), "evidence": _("Evidence (document kinds)"),
                   "fourEyesWith": _("Four eyes with (step ids)"), "assignee": _("Assignee (expression)"),
                   "dueDate": _("Due date (expression)"), "subject": _("Subject (expression)"),
                   "group": _("Group"), "operator": _("Handler"), "resultVariable": _("Result variable"),
                   "script": _("Script (Python)"), "condition": _("Condition (Python expression)")},
        "hints": {"name:zh-CN": _("Shown instead of the name when the page is in Chinese."),
                  "formJsonSchemaFilename": _("The JSON Schema form the task shows (forms/ or edited in the studio)."),
                  "formUiSchemaFilename": _("Optional: field order, widgets and help texts."),
                  "dueIn": _("For example P2D (2 days) or PT4H (4 hours)."),
                  "signatureMeaning": _("Makes the task an e-signed stage gate."),
                  "evidence": _("Documents the gate needs, comma-separated."),
                  "fourEyesWith": _("Step ids whose signer may not sign this step, comma-separated."),
                  "assignee": _("A user name, evaluated when the task opens."),
                  "dueDate": _("An ISO date or date-time, evaluated when the task opens; wins over Due in."),
                  "subject": _("Text appended to the step's name."),
                  "group": _("The group whose members work on this lane's tasks."),
                  "operator": _("The registered handler this task calls."),
                  "resultVariable": _("The data field that receives the handler's result."),
                  "script": _("Sandboxed Python: no imports; helpers such as add_working_days."),
                  "condition": _("The flow is taken when this expression is true."),
                  "timer": _('A Python expression: a string literal such as "P5D", "R/P1D", '
                             '"R/2030-01-07T09:00:00Z/P1W" or a data field.')},
        "preview": _preview_messages(),
        "bpmn": _bpmn_messages() if ui_lang() == "zh-CN" else {},
    }


def index_messages() -> dict:
    return {
        "openVersion": _("Open v%(version)s", version="{version}"),
        "compare": _("Compare v%(from)s → v%(to)s", **{"from": "{from}", "to": "{to}"}),
        "compareDraft": _("Compare with its base"),
        "calls": _("calls %(key)s v%(version)s", key="{key}", version="{version}"),
        "openDraft": _("Open draft #%(id)s", id="{id}"),
        "deleteDraft": _("Delete"),
        "confirmDelete": _("Delete draft #%(id)s?", id="{id}"),
        "versions": _("Versions"),
        "drafts": _("Drafts"),
        "versionHeaders": [_("Version"), _("Status"), _("Deployed"), _("By"), _("Change note"), _("Open instances"),
                           _("Actions")],
        # Document control: each version's status, linking to its review page (approval, rejection, withdrawal).
        "statuses": {status: procedure_control.status_label(status) for status in (
            "pending", "scheduled", "effective", "superseded", "rejected", "withdrawn")},
        "reviewUrl": url_for("procedure_control.review", key="__key__", version=0).replace("/0/", "/__version__/"),
        "draftHeaders": [_("Draft"), _("Based on"), _("Author"), _("Saved"), _("Actions")],
        "system": _("system"),
        "newDiagram": _("new diagram"),
        "noProcesses": _("No process is deployed yet."),
        "loadFailed": _("The processes could not be loaded: %(message)s", message="{message}"),
        "chooseFile": _("Choose a .bpmn file first."),
        "importFailed": _("The file was not imported: %(message)s", message="{message}"),
    }


def _groups() -> list[dict]:
    chinese = ui_lang() == "zh-CN"
    return [{"name": name, "label": (zh or en) if chinese else en}
            for name, (en, zh) in sorted(users.group_labels().items())]


def api_url(path: str = "") -> str:
    """A URL of the session JSON API (studio_api blueprint, /studio/api), following the app's script root."""
    return url_for("studio.index").rstrip("/") + "/api" + path


def _editor(**page) -> str:
    config = {"messages": studio_messages(), "groups": _groups(), "lang": ui_lang()}
    return render_template("studio/edit.html", config=config, api=api_url(), **page)


@bp.get("/")
@owner_required
def index():
    return _index()


def _index(upload_error: str | None = None, problems: list | None = None, status: int = 200):
    return render_template("studio/index.html", config={"messages": index_messages()}, forms_url=_forms_url(),
                           api=api_url(), upload_error=upload_error, problems=problems or [],
                           upload=request.form), status


@bp.post("/deploy")
@owner_required
def deploy_upload():
    """Deploy a .bpmn file from a modeler with its .dmn files; a refusal comes back on the studio's page."""
    diagram = request.files.get("bpmn")
    decisions = [upload for upload in request.files.getlist("dmn") if upload.filename]
    note = request.form.get("change_note", "").strip()
    if diagram is None or not (diagram.filename or "").endswith(".bpmn") \
            or not all(upload.filename.endswith(".dmn") for upload in decisions):
        return _index(_("Choose a .bpmn file, and the .dmn files of its decision tables if it has any."), status=400)
    if not note:
        return _index(_("A change note is required."), status=422)
    try:
        result = processes.deploy_file(diagram.read(), diagram.filename, current_user, note,
                                       decisions={upload.filename: upload.read() for upload in decisions} or None,
                                       replace=request.form.get("replace") == "on")
    except (InvalidBpmn, ProcessIdTaken) as err:
        return _index(err.message, getattr(err, "problems", None), err.status)
    key, number = result.version.definition.key, result.version.version
    flash(_("%(key)s deployed as version %(version)s. It is pending: QA approves it before it takes effect.",
            key=key, version=number) if result.created
          else _("%(key)s is unchanged: version %(version)s.", key=key, version=number), "success")
    return redirect(url_for("processes.version", key=key, version=number))


@bp.get("/new")
@owner_required
def new():
    """A new diagram: the process id and name come from the index's form; the first save makes the draft."""
    key = request.args.get("key", "").strip()
    name = request.args.get("name", "").strip() or key
    if not key.isidentifier() or not key.isascii():
        abort(400, _("The process id must be a name of letters, digits and underscores, e.g. complaint_handling."))
    lane = request.args.get("lane", "qa").strip() or "qa"
    return _editor(title=name, key=key, new={"key": key, "name": name, "lane": lane},
                   draft_title=_("%(name)s: draft #%(id)s", name=name, id="__id__"))


@bp.get("/processes/<key>/<int:version>")
@owner_required
def edit_version(key: str, version: int):
    found = processes.get_version(key, version)
    return _editor(title=f"{found.definition.name} v{found.version}", key=key, version=found, base=found,
                   draft_title=_("%(name)s: draft #%(id)s", name=found.definition.name, id="__id__"),
                   source_url=api_url(f"/versions/{key}/{version}.bpmn"))


@bp.get("/drafts/<int:draft_id>")
@owner_required
def edit_draft(draft_id: int):
    draft = studio.get_draft(current_user, draft_id)
    return _editor(title=_("%(name)s: draft #%(id)s", name=draft.name, id=draft.id), key=draft.key, draft=draft,
                   draft_id=draft.id, base=draft.base_version, source_url=api_url(f"/drafts/{draft.id}.bpmn"),
                   draft_title=_("%(name)s: draft #%(id)s", name=draft.name, id="__id__"))


@bp.get("/diff")
@owner_required
def diff():
    key = request.args.get("key", "")
    definition = processes.get_definition(key)
    versions = sorted(v.version for v in definition.versions)
    from_version = request.args.get("from", type=int)
    to_version = request.args.get("to", type=int)
    draft_id = request.args.get("draft", type=int)
    if from_version not in versions or (draft_id is None and to_version not in versions):
        abort(400, _("Choose two deployed versions of %(key)s (or a version and a draft).", key=key))
    to_url = api_url(f"/drafts/{draft_id}.bpmn" if draft_id is not None else f"/versions/{key}/{to_version}.bpmn")
    query = {"key": key, "from": from_version, **({"draft": draft_id} if draft_id is not None else {"to": to_version})}
    return render_template("studio/diff.html", definition=definition, versions=versions, from_version=from_version,
                           to_version=to_version, draft_id=draft_id,
                           from_url=api_url(f"/versions/{key}/{from_version}.bpmn"), to_url=to_url,
                           diff_url=api_url("/diff?" + urlencode(query)))

"""Process catalogue: deployed procedures and their versions."""
from __future__ import annotations

from flask import Blueprint, Response, g, jsonify, render_template, request
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required

from app.services.studio import diagrams
from app.services.workflow import escalations, plant_time, processes, titles
from app.web.common import ui_lang

bp = Blueprint("processes", __name__, url_prefix="/processes")


@bp.app_template_global()
def procedure_name(definition) -> str:
    """A procedure's name in the page language: its diagram's "name:zh-CN" for Chinese, where it gives one."""
    if ui_lang() != "zh-CN":
        return definition.name
    if "procedure_names_zh" not in g:  # one query per page, not per row
        g.procedure_names_zh = diagrams.procedure_names_zh()
    return g.procedure_names_zh.get(definition.key) or definition.name


OBJECT_TYPES = {
    "instance": _l("instance"), "task": _l("step"), "document": _l("document"), "signature": _l("signature"),
    "user": _l("user"), "deadline": _l("deadline"), "process": _l("procedure"), "version": _l("version"),
    "lot": _l("lot"), "product_lot": _l("product lot"), "material_lot": _l("material lot"),
    "incident": _l("incident"), "draft": _l("draft"), "form": _l("form"), "import": _l("import"),
    "recall": _l("recall"), "consignee": _l("consignee"), "supplier": _l("supplier"), "token": _l("API token"),
    "outbox": _l("e-mail"), "calendar": _l("calendar"), "session": _l("session")}


@bp.app_template_global()
def escalation_notes(instance_id: int) -> list[str]:
    """What each escalated, still unmet deadline of an instance says: the step, its due time, how late, who holds it."""
    return escalations.open_escalations(instance_id, plant_time.utcnow(), ui_lang())


@bp.app_template_global()
def overdue_step_notes(instance_id: int, besides: int | None = None) -> list[str]:
    """The instance's other overdue steps: name, due time, how late, who holds each (what an escalation is about)."""
    return escalations.overdue_steps(instance_id, plant_time.utcnow(), ui_lang(), besides)


@bp.app_template_global()
def page_language() -> str:
    """The page language ("en" or "zh-CN"), also for macros imported without the page's context."""
    return ui_lang()


@bp.app_template_global()
def object_label(object_type: str | None) -> str:
    """An audit row's object type in the page language; a type not listed here stays as recorded."""
    label = OBJECT_TYPES.get(object_type or "")
    return str(label) if label is not None else (object_type or "")


@bp.app_template_filter("localized_title")
def instance_title(title: str | None) -> str:
    """An instance's title in the page language, where a procedure made it from a registered format."""
    lang = ui_lang()
    if lang != "zh-CN":
        return title or ""
    if "procedure_titles_zh" not in g:  # one query per page, not per row
        g.procedure_titles_zh = diagrams.procedure_titles_zh()
    return titles.localized(title, lang, g.procedure_titles_zh)


@bp.get("/")
@login_required
def index():
    return render_template("processes/index.html", definitions=processes.list_definitions())


@bp.get("/<key>/<int:version>")
@login_required
def version(key: str, version: int):
    found = processes.get_version(key, version)
    heat_map = None
    if diagrams.may_see_heat_map(current_user):
        heat_map = diagrams.version_heat_map(key, version, current_user)
    return render_template("processes/version.html", version=found, heat_map=heat_map)


@bp.get("/<key>/<int:version>/diagram.bpmn")
@login_required
def diagram(key: str, version: int):
    """The version's BPMN with diagram interchange (laid out when the file has none), for bpmn-js; ?labels=zh-CN
    (or en) names the steps and lanes as the viewer shows them in that language."""
    return Response(diagrams.version_diagram(key, version, labels=request.args.get("labels")),
                    mimetype="application/xml")


@bp.get("/<key>/<int:version>/heat-map.json")
@login_required
def heat_map(key: str, version: int):
    """How many open instances stand at each element (process owners and admins)."""
    found = diagrams.version_heat_map(key, version, current_user)
    return jsonify(process=key, version=version, open_instances=found.open_instances, counts=found.counts)

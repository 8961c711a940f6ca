"""Process catalogue: deployed procedures and their versions."""
from __future__ import annotations

from flask import Blueprint, Response, jsonify, render_template
from flask_login import current_user, login_required

from app.services.studio import diagrams
from app.services.workflow import processes

bp = Blueprint("processes", __name__, url_prefix="/processes")


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
    """The version's BPMN with diagram interchange (laid out when the file has none), for bpmn-js."""
    return Response(diagrams.version_diagram(key, version), mimetype="application/xml")


@bp.get("/<key>/<int:version>/heat-map.json")
@login_required
def heat_map(key: str, version: int):
    """How many open instances stand at each element (process owners and admins)."""
    found = diagrams.version_heat_map(key, version, current_user)
    return jsonify(process=key, version=version, open_instances=found.open_instances, counts=found.counts)

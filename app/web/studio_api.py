"""The studio's JSON endpoints for the browser modeler (session login; the page sends X-CSRFToken)."""
from __future__ import annotations

from flask import Blueprint, Response, jsonify, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from app.edge import whole_number
from app.exceptions import QualiflowError, ValidationFailed
from app.services.studio import studio

bp = Blueprint("studio_api", __name__, url_prefix="/studio/api")

XML_TYPES = ("application/xml", "text/xml", "application/bpmn+xml")


def error_body(err: QualiflowError) -> dict:
    """Every studio error answers {"message", "problems": [{message, element_id, line, severity}], ...}."""
    body = err.as_dict()
    body.setdefault("problems", [])
    return body


@bp.errorhandler(QualiflowError)
def domain_error(err: QualiflowError):
    return jsonify(error_body(err)), err.status


@bp.errorhandler(CSRFError)
def csrf_error(err: CSRFError):
    return jsonify(message=err.description, problems=[]), 400


@bp.errorhandler(HTTPException)
def http_error(err: HTTPException):
    """Flask's own refusals answer in the studio's shape too: 413 over the upload limit, 404, 405."""
    return jsonify(error=err.name, message=err.description, problems=[]), err.code


@bp.before_request
def require_login():
    # JSON callers get 401, not the login page's redirect; the services check the role.
    if not current_user.is_authenticated:
        return jsonify(message=_("Sign in to use the process studio."), problems=[]), 401
    return None


def xml_body() -> bytes:
    """Return the raw BPMN XML of the request; refuse other content types and an empty body."""
    if request.mimetype not in XML_TYPES:
        raise ValidationFailed(_("Send the BPMN diagram as XML (Content-Type: application/xml)."))
    data = request.get_data(cache=False)
    if not data.strip():
        raise ValidationFailed(_("The request has no BPMN diagram."))
    return data


def json_field(name: str) -> object:
    body = request.get_json(silent=True)
    return body.get(name) if isinstance(body, dict) else None


def json_text(name: str) -> str | None:
    """Read an optional text field of the JSON body; refuse a number, list or object there with 400."""
    value = json_field(name)
    if value is not None and not isinstance(value, str):
        raise ValidationFailed(_("%(name)s must be text.", name=name))
    return value


def int_arg(value: object, name: str) -> int | None:
    """Read an optional whole number (query argument or JSON field); refuse anything else with 400."""
    if value is None or value == "":
        return None
    number = whole_number(value, minimum=0)
    if number is None or (isinstance(value, str) and not value.strip().isdigit()):
        raise ValidationFailed(_("%(name)s must be a whole number.", name=name))
    return number


def xml_response(data: bytes) -> Response:
    return Response(data, mimetype="application/xml")


@bp.get("/processes")
def process_list():
    return jsonify(studio.process_catalogue(current_user))


@bp.get("/versions/<key>/<int:version>.bpmn")
def version_diagram(key: str, version: int):
    return xml_response(studio.version_xml(current_user, key, version))


@bp.post("/drafts")
def create_draft():
    draft = studio.create_draft(current_user, xml_body(), int_arg(request.args.get("base"), "base"))
    return jsonify(studio.draft_summary(draft)), 201


@bp.get("/drafts/<int:draft_id>")
def draft_info(draft_id: int):
    return jsonify(studio.draft_summary(studio.get_draft(current_user, draft_id)))


@bp.get("/drafts/<int:draft_id>.bpmn")
def draft_diagram(draft_id: int):
    return xml_response(studio.draft_xml(current_user, draft_id))


@bp.put("/drafts/<int:draft_id>")
def save_draft(draft_id: int):
    return jsonify(studio.draft_summary(studio.save_draft(current_user, draft_id, xml_body())))


@bp.delete("/drafts/<int:draft_id>")
def delete_draft(draft_id: int):
    studio.delete_draft(current_user, draft_id)
    return "", 204


@bp.post("/validate")
def validate():
    return jsonify(studio.validate_diagram(current_user, xml_body()))


@bp.post("/drafts/<int:draft_id>/deploy")
def deploy_draft(draft_id: int):
    version = studio.deploy_draft(current_user, draft_id, json_text("change_note"),
                                  replace=json_field("replace") is True)
    key = version.definition.key
    return jsonify(key=key, version=version.version,
                   url=url_for("processes.version", key=key, version=version.version)), 201


@bp.get("/diff")
def diff():
    key = request.args.get("key", "")
    from_version = int_arg(request.args.get("from"), "from")
    if not key or from_version is None:
        raise ValidationFailed(_("Give the process key and the version to compare from (key, from)."))
    return jsonify(studio.diff(current_user, key, from_version, int_arg(request.args.get("to"), "to"),
                               int_arg(request.args.get("draft"), "draft")))


@bp.get("/handlers")
def handler_list():
    return jsonify(studio.handler_catalogue(current_user))


@bp.get("/forms")
def form_list():
    return jsonify(studio.form_catalogue(current_user))


@bp.post("/instances/<int:instance_id>/migrate")
def migrate(instance_id: int):
    version = int_arg(json_field("version"), "version")
    if version is None:
        raise ValidationFailed(_("Give the version to migrate to."))
    return jsonify(studio.migrate_instance(current_user, instance_id, version, json_text("reason")))

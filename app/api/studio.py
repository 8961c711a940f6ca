"""The /api/v1/studio endpoints: the studio's drafts, validation, deploy, diff, catalogues and instance migration
for scripts and tools with a bearer token (process owners and admins). Thin: parse, call a service, answer."""
from __future__ import annotations

from flask import Response, jsonify, url_for
from flask_smorest import Blueprint
from marshmallow import fields, validate

from app.api.auth import api_user, authenticate_request
from app.api.base import Schema
from app.services.studio import studio
from app.web.studio_api import xml_body

blp = Blueprint("studio_rest", __name__, url_prefix="/api/v1/studio",
                description="Process studio: BPMN drafts, validation, deploy, version diff, instance migration")
blp.before_request(authenticate_request)

_XML_BODY = {"requestBody": {"required": True, "content": {"application/xml": {"schema": {"type": "string"}}}}}
_PROBLEMS = "invalid diagram: problems with message, element_id, line and severity"


class DraftArgsSchema(Schema):
    base = fields.Int(load_default=None, validate=validate.Range(min=1),
                      metadata={"description": "id of the process version the draft starts from"})


class DeployDraftSchema(Schema):
    change_note = fields.Str(load_default="", metadata={"description": "what changed and why (required)"})
    replace = fields.Bool(load_default=False, metadata={
        "description": "confirm that a draft not based on its process replaces the procedure with its process id"})


class DiffArgsSchema(Schema):
    key = fields.Str(required=True, validate=validate.Length(min=1))
    from_version = fields.Int(required=True, data_key="from", validate=validate.Range(min=1))
    to_version = fields.Int(load_default=None, data_key="to", validate=validate.Range(min=1))
    draft = fields.Int(load_default=None, validate=validate.Range(min=1))


class MigrateSchema(Schema):
    version = fields.Int(required=True, strict=True, validate=validate.Range(min=1))
    reason = fields.Str(load_default="", metadata={"description": "why the instance moves (required)"})


def _xml(data: bytes) -> Response:
    return Response(data, mimetype="application/xml")


@blp.route("/processes")
@blp.response(200, description="processes with their versions (open instances each) and drafts")
def process_list():
    """List processes, their versions and undeployed drafts."""
    return jsonify(studio.process_catalogue(api_user()))


@blp.route("/versions/<key>/<int:version>.bpmn")
@blp.response(200, description="the version's BPMN XML with diagram interchange")
@blp.alt_response(404, description="no such process or version")
def version_diagram(key: str, version: int):
    """Download a deployed version's BPMN."""
    return _xml(studio.version_xml(api_user(), key, version))


@blp.route("/drafts", methods=["POST"])
@blp.arguments(DraftArgsSchema, location="query")
@blp.response(201, description="the draft's id, key, name and time")
@blp.alt_response(400, description="unsafe or malformed XML, or no executable process")
@blp.doc(**_XML_BODY)
def create_draft(args):
    """Save BPMN XML (the request body) as a new draft."""
    draft = studio.create_draft(api_user(), xml_body(), args["base"])
    return jsonify(studio.draft_summary(draft)), 201


@blp.route("/drafts/<int:draft_id>")
@blp.response(200, description="the draft's id, key, name, author, time, base and deployed version")
@blp.alt_response(404, description="no such draft")
def get_draft(draft_id: int):
    """Describe a draft."""
    return jsonify(studio.draft_summary(studio.get_draft(api_user(), draft_id)))


@blp.route("/drafts/<int:draft_id>", methods=["PUT"])
@blp.response(200, description="the saved draft")
@blp.alt_response(409, description="the draft was deployed and is read-only")
@blp.doc(**_XML_BODY)
def save_draft(draft_id: int):
    """Replace a draft's BPMN XML."""
    return jsonify(studio.draft_summary(studio.save_draft(api_user(), draft_id, xml_body())))


@blp.route("/drafts/<int:draft_id>", methods=["DELETE"])
@blp.response(204)
def delete_draft(draft_id: int):
    """Delete an undeployed draft."""
    studio.delete_draft(api_user(), draft_id)


@blp.route("/drafts/<int:draft_id>.bpmn")
@blp.response(200, description="the draft's BPMN XML")
def draft_diagram(draft_id: int):
    """Download a draft's BPMN."""
    return _xml(studio.draft_xml(api_user(), draft_id))


@blp.route("/validate", methods=["POST"])
@blp.response(200, description='{"valid": bool, "problems": [...]} - the same lint as a deploy')
@blp.doc(**_XML_BODY)
def validate_diagram():
    """Lint BPMN XML (the request body) without saving it."""
    return jsonify(studio.validate_diagram(api_user(), xml_body()))


@blp.route("/drafts/<int:draft_id>/deploy", methods=["POST"])
@blp.arguments(DeployDraftSchema)
@blp.response(201, description="the new version: key, version and its page")
@blp.alt_response(400, description=_PROBLEMS)
@blp.alt_response(409, description="identical to the latest version, already deployed, or its process id is a "
                                    "different procedure and replace is not set")
@blp.alt_response(422, description="no change note")
def deploy_draft(args, draft_id: int):
    """Deploy a draft as the process's next version."""
    version = studio.deploy_draft(api_user(), draft_id, args["change_note"], replace=args["replace"])
    key = version.definition.key
    return jsonify(key=key, version=version.version,
                   url=url_for("processes.version", key=key, version=version.version)), 201


@blp.route("/diff")
@blp.arguments(DiffArgsSchema, location="query")
@blp.response(200, description="elements added, removed and changed (with each property's old and new value)")
@blp.alt_response(404, description="no such process, version or draft")
def diff(args):
    """Compare two versions of a process, or a version (from) and a draft."""
    return jsonify(studio.diff(api_user(), args["key"], args["from_version"], args["to_version"], args["draft"]))


@blp.route("/handlers")
@blp.response(200, description="service-task operators with the JSON Schema of their parameters")
def handler_list():
    """List the handler catalogue."""
    return jsonify(studio.handler_catalogue(api_user()))


@blp.route("/forms")
@blp.response(200, description="form files and studio forms a user task may name")
def form_list():
    """List the forms a diagram may use."""
    return jsonify(studio.form_catalogue(api_user()))


@blp.route("/instances/<int:instance_id>/migrate", methods=["POST"])
@blp.arguments(MigrateSchema)
@blp.response(200, description="the instance and the versions it moved from and to")
@blp.alt_response(404, description="no such instance or version")
@blp.alt_response(409, description="finished, already on that version, or a waiting step is missing there")
def migrate(args, instance_id: int):
    """Move a running instance onto another version of its process, with a reason."""
    return jsonify(studio.migrate_instance(api_user(), instance_id, args["version"], args["reason"]))

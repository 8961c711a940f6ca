"""The /api/v1 endpoints: processes, instances, tasks and documents. Thin: parse, call a service, answer."""
from __future__ import annotations

import io
from urllib.parse import urlencode

from flask import jsonify, request, send_file
from flask.views import MethodView
from flask_babel import gettext as _
from flask_smorest import Blueprint

from app import security
from app.api.auth import api_user, authenticate_request
from app.api.base import FormAndFilesParser
from app.api.schemas import (
    CancelSchema,
    CompleteSchema,
    DeployResultSchema,
    DeployUploadSchema,
    InstanceSchema,
    ProcessSchema,
    StartSchema,
    TaskDetailSchema,
    TaskPageSchema,
    TaskQuerySchema,
    TaskSchema,
)
from app.exceptions import QualiflowError
from app.services.evidence import verification as evidence
from app.services.workflow import instances, processes, tasks

blp = Blueprint("api", __name__, url_prefix="/api/v1", description="Qualiflow procedures, tasks and evidence")
# Authenticate before any argument parsing, so anonymous callers learn nothing about the API's input rules.
blp.before_request(authenticate_request)
blp.ARGUMENTS_PARSER = FormAndFilesParser()


class BadUpload(QualiflowError):
    """Upload a .bpmn file in the multipart field 'file'."""


@blp.route("/processes")
class Processes(MethodView):
    @blp.response(200, ProcessSchema(many=True))
    def get(self):
        """List processes and their versions."""
        return processes.list_definitions()


@blp.route("/processes/<key>")
class Process(MethodView):
    @blp.response(200, ProcessSchema)
    def get(self, key: str):
        """Get one process and its versions."""
        return processes.get_definition(key)


@blp.route("/processes/deploy", methods=["POST"])
@blp.arguments(DeployUploadSchema, location="files")
@blp.response(201, DeployResultSchema)
def deploy(upload_form):
    """Deploy a .bpmn upload with its .dmn files: 400 with element id, line and message when invalid; 409 when its
    process id is a different procedure and replace is not set; 201 with the version."""
    upload = upload_form["file"]
    if upload is None or not getattr(upload, "filename", None) or not upload.filename.endswith(".bpmn"):
        raise BadUpload(_("Upload a .bpmn file in the multipart field 'file'."))
    tables = upload_form["dmn"]
    if not all(getattr(dmn, "filename", None) and dmn.filename.endswith(".dmn") for dmn in tables):
        raise BadUpload(_("Decision tables go in the multipart field 'dmn', as .dmn files."))
    decisions = {dmn.filename: dmn.read() for dmn in tables} or None
    return processes.deploy_file(upload.read(), upload.filename, api_user(), upload_form["change_note"],
                                 decisions=decisions, replace=upload_form["replace"])


@blp.route("/instances", methods=["POST"])
@blp.arguments(StartSchema)
@blp.response(201, InstanceSchema)
def start(args):
    """Start an instance of the effective version of a process (the newest version QA approved whose effective date
    has come); 409 when it has none yet."""
    instance = instances.start_instance(args["process"], api_user(), args["data"], title=args["title"],
                                        language=args["language"])
    return instances.instance_record(instance.id)


@blp.route("/instances/<int:instance_id>")
@blp.response(200, InstanceSchema)
def get_instance(instance_id: int):
    """Get an instance: state, tasks, data, documents, signatures, incidents and audit trail."""
    return instances.instance_record(instance_id)


@blp.route("/instances/<int:instance_id>/retry", methods=["POST"])
@blp.response(200, InstanceSchema)
def retry(instance_id: int):
    """Retry the failed task of an instance with an incident (admins)."""
    instances.retry_instance(instance_id, api_user())
    return instances.instance_record(instance_id)


@blp.route("/instances/<int:instance_id>/cancel", methods=["POST"])
@blp.arguments(CancelSchema)
@blp.response(200, InstanceSchema)
def cancel(args, instance_id: int):
    """Cancel a running instance with a reason (admins and process owners)."""
    instances.cancel_instance(instance_id, api_user(), args["reason"])
    return instances.instance_record(instance_id)


@blp.route("/tasks")
@blp.arguments(TaskQuerySchema, location="query")
@blp.response(200, TaskPageSchema)
def list_tasks(query):
    """List my ready tasks: assigned to me or offered to my groups, most urgent first; `q` searches them."""
    page = tasks.inbox(api_user(), tasks.InboxFilter(scope=query["scope"], process_key=query["process"],
                                                     overdue=query["overdue"], search=query["q"].strip()),
                       page=query["page"], per_page=query["per_page"], after=query["after"], before=query["before"])
    return {"items": page.items, "page": page.page, "pages": page.pages, "total": page.total,
            "total_exact": page.total_exact, "has_next": page.has_next, "has_prev": page.has_prev,
            "next_cursor": page.next_cursor, "prev_cursor": page.prev_cursor,
            "next": _page_link(after=page.next_cursor), "prev": _page_link(before=page.prev_cursor)}


def _page_link(**cursor: str | None) -> str | None:
    """This request's URL with its paging replaced by the cursor, or None without one."""
    [(name, value)] = cursor.items()
    if value is None:
        return None
    args = [(key, arg) for key, arg in request.args.items(multi=True) if key not in ("page", "after", "before")]
    return f"{request.path}?{urlencode([*args, (name, value)])}"


@blp.route("/tasks/<int:task_id>")
@blp.response(200, TaskDetailSchema)
def get_task(task_id: int):
    """Get a task with the JSON Schema of its form."""
    task = tasks.get_task(task_id)
    schema, ui_schema = tasks.task_form(task)
    # Answered as is: TaskDetailSchema would dump the already dumped dict again and fail on its user fields.
    return jsonify({**TaskSchema().dump(task), "form_schema": schema, "ui_schema": ui_schema})


@blp.route("/tasks/<int:task_id>/claim", methods=["POST"])
@blp.response(200, TaskSchema)
def claim(task_id: int):
    """Claim a task of one of my groups (409 when someone else has it, 403 when not my group)."""
    return tasks.claim_task(task_id, api_user())


@blp.route("/tasks/<int:task_id>/release", methods=["POST"])
@blp.response(200, TaskSchema)
def release(task_id: int):
    """Give a claimed task back to its group."""
    return tasks.release_task(task_id, api_user())


@blp.route("/tasks/<int:task_id>/complete", methods=["POST"])
@security.failed_signatures()
@blp.arguments(CompleteSchema)
@blp.response(200, TaskSchema)
def complete(args, task_id: int):
    """Complete a task with form data (422 field errors, 409 already completed, 401 bad signature password)."""
    return tasks.complete_task(task_id, args["data"], api_user(), password=args["password"])


@blp.route("/documents/<int:document_id>")
@blp.response(200, description="the .docx file")
@blp.alt_response(409, description="its bytes no longer match the recorded SHA-256: not served, incident raised")
def download(document_id: int):
    """Download a rendered document (409 when its bytes no longer match the recorded SHA-256)."""
    document = evidence.open_document(document_id, api_user())
    return send_file(io.BytesIO(document.content), download_name=document.filename, as_attachment=True,
                     mimetype="application/vnd.openxmlformats-officedocument.wordprocessingml.document")

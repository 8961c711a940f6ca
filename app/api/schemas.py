"""marshmallow schemas of the API's requests and responses."""
from __future__ import annotations

from marshmallow import fields, validate

from app.api.base import Schema
from app.services.workflow import procedure_control


class VersionSchema(Schema):
    version = fields.Int()
    filename = fields.Str()
    content_hash = fields.Str()
    change_note = fields.Str()
    created_at = fields.DateTime()
    author = fields.Function(lambda v: v.author.username if v.author else None, allow_none=True,
                             metadata={"type": "string"})
    status = fields.Function(lambda v: procedure_control.version_control(v)["status"], metadata={
        "type": "string", "enum": ["pending", "scheduled", "effective", "superseded", "rejected", "withdrawn"],
        "description": "document control: pending approval, approved but its effective date not come (scheduled), "
                       "the effective version, superseded by a newer effective one, rejected or withdrawn"})
    control = fields.Function(procedure_control.version_control, metadata={
        "type": "object", "description": "author, reason for change, effective date, approver and the approval's "
                                         "e-signature (printed name, meaning, time, hash), or who rejected or "
                                         "withdrew it and why"})


class ProcessSchema(Schema):
    key = fields.Str()
    name = fields.Str()
    versions = fields.List(fields.Nested(VersionSchema))


class DeployResultSchema(Schema):
    process = fields.Function(lambda r: r.version.definition.key, metadata={"type": "string"})
    version = fields.Function(lambda r: r.version.version, metadata={"type": "integer"})
    created = fields.Bool()


class DeployUploadSchema(Schema):
    """A multipart/form-data upload: the diagram, its decision tables and the form fields, read together (see
    base.FormAndFilesParser)."""

    # Not required here: a missing upload answers 400 BadUpload like a wrong file type, not a 422.
    file = fields.Raw(metadata={"type": "string", "format": "binary", "description": "the .bpmn file"},
                      load_default=None)
    dmn = fields.List(fields.Raw(metadata={"type": "string", "format": "binary"}), load_default=list, metadata={
        "description": "The .dmn decision tables the diagram's business rule tasks call (repeat the field); "
                       "without any, those of the process's latest version are kept"})
    change_note = fields.Str(load_default="", metadata={
        "description": "the reason for the change: what changed and why (required for a new version, else 422)"})
    replace = fields.Bool(load_default=False, metadata={
        "description": "Confirm that the diagram replaces the procedure that already has its process id although "
                       "it is not derived from it (otherwise 409)"})


class StartSchema(Schema):
    process = fields.Str(required=True, metadata={"example": "capa"})
    title = fields.Str(load_default="", validate=validate.Length(max=300))
    data = fields.Dict(load_default=dict)
    language = fields.Str(load_default=None, validate=validate.OneOf(["en", "zh-CN"]))


class CancelSchema(Schema):
    reason = fields.Str(required=True, validate=validate.Length(min=1, max=500))


class TaskSchema(Schema):
    id = fields.Int()
    instance_id = fields.Int()
    element_id = fields.Str()
    name = fields.Str()
    kind = fields.Str()
    state = fields.Str()
    group = fields.Str(attribute="group_name", allow_none=True)
    assignee = fields.Function(lambda t: t.assignee.username if t.assignee else None, allow_none=True,
                               metadata={"type": "string"})
    form = fields.Str(allow_none=True)
    signature_meaning = fields.Str(allow_none=True)
    due_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime()
    completed_at = fields.DateTime(allow_none=True)
    completed_by = fields.Function(lambda t: t.completed_by.username if t.completed_by else None,
                                   allow_none=True, metadata={"type": "string"})
    data = fields.Dict(allow_none=True, metadata={"description": "what was submitted; null until completed"})


class TaskDetailSchema(TaskSchema):
    form_schema = fields.Dict()
    ui_schema = fields.Dict(allow_none=True)


class TaskQuerySchema(Schema):
    scope = fields.Str(load_default="all", validate=validate.OneOf(["all", "mine", "unassigned"]))
    process = fields.Str(load_default=None)
    overdue = fields.Bool(load_default=False)
    q = fields.Str(load_default="", validate=validate.Length(max=100), metadata={
        "description": "text the task's name (English or Chinese) or its instance's title contains, any case"})
    after = fields.Str(load_default=None, metadata={
        "description": "the next page: the `next_cursor` of the page before (an opaque text; 400 if it is not one "
                       "this API gave out). As fast at page 2,000 as on the first, and completing tasks between "
                       "reads neither skips nor repeats a task"})
    before = fields.Str(load_default=None, metadata={
        "description": "the previous page: the `prev_cursor` of the page after it"})
    page = fields.Int(load_default=1, validate=validate.Range(min=1), metadata={
        "description": "a page by number (kept for compatibility): reads every task before it, so deep pages are "
                       "slower, and tasks completed meanwhile shift the pages; prefer `after`"})
    per_page = fields.Int(load_default=20, validate=validate.Range(min=1, max=200))


class TaskPageSchema(Schema):
    items = fields.List(fields.Nested(TaskSchema))
    page = fields.Int(allow_none=True, metadata={"description": "the page number; null for a page read by cursor"})
    next_cursor = fields.Str(allow_none=True, metadata={
        "description": "pass as `after` for the next page; null on the last page"})
    prev_cursor = fields.Str(allow_none=True, metadata={
        "description": "pass as `before` for the previous page; null on the first page"})
    next = fields.Str(allow_none=True, metadata={"description": "the next page's URL (with `after`), or null"})
    prev = fields.Str(allow_none=True, metadata={"description": "the previous page's URL (with `before`), or null"})
    has_prev = fields.Bool()
    pages = fields.Int(metadata={"description": "a lower bound when total_exact is false"})
    total = fields.Int(metadata={"description": "exact up to 10,000 tasks, 1,000 with a filter or q (or up to the "
                                                "page asked for); beyond that a lower bound, and total_exact is false"})
    total_exact = fields.Bool()
    has_next = fields.Bool()


class CompleteSchema(Schema):
    data = fields.Dict(load_default=dict)
    password = fields.Str(load_default=None, metadata={"description": "required for e-signed stage gates"})


class DocumentSchema(Schema):
    id = fields.Int()
    kind = fields.Str()
    revision = fields.Int()
    filename = fields.Str()
    template_name = fields.Str()
    template_version = fields.Str()
    language = fields.Str()
    sha256 = fields.Str()
    size = fields.Int()
    created_at = fields.DateTime()


class SignatureSchema(Schema):
    id = fields.Int()
    task_id = fields.Int()
    user = fields.Function(lambda s: s.user.username)
    printed_name = fields.Str()
    meaning = fields.Str()
    signed_at = fields.DateTime()
    signed_hash = fields.Str()
    documents = fields.List(fields.Dict())


class AuditSchema(Schema):
    id = fields.Int()
    at = fields.DateTime()
    actor_name = fields.Str()
    action = fields.Str()
    object_type = fields.Str()
    object_id = fields.Str()
    old = fields.Raw(allow_none=True)
    new = fields.Raw(allow_none=True)
    reason = fields.Str()
    hash = fields.Str()


class IncidentSchema(Schema):
    id = fields.Int()
    element_id = fields.Str(allow_none=True)
    message = fields.Str()
    retry_count = fields.Int()
    created_at = fields.DateTime()
    resolved_at = fields.DateTime(allow_none=True)


class InstanceSchema(Schema):
    id = fields.Function(lambda r: r.instance.id, metadata={"type": "integer"})
    process = fields.Function(lambda r: r.instance.version.definition.key, metadata={"type": "string"})
    version = fields.Function(lambda r: r.instance.version.version, metadata={"type": "integer"})
    title = fields.Function(lambda r: r.instance.title, metadata={"type": "string"})
    status = fields.Function(lambda r: r.instance.status, metadata={"type": "string"})
    started_at = fields.Function(lambda r: r.instance.started_at.isoformat(),
                                 metadata={"type": "string", "format": "date-time"})
    completed_at = fields.Function(lambda r: r.instance.completed_at and r.instance.completed_at.isoformat(),
                                   allow_none=True, metadata={"type": "string", "format": "date-time"})
    next_timer_at = fields.Function(lambda r: r.instance.next_timer_at and r.instance.next_timer_at.isoformat(),
                                    allow_none=True, metadata={"type": "string", "format": "date-time"})
    data = fields.Function(lambda r: r.instance.data, metadata={"type": "object"})
    tasks = fields.List(fields.Nested(TaskSchema))
    documents = fields.List(fields.Nested(DocumentSchema))
    signatures = fields.List(fields.Nested(SignatureSchema))
    incidents = fields.List(fields.Nested(IncidentSchema))
    audit = fields.List(fields.Nested(AuditSchema))


class InstanceStartedSchema(Schema):
    """An instance started for a record (a recall from a lot or CAPA, a lot release): where to go next."""

    id = fields.Int()
    title = fields.Str()
    status = fields.Str()
    task_id = fields.Function(lambda i: next((t.id for t in i.tasks if t.state == "ready"), None), allow_none=True,
                              metadata={"type": "integer", "description": "the first task, its form filled in"})

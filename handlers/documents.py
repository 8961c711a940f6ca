"""documents.render: render a docx template with the instance data and keep it as hashed evidence."""
from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate
from sqlalchemy import select

from app.models import Document, Signature, Task
from app.services.evidence.document_rendering import store_document
from handlers.base import HandlerContext

NAME = validate.Regexp(r"^[A-Za-z0-9_]+$", error="letters, digits and underscores only")


class RenderParams(Schema):
    template = fields.Str(required=True, validate=NAME, metadata={"description": "templates/<template>.<lang>.docx"})
    kind = fields.Str(load_default=None, validate=NAME, metadata={"description": "evidence kind; default: template"})
    language = fields.Str(load_default=None, validate=validate.OneOf(["en", "zh-CN"]))


def render_document(ctx: HandlerContext, params: dict[str, Any]) -> dict[str, Any]:
    """Render the template, store the file with its SHA-256 and link it to this task as a new revision."""
    return render_evidence(ctx, params)


def render_evidence(ctx: HandlerContext, params: dict[str, Any], extra_context: dict[str, Any] | None = None,
                    ) -> dict[str, Any]:
    """Render once per task run (a retry returns the first rendering) with the instance data and extra_context."""
    existing = ctx.session.scalar(select(Document).where(
        Document.instance_id == ctx.instance.id, Document.task_spiff_id == ctx.spiff_id))
    if existing is None:
        existing = _render(ctx, params, extra_context or {})
    return {"document_id": existing.id, "kind": existing.kind, "revision": existing.revision,
            "filename": existing.filename, "sha256": existing.sha256}


def _render(ctx: HandlerContext, params: dict[str, Any], extra_context: dict[str, Any]) -> Document:
    language = params["language"] or ctx.instance.language
    starter = ctx.instance.started_by
    context = {
        "instance_id": ctx.instance.id, "generated_at": ctx.now.isoformat(timespec="seconds"), "lang": language,
        "started_by": starter.full_name if starter else "", "data": ctx.data,
        ctx.instance.version.definition.key: ctx.data, "company": ctx.company,
        "signatures": [{"element": element, "meaning": s.meaning, "printed_name": s.printed_name,
                        "signed_at": s.signed_at.isoformat(timespec="seconds")}
                       for s, element in ctx.session.execute(
                           select(Signature, Task.element_id).join(Task, Task.id == Signature.task_id)
                           .where(Signature.instance_id == ctx.instance.id).order_by(Signature.id))],
        **extra_context,
    }
    return store_document(ctx.instance, templates_dir=ctx.templates_dir, template=params["template"],
                          kind=params["kind"] or params["template"], language=language, context=context,
                          now=ctx.now, task_spiff_id=ctx.spiff_id, element_id=ctx.element_id)

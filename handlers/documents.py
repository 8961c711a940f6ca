"""documents.render: render a docx template with the instance data and keep it as hashed evidence."""
from __future__ import annotations

import hashlib
import json
from typing import Any

from marshmallow import Schema, fields, validate
from sqlalchemy import func, select

from app.models import Document
from app.services.document_rendering import render_docx, template_path, template_version
from handlers.base import HandlerContext

NAME = validate.Regexp(r"^[A-Za-z0-9_]+$", error="letters, digits and underscores only")


class RenderParams(Schema):
    template = fields.Str(required=True, validate=NAME, metadata={"description": "templates/<template>.<lang>.docx"})
    kind = fields.Str(load_default=None, validate=NAME, metadata={"description": "evidence kind; default: template"})
    language = fields.Str(load_default=None, validate=validate.OneOf(["en", "zh-CN"]))


def render_document(ctx: HandlerContext, params: dict[str, Any]) -> dict[str, Any]:
    """Render the template, store the file with its SHA-256 and link it to this task as a new revision."""
    existing = ctx.session.scalar(select(Document).where(
        Document.instance_id == ctx.instance.id, Document.task_spiff_id == ctx.spiff_id))
    if existing is None:
        existing = _render(ctx, params)
    return {"document_id": existing.id, "kind": existing.kind, "revision": existing.revision,
            "filename": existing.filename, "sha256": existing.sha256}


def _render(ctx: HandlerContext, params: dict[str, Any]) -> Document:
    language = params["language"] or ctx.instance.language
    kind = params["kind"] or params["template"]
    path = template_path(ctx.templates_dir, params["template"], language)
    starter = ctx.instance.started_by
    context = {
        "instance_id": ctx.instance.id, "generated_at": ctx.now.isoformat(timespec="seconds"), "lang": language,
        "started_by": starter.full_name if starter else "", "data": ctx.data,
        ctx.instance.version.definition.key: ctx.data,
    }
    content = render_docx(path, context)
    revision = 1 + (ctx.session.scalar(select(func.max(Document.revision)).where(
        Document.instance_id == ctx.instance.id, Document.kind == kind)) or 0)
    document = Document(
        instance_id=ctx.instance.id, task_spiff_id=ctx.spiff_id, element_id=ctx.element_id, kind=kind,
        revision=revision, filename=f"{kind}-{ctx.instance.id}-r{revision}.{language}.docx",
        template_name=path.name, template_version=template_version(path), language=language,
        sha256=hashlib.sha256(content).hexdigest(), size=len(content), context=_plain(context),
        content=content, created_at=ctx.now)
    ctx.session.add(document)
    ctx.session.flush()
    return document


def _plain(context: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(context, default=str))

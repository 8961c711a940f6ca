"""Render the .docx templates of templates/ into stage-gate evidence documents with docxtpl,
in a sandboxed, autoescaping Jinja environment so task data stays literal text."""
from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime, tzinfo
from functools import partial
from io import BytesIO
from pathlib import Path
from typing import Any

from docxtpl import DocxTemplate
from flask import current_app
from flask_babel import gettext
from jinja2 import ChainableUndefined, Undefined, pass_context
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment
from sqlalchemy import func, select

from app.exceptions import NotFound
from app.extensions import db
from app.models import Document, ProcessInstance
from app.models.evidence import DOCX_MIMETYPE as DOCX_MIMETYPE  # downloads serve documents as this
from app.services.evidence import audit
from app.services.workflow import plant_time

FALLBACK_LANGUAGE = "en"

_YES_NO = {"en": ("Yes", "No"), "zh-CN": ("是", "否")}


def template_path(templates_dir: Path, name: str, lang: str) -> Path:
    """Return the template file for name in lang, falling back to English."""
    for segment in (name, lang):
        # Names come from BPMN diagrams that process owners edit: never let one leave templates_dir.
        if not segment or "/" in segment or "\\" in segment or ".." in segment:
            raise ValueError(f"Invalid document template name or language: {segment!r}")
    for candidate_lang in dict.fromkeys((lang, FALLBACK_LANGUAGE)):
        path = templates_dir / f"{name}.{candidate_lang}.docx"
        if path.is_file():
            return path
    raise NotFound(gettext("No document template %(name)s: neither %(localized)s nor %(english)s exists.",
                           name=repr(name), localized=f"{name}.{lang}.docx", english=f"{name}.en.docx"))


def template_version(path: Path) -> str:
    """Return the SHA-256 hex digest of the template file, recorded with each rendered document."""
    with path.open("rb") as template_file:
        return hashlib.file_digest(template_file, "sha256").hexdigest()


def render_docx(path: Path, context: dict[str, Any], *, tz: tzinfo | None = None, title: str = "",
                author: str = "", created: datetime | None = None) -> bytes:
    """Render the docx template at path with context and return the document bytes.

    tz is the plant's zone: the date filter shows a time's local date. title, author and created replace the
    template's own core properties (what a file manager and Word's Info pane show).
    """
    template = DocxTemplate(path)
    template.render(context, jinja_env=_jinja_environment(tz))
    if created is not None:
        properties = template.docx.core_properties
        properties.title, properties.author, properties.last_modified_by = title, author, author
        properties.created = properties.modified = created.astimezone(UTC)
    output = BytesIO()
    template.save(output)
    return output.getvalue()


def _properties(instance: ProcessInstance, kind: str, now: datetime) -> dict[str, Any]:
    """The rendering options of an instance's document: the plant's zone and the core properties."""
    return {"tz": plant_time.zone(), "title": f"{instance.title} - {kind}" if instance.title else kind,
            "author": current_app.config["COMPANY_NAME"], "created": now}


def store_document(instance: ProcessInstance, *, templates_dir: Path, template: str, kind: str, language: str,
                   context: dict[str, Any], now: datetime, task_spiff_id: str | None = None,
                   element_id: str | None = None) -> Document:
    """Render a template and keep the file as the next revision of its kind, with its hash and data (no commit)."""
    path = template_path(templates_dir, template, language)
    content = render_docx(path, context, **_properties(instance, kind, now))
    return keep_document(instance, content, kind=kind, language=language,
                         template_name=path.name, template_version=template_version(path), context=context,
                         now=now, task_spiff_id=task_spiff_id, element_id=element_id)


def keep_document(instance: ProcessInstance, content: bytes, *, kind: str, language: str, template_name: str,
                  template_version: str, context: dict[str, Any], now: datetime, task_spiff_id: str | None = None,
                  element_id: str | None = None) -> Document:
    """Keep document bytes as the next revision of their kind, with their hash, and audit it (no commit)."""
    revision = 1 + (db.session.scalar(select(func.max(Document.revision)).where(
        Document.instance_id == instance.id, Document.kind == kind)) or 0)
    document = Document(
        instance_id=instance.id, task_spiff_id=task_spiff_id, element_id=element_id, kind=kind,
        revision=revision, filename=f"{kind}-{instance.id}-r{revision}.{language}.docx",
        template_name=template_name, template_version=template_version, language=language,
        sha256=hashlib.sha256(content).hexdigest(), size=len(content),
        context=json.loads(json.dumps(context, default=str)), content=content, created_at=now)
    db.session.add(document)
    db.session.flush()
    # The trail (anchored by checkpoints) keeps the hash too: rewriting the bytes and the row's hash together shows.
    audit.record(None, "document.stored", "document", document.id, instance_id=instance.id, at=now,
                 new=stored_fingerprint(document))
    return document


def stored_fingerprint(document: Document) -> dict[str, Any]:
    """What the document.stored audit event records of a document, to compare it with later."""
    return {"filename": document.filename, "kind": document.kind, "revision": document.revision,
            "sha256": document.sha256, "size": document.size}


def _jinja_environment(tz: tzinfo | None = None) -> SandboxedEnvironment:
    """Build the environment per render because docxtpl may set attributes on the one it gets."""
    # Autoescape turns "<", "&" in task data into XML entities, so data cannot break the document XML;
    # ChainableUndefined renders a missing field (even capa.missing.deeper) as "" instead of failing.
    environment = SandboxedEnvironment(autoescape=True, undefined=ChainableUndefined)
    environment.filters["date"] = partial(_format_date, tz=tz)
    environment.filters["yesno"] = _yes_no
    return environment


def _format_date(value: object, tz: tzinfo | None = None) -> str:
    """Format a date, datetime or ISO string as YYYY-MM-DD (a time with a zone: its date in tz); show other text
    unchanged."""
    if value is None or isinstance(value, Undefined) or value == "":
        return ""
    if not isinstance(value, date):
        try:
            value = datetime.fromisoformat(str(value))
        except ValueError:
            return str(value)
    if isinstance(value, datetime) and value.tzinfo is not None and tz is not None:
        value = value.astimezone(tz)
    return value.strftime("%Y-%m-%d")


@pass_context
def _yes_no(context: Context, value: object) -> str:
    """Return Yes/No (是/否 when lang is zh-CN) for a boolean; empty when it is missing."""
    if value is None or isinstance(value, Undefined):
        return ""
    yes, no = _YES_NO.get(context.get("lang"), _YES_NO[FALLBACK_LANGUAGE])
    return yes if value else no

"""Issue a gate's signed documents as a new revision that shows its e-signatures (21 CFR 11.50): printed
name, time and meaning in the document's language, filled into the template's sign-off table or appended."""
from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import UTC, datetime
from io import BytesIO

import docx
from docx.document import Document as DocxDocument
from docx.table import Table
from docx.text.paragraph import Paragraph
from flask import current_app
from flask_babel import force_locale, gettext
from sqlalchemy import select

from app.extensions import db
from app.models import Document, Group, Signature, Task
from app.services.evidence.document_rendering import keep_document
from app.services.workflow import plant_time

# The header of the sign-off table the recall templates print (its rows are filled, not its labels trusted).
SIGN_OFF_HEADERS = (("Role", "Name", "Signature", "Date"), ("职责", "姓名", "签名", "日期"))
# What templates print where the signatures belong: "... recorded in Qualiflow; see the signature manifest."
PLACEHOLDER_MARKS = ("signature manifest", "签名清单")


@dataclass(frozen=True)
class Manifestation:
    """One signature as a signed record shows it."""

    printed_name: str
    meaning: str
    signed_at: datetime
    group_name: str | None  # the lane the signer signed for: the role the record names


def evidence_kinds(task: Task) -> list[str]:
    """Return the document kinds a gate signs (its `evidence` property)."""
    return [kind.strip() for kind in (task.evidence or "").split(",") if kind.strip()]


def issue_signed_revisions(task: Task, signing: Manifestation, now: datetime) -> list[Document]:
    """Issue each document the gate signs as its next revision, showing the signatures of that rendering with
    this one last; a missing document is left to the gate's own evidence check (no commit)."""
    issued = []
    for kind in evidence_kinds(task):
        latest = db.session.scalar(select(Document).where(Document.instance_id == task.instance_id,
                                                          Document.kind == kind)
                                   .order_by(Document.revision.desc()).limit(1))
        if latest is None:
            continue
        source = _rendering(latest)
        manifest = [*_earlier_signatures(task.instance_id, kind, source.id), signing]
        content = sign_docx(source.content, manifest, source.language, now)
        context = {**source.context, "signed_revision": {
            "of_document": source.id, "revision": source.revision, "sha256": source.sha256,
            "signatures": [{"printed_name": m.printed_name, "meaning": m.meaning, "group": m.group_name,
                            "signed_at": m.signed_at.isoformat()} for m in manifest]}}
        issued.append(keep_document(
            task.instance, content, kind=kind, language=source.language, template_name=source.template_name,
            template_version=source.template_version, context=context, now=now, task_spiff_id=task.spiff_id,
            element_id=task.element_id))
    return issued


def _rendering(document: Document) -> Document:
    """Return the rendered revision a document is (or was issued from): signatures apply to that content."""
    source_id = (document.context or {}).get("signed_revision", {}).get("of_document")
    return db.session.get(Document, source_id) if source_id else document


def _earlier_signatures(instance_id: int, kind: str, rendering_id: int) -> list[Manifestation]:
    """Signatures of gates that signed this kind since it was rendered (a re-render starts a new record)."""
    rendered_ids = set(db.session.scalars(select(Document.id).where(
        Document.instance_id == instance_id, Document.kind == kind, Document.id >= rendering_id)))
    return [Manifestation(s.printed_name, s.meaning, s.signed_at, task.group_name)
            for s, task in db.session.execute(select(Signature, Task).join(Task, Task.id == Signature.task_id)
                                              .where(Signature.instance_id == instance_id).order_by(Signature.id))
            if kind in evidence_kinds(task) and any(item.get("id") in rendered_ids for item in s.documents)]


def sign_docx(content: bytes, manifest: list[Manifestation], language: str, now: datetime) -> bytes:
    """Return the document with the signatures filled into its sign-off table (or an appended table of
    electronic signatures), its placeholder sentence replaced, and its core properties set."""
    document = docx.Document(BytesIO(content))
    with force_locale("zh_CN" if language == "zh-CN" else "en"):
        sign_off = next((table for table in document.tables if _is_sign_off(table)), None)
        placeholder = next((p for p in document.paragraphs if any(mark in p.text for mark in PLACEHOLDER_MARKS)),
                           None)
        if sign_off is not None:
            _fill_sign_off(sign_off, manifest, language)
        else:
            _add_signature_table(document, placeholder, manifest, language)
        if placeholder is not None:
            _set_paragraph_text(placeholder, gettext(
                "Signed electronically in Qualiflow: this revision was issued on signing, and its last "
                "signature is bound to its SHA-256."))
    _set_properties(document, manifest, now)
    output = BytesIO()
    document.save(output)
    return output.getvalue()


def _is_sign_off(table: Table) -> bool:
    header = tuple(cell.text.strip() for cell in table.rows[0].cells) if table.rows else ()
    return header in SIGN_OFF_HEADERS


def _fill_sign_off(table: Table, manifest: list[Manifestation], language: str) -> None:
    """Keep the rows that name someone (the preparer); replace the empty ones with one row per signature."""
    empty = [row for row in table.rows[1:] if not row.cells[1].text.strip()]
    pattern = copy.deepcopy((empty or table.rows[-1:])[0]._tr)
    for row in empty:
        row._tr.getparent().remove(row._tr)
    for signature in manifest:
        row_element = copy.deepcopy(pattern)
        table._tbl.append(row_element)
        cells = table.rows[-1].cells
        texts = (_role_text(signature, language), signature.printed_name, gettext("Signed electronically"),
                 signed_time(signature.signed_at))
        for cell, text in zip(cells, texts, strict=True):
            _set_paragraph_text(cell.paragraphs[0], text)
            for extra in cell.paragraphs[1:]:
                extra._p.getparent().remove(extra._p)


def _add_signature_table(document: DocxDocument, after: Paragraph | None, manifest: list[Manifestation],
                         language: str) -> None:
    """Add an "Electronic signatures" table after the placeholder sentence, or a headed one at the end."""
    if after is None:
        document.add_paragraph(gettext("Electronic signatures"), style=_style(document, "Heading 1"))
    table = document.add_table(rows=1, cols=4)
    if "Table Grid" in [style.name for style in document.styles]:
        table.style = "Table Grid"
    for cell, text in zip(table.rows[0].cells, (gettext("Role"), gettext("Printed name"), gettext("Meaning"),
                                                gettext("Signed at")), strict=True):
        cell.text = text
    for signature in manifest:
        for cell, text in zip(table.add_row().cells, (_group_label(signature.group_name, language),
                                                      signature.printed_name, meaning_text(signature.meaning),
                                                      signed_time(signature.signed_at)), strict=True):
            cell.text = text
    if after is not None:
        after._p.addnext(table._tbl)


def _style(document: DocxDocument, name: str) -> str | None:
    return name if name in [style.name for style in document.styles] else None


def _set_paragraph_text(paragraph: Paragraph, text: str) -> None:
    """Replace a paragraph's text, keeping the formatting of its first run."""
    runs = paragraph.runs
    if not runs:
        paragraph.add_run(text)
        return
    runs[0].text = text
    for run in runs[1:]:
        run._r.getparent().remove(run._r)


def _set_properties(document: DocxDocument, manifest: list[Manifestation], now: datetime) -> None:
    """Keep the rendering's title; the company is the author, the signer the last to modify, issued now."""
    properties = document.core_properties
    properties.author = current_app.config["COMPANY_NAME"] or manifest[-1].printed_name
    properties.last_modified_by = manifest[-1].printed_name
    properties.created = properties.modified = now.astimezone(UTC)


def meaning_text(meaning: str) -> str:
    """Return a signature meaning in the current locale (the labels the pages use)."""
    labels = {"approved": gettext("Approved"), "authored": gettext("Authored"), "released": gettext("Released"),
              "reviewed": gettext("Reviewed"), "rejected": gettext("Rejected")}
    return labels.get(meaning, meaning)


def signed_time(at: datetime) -> str:
    """Return a signing time as records print it: on the plant's clock, with the zone's name."""
    return plant_time.format_moment(at if at.tzinfo else at.replace(tzinfo=UTC), plant_time.zone())


def _group_label(group_name: str | None, language: str) -> str:
    group = db.session.scalar(select(Group).where(Group.name == group_name)) if group_name else None
    if group is None:
        return group_name or ""
    return (group.label_zh if language == "zh-CN" else group.label) or group.label or group.name


def _role_text(signature: Manifestation, language: str) -> str:
    """The sign-off row's role: what the signer did and for whom ("Approved by (Head of QA)")."""
    role = _group_label(signature.group_name, language)
    meaning = meaning_text(signature.meaning)
    return gettext("%(meaning)s by (%(role)s)", meaning=meaning, role=role) if role else meaning

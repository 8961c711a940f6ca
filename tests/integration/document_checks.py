"""Read rendered documents back as an inspector would: fields left empty, raw codes in a Chinese document."""
from __future__ import annotations

import re
from io import BytesIO

import docx
from docxtpl import DocxTemplate

from app.models import Document
from app.services.evidence import document_rendering
from tests.conftest import ROOT

EMPTY = "⟦EMPTY⟧"
# A code the reader would see raw: statuses, decisions, dispositions, consignee kinds, Python values.
RAW_CODE = re.compile(r"\b(quarantine|released|hold|recalled|expired|scrapped|returned|met|met_late|overdue|pending|"
                      r"destroy|rework|distributor|hospital|end_user|approve|reject|major|minor|pass|fail|"
                      r"True|False|None)\b")


def docx_text(content: bytes) -> str:
    parsed = docx.Document(BytesIO(content))
    cells = [cell.text for table in parsed.tables for row in table.rows for cell in row.cells]
    return "\n".join([p.text for p in parsed.paragraphs] + cells)


def empty_fields(document: Document) -> list[str]:
    """Render the document's template again with its stored data, marking each field that comes out empty;
    return the paragraphs and table rows that hold a mark."""
    environment = document_rendering._jinja_environment()
    environment.finalize = lambda value: EMPTY if value is None or str(value).strip() == "" else value
    template = DocxTemplate(ROOT / "templates" / document.template_name)
    template.render(document.context, jinja_env=environment)
    buffer = BytesIO()
    template.save(buffer)
    parsed = docx.Document(BytesIO(buffer.getvalue()))
    rows = [" | ".join(cell.text for cell in row.cells) for table in parsed.tables for row in table.rows]
    return [text for text in [p.text for p in parsed.paragraphs] + rows if EMPTY in text]


def raw_codes(document: Document) -> list[str]:
    """Return the raw codes a Chinese document shows (none for other languages)."""
    if ".zh-CN." not in document.template_name:
        return []
    return sorted(set(RAW_CODE.findall(docx_text(document.content))))

"""Tests for rendering the CAPA report templates into .docx evidence."""
from __future__ import annotations

import hashlib
import shutil
from datetime import UTC, date, datetime
from io import BytesIO
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from docx import Document

from app.exceptions import NotFound
from app.services.evidence.document_rendering import render_docx, template_path, template_version

TEMPLATES_DIR = Path(__file__).resolve().parents[3] / "templates"

HEADINGS = {
    "en": ["CAPA Report", "1 Problem", "2 Containment", "3 Root cause", "4 Action plan",
           "5 Effectiveness verification", "6 Approval"],
    "zh-CN": ["纠正和预防措施报告", "1 问题描述", "2 遏制措施", "3 根本原因分析", "4 措施计划", "5 有效性验证",
              "6 批准"],
}
APPROVAL_NOTES = {
    "en": "Approval is recorded as an electronic signature in Qualiflow; see the signature manifest.",
    "zh-CN": "批准以电子签名的形式记录在 Qualiflow 中；请参阅签名清单。",
}
YES_NO = {"en": ("Yes", "No"), "zh-CN": ("是", "否")}


def capa_context(lang: str = "en", **capa: Any) -> dict[str, Any]:
    """Return a full CAPA report context, with capa fields overridden by keyword."""
    return {
        "instance_id": 42,
        "generated_at": "2025-03-10T08:30:00+00:00",
        "lang": lang,
        "started_by": "Li Na",
        "capa": {
            "title": "Seal strength below specification",
            "source": "inspection",
            "source_reference": "17",
            "source_record": {"label": "final inspection #17 of lot L2025-001: fail, 2025-03-01"},
            "lot_numbers": "L2025-001, L2025-002",
            "description": "Peel test of pouch seals measured 1.1 N/15 mm against a minimum of 1.5 N/15 mm.",
            "severity": "major",
            "reported_on": "2025-03-01",
            "containment_actions": "Quarantined finished goods; stopped sealer 3.",
            "held_lots": {"lots": ["L2025-001"], "status": "hold"},
            "containment_done": True,
            "why_1": "Seal temperature was low.",
            "why_2": "Heater controller drifted.",
            "why_3": "Controller not in the calibration plan.",
            "why_4": "",
            "why_5": "Equipment onboarding skipped the calibration review.",
            "fishbone_machine": ["Heater controller drift", "No alarm on low temperature"],
            "fishbone_method": ["Calibration plan incomplete"],
            "root_cause_category": "machine",
            "root_cause": "Sealer heater controller missing from calibration plan",
            "actions": [
                {"description": "Add controller to calibration plan", "type": "corrective", "owner": "Wang Wei",
                 "due_date": "2025-03-20"},
                {"description": "Revise onboarding checklist", "type": "preventive", "owner": "Zhang Min",
                 "due_date": date(2025, 4, 15)},
            ],
            "action_results": [  # in the order the owners finished them
                {"number": 2, "description": "Revise onboarding checklist", "type": "preventive", "owner": "Zhang Min",
                 "due_date": date(2025, 4, 15), "done_note": "Checklist rev. D",
                 "completed_on": "2025-04-14T16:00:00+08:00", "evidence": "DOC-2025-120"},
                {"number": 1, "description": "Add controller to calibration plan", "type": "corrective",
                 "owner": "Wang Wei", "due_date": "2025-03-20", "done_note": "Calibration plan CP-7 rev. C released.",
                 "completed_on": "2025-03-18", "evidence": "DOC-2025-118"},
            ],
            "effectiveness_metric": "Seal failures per 20 consecutive lots",
            "effectiveness_operator": "<=",
            "effectiveness_target": 0,
            "verification_period": "P90D",
            "measured_value": 1,
            "measured_on": "2025-07-01",
            "measurement_note": "Peel tests of lots 2025-040 to 2025-059",
            "effective": False,
            "effectiveness_history": [
                {"pass": 1, "measured_value": 1, "measured_on": "2025-07-01", "effective": False}],
            **capa,
        },
    }


def render_capa(context: dict[str, Any]) -> bytes:
    """Render the CAPA report in the context's language."""
    return render_docx(template_path(TEMPLATES_DIR, "capa_report", context.get("lang", "en")), context)


def docx_text(data: bytes) -> list[str]:
    """Return the text of every paragraph and table cell of a .docx document."""
    document = Document(BytesIO(data))
    texts = [paragraph.text for paragraph in document.paragraphs]
    texts += [cell.text for table in document.tables for row in table.rows for cell in row.cells]
    return texts


def table_rows(data: bytes) -> list[list[str]]:
    """Return the cell texts of every table row of a .docx document."""
    document = Document(BytesIO(data))
    return [[cell.text for cell in row.cells] for table in document.tables for row in table.rows]


def field_values(data: bytes) -> dict[str, str]:
    """Return the value column of the two-column field tables, keyed by label."""
    return {row[0]: row[1] for row in table_rows(data) if len(row) == 2}


@pytest.mark.parametrize("lang", ["en", "zh-CN"])
def test_renders_full_capa_report(lang: str) -> None:
    data = render_capa(capa_context(lang))

    texts = docx_text(data)
    for expected in [*HEADINGS[lang], APPROVAL_NOTES[lang], "Seal strength below specification",
                     "L2025-001, L2025-002", "Sealer heater controller missing from calibration plan",
                     "Li Na", "2025-03-01", "final inspection #17 of lot L2025-001: fail, 2025-03-01", "L2025-001",
                     "Heater controller drift; No alarm on low temperature", "<= 0", "P90D", "2025-07-01"]:
        assert expected in texts
    labels = {"en": ("Major", "Failed inspection", "Machine", "Corrective", "Preventive"),
              "zh-CN": ("严重", "检验不合格", "机", "纠正", "预防")}[lang]
    assert set(labels) <= set(texts)
    rows = table_rows(data)
    done = [row for row in rows if len(row) == 8][1:]  # sorted by action number, not by when they were done
    assert [row[0:2] + row[3:] for row in done] == [
        ["1", "Add controller to calibration plan", "Wang Wei", "2025-03-20", "Calibration plan CP-7 rev. C released.",
         "2025-03-18", "DOC-2025-118"],
        ["2", "Revise onboarding checklist", "Zhang Min", "2025-04-15", "Checklist rev. D", "2025-04-14",
         "DOC-2025-120"]]
    yes, no = YES_NO[lang]
    assert ["1", "1", "2025-07-01", no] in rows
    values = list(field_values(data).values())
    assert values.count(yes) == 1 and values.count(no) == 1


def test_lists_only_the_answered_whys_in_order() -> None:
    document = Document(BytesIO(render_capa(capa_context(why_2=None, why_4=""))))

    whys = [p.text for p in document.paragraphs if p.style.name == "List Number"]

    assert whys == ["Seal temperature was low.", "Controller not in the calibration plan.",
                    "Equipment onboarding skipped the calibration review."]


@pytest.mark.parametrize("lang", ["en", "zh-CN"])
def test_zh_cn_template_uses_an_east_asian_font(lang: str) -> None:
    styles = Document(BytesIO(render_capa(capa_context(lang)))).styles.element.xml

    assert ('w:eastAsia="SimSun"' in styles) is (lang == "zh-CN")


@pytest.mark.parametrize("context", [{}, {"lang": "zh-CN", "capa": {"title": "Only a title"}}])
def test_missing_variables_render_empty(context: dict[str, Any]) -> None:
    data = render_capa(context)

    headers = {"Causes", "可能原因", "Measured value", "测量值"}  # the header rows of the fishbone and history tables
    values = {label: value for label, value in field_values(data).items() if value not in headers}
    # optional fields print "none" (a missing checkbox "No"), in the document's language
    assert set(values.values()) <= {"", "Only a title", "none", "无", "No", "否"}
    assert len([row for row in table_rows(data) if len(row) == 8]) == 1, "only the action table's header row"
    assert len([row for row in table_rows(data) if len(row) == 4]) == 1, "only the history table's header row"
    assert not any("Undefined" in text or "None" in text for text in docx_text(data))


def test_task_data_stays_literal_text() -> None:
    hostile = '</w:t></w:r></w:p><w:p><w:r><w:t>forged</w:t></w:r></w:p> & {{ 7*7 }} {% if true %}x{% endif %}'
    clean = Document(BytesIO(render_capa(capa_context())))

    data = render_capa(capa_context(title=hostile, description=hostile, actions=[{"owner": "{{ 7*7 }}"}],
                                    action_results=[]))

    document = Document(BytesIO(data))
    assert len(document.paragraphs) == len(clean.paragraphs)
    assert field_values(data)["CAPA title"] == hostile
    assert hostile in docx_text(data)
    assert ["1", "", "", "{{ 7*7 }}", "", "", "", "none"] in table_rows(data)
    assert not any("49" in text for text in docx_text(data))


@pytest.mark.parametrize(("reported_on", "shown"), [
    ("2025-03-01", "2025-03-01"),
    ("2025-03-01T23:30:00+08:00", "2025-03-01"),
    (date(2025, 3, 1), "2025-03-01"),
    ("early March", "early March"),
    (None, ""),
])
def test_date_filter_shows_iso_dates(reported_on: object, shown: str) -> None:
    data = render_capa(capa_context(reported_on=reported_on))

    assert field_values(data)["Reported on"] == shown


def test_date_filter_shows_the_plants_date_of_a_time() -> None:
    path = template_path(TEMPLATES_DIR, "capa_report", "en")
    data = render_docx(path, capa_context(reported_on="2025-03-01T17:30:00+00:00"), tz=ZoneInfo("Asia/Shanghai"))

    assert field_values(data)["Reported on"] == "2025-03-02"


def test_core_properties_name_the_document_its_author_and_when_it_was_made() -> None:
    made = datetime(2026, 11, 23, 17, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    data = render_docx(template_path(TEMPLATES_DIR, "capa_report", "en"), capa_context(), title="CAPA 42",
                       author="Qualiflow Demo Medical Co., Ltd.", created=made)

    properties = Document(BytesIO(data)).core_properties
    assert (properties.title, properties.author, properties.last_modified_by) == (
        "CAPA 42", "Qualiflow Demo Medical Co., Ltd.", "Qualiflow Demo Medical Co., Ltd.")
    assert properties.created == properties.modified == datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # docx keeps UTC


@pytest.mark.parametrize(("lang", "expected"), [
    ("en", "capa_report.en.docx"),
    ("zh-CN", "capa_report.zh-CN.docx"),
    ("fr", "capa_report.en.docx"),
])
def test_template_path_prefers_language_then_english(lang: str, expected: str) -> None:
    assert template_path(TEMPLATES_DIR, "capa_report", lang) == TEMPLATES_DIR / expected


def test_template_path_falls_back_to_english_when_translation_is_missing(tmp_path: Path) -> None:
    shutil.copy(TEMPLATES_DIR / "capa_report.en.docx", tmp_path)

    assert template_path(tmp_path, "capa_report", "zh-CN") == tmp_path / "capa_report.en.docx"


def test_template_path_raises_not_found_naming_the_template() -> None:
    with pytest.raises(NotFound, match="no_such_report"):
        template_path(TEMPLATES_DIR, "no_such_report", "en")


@pytest.mark.parametrize(("name", "lang"), [
    ("../x", "en"),
    ("..", "en"),
    ("reports/capa_report", "en"),
    ("reports\\capa_report", "en"),
    ("", "en"),
    ("capa_report", "../en"),
])
def test_template_path_refuses_paths(name: str, lang: str) -> None:
    with pytest.raises(ValueError):
        template_path(TEMPLATES_DIR, name, lang)


def test_template_version_is_the_sha256_of_the_file_bytes(tmp_path: Path) -> None:
    original = TEMPLATES_DIR / "capa_report.en.docx"
    copy = Path(shutil.copy(original, tmp_path))

    version = template_version(copy)

    assert version == template_version(original) == hashlib.sha256(original.read_bytes()).hexdigest()
    copy.write_bytes(copy.read_bytes() + b"\0")
    assert template_version(copy) != version

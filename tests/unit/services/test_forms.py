"""Tests for app/services/forms.py and the forms/_fields.html macro, including every shipped form."""
import re
from pathlib import Path

import pytest
from flask import Flask, render_template_string
from werkzeug.datastructures import MultiDict

from app.exceptions import FormInvalid
from app.services.workflow import forms

ROOT = Path(__file__).resolve().parents[3]
FORMS_DIR = ROOT / "forms"
SCHEMA_FILES = sorted(path.name for path in FORMS_DIR.glob("*.schema.json"))

SAMPLE = {
    "type": "object",
    "required": ["title"],
    "properties": {
        "title": {"type": "string", "title": "Title", "maxLength": 20},
        "count": {"type": "integer", "minimum": 1, "maximum": 9},
        "ratio": {"type": "number"},
        "done": {"type": "boolean"},
        "passed": {"type": "boolean"},
        "colour": {"type": "string", "enum": ["red", "blue"]},
        "seen_on": {"type": "string", "format": "date"},
        "contact": {"type": "string", "format": "email"},
        "code": {"type": "string", "pattern": "^L[0-9]+$"},
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
        "actions": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["owner"],
                "properties": {
                    "owner": {"type": "string"}, "hours": {"type": "integer"}, "urgent": {"type": "boolean"},
                },
            },
        },
    },
}
SAMPLE_UI = {"passed": {"ui:widget": "radio"}}

VALID_PAYLOADS = {
    "deviation_assessment.schema.json": {
        "stability_reference": "STAB-2025-07: 25 °C for 14 days",
        "mkt_assessment": "Max 9.6 °C for 45 min, MKT 9.5 °C.",
        "impact": "No impact: covered by the stability data.", "root_cause": "Door left open.",
        "decisions": [{"lot_number": "C1", "decision": "release", "justification": "Stability data"},
                      {"lot_number": "C2", "decision": "scrap"}],
        "open_capa": True, "capa_description": "Door alarm of cold room A did not sound.",
    },
    "deviation_approval.schema.json": {"approval": "reject", "approval_comment": "Quote the stability report."},
    "capa_problem.schema.json": {
        "title": "Sterile barrier seal failure", "source": "inspection", "source_reference": "17",
        "lot_numbers": "L2401, L2402", "description": "Seal strength below 1.2 N/15 mm on 3 of 20 pouches.",
        "severity": "major", "reported_on": "2024-05-06",
    },
    "capa_containment.schema.json": {
        "containment_actions": "Lots put on hold and segregated.", "containment_lots": "L2401",
        "containment_done": True,
    },
    "capa_investigation.schema.json": {
        "why_1": "Seal temperature too low", "why_2": "Thermocouple drifted", "why_3": "Not calibrated",
        "fishbone_machine": ["Thermocouple drift"], "fishbone_method": ["Calibration plan incomplete"],
        "root_cause_category": "machine", "root_cause": "Thermocouple not in the calibration plan.",
    },
    "capa_action_plan.schema.json": {
        "actions": [{"description": "Add thermocouple to calibration", "type": "corrective", "owner": "li.wei",
                     "due_date": "2024-06-01"}],
        "effectiveness_metric": "Seal failures per 1000 pouches", "effectiveness_operator": "<=",
        "effectiveness_target": 0.5, "verification_period": "P3M",
    },
    "capa_action.schema.json": {
        "action_done_note": "Calibration plan updated.", "action_completed_on": "2024-05-30",
        "action_evidence": "CAL-2024-017",
    },
    "capa_effectiveness.schema.json": {
        "measured_value": 0.1, "measured_on": "2024-09-01", "measurement_note": "Peel tests of 1,200 pouches.",
    },
    "capa_approval.schema.json": {"decision": "approve", "approval_comment": "Effective; close.",
                                  "lot_decision": "keep", "keep_reason": "Awaiting re-inspection."},
    "capa_escalation.schema.json": {"escalation_action": "Extra technician assigned; new due date 2024-06-15."},
    "recall_trigger.schema.json": {
        "source": "complaint", "material_lots": "M1", "description": "Leaking infusion sets reported.",
        "reporter": "Dr Wu", "reported_on": "2026-11-20",
    },
    "recall_assessment.schema.json": {
        "hazard": "Air embolism if the set leaks", "risk": "Serious", "population": "Infusion patients",
        "recall_class": "I", "scope": "recall", "countries": "CN, us",
    },
    "recall_final_approval.schema.json": {"decision": "approve", "comment": "Figures reviewed.",
                                          "closing_justification": "Two hospitals closed; units written off."},
    "recall_gate.schema.json": {"decision": "reject", "comment": "Assess children too."},
    "recall_notices.schema.json": {"notice_contact_en": "QA hotline", "reason_en": "The sets may leak.",
                                   "instructions_en": "Stop use and return all units.",
                                   "instructions_zh": "停止使用并全部退回。",
                                   "forward_request": True},
    "recall_submission.schema.json": {"authority": "Jiangsu MPA", "submitted_on": "2026-11-23"},
    "recall_plan.schema.json": {"strategy": "Recover all units in 30 days", "depth": "hospital", "level": "B",
                                "b_percent": 30, "plan_contact": "Li Na", "plan_submitted_on": "2026-11-24"},
    "recall_monitor.schema.json": {"field_actions_done": True, "summary": "All consignees answered."},
    "recall_effectiveness.schema.json": {"outcome": "exception", "justification": "Two hospitals closed."},
    "recall_disposition.schema.json": {"disposition": [{"lot_number": "L1", "quantity": 5, "disposition": "destroy"}]},
    "recall_escalation.schema.json": {"action": "Called the distributor; notices sent today."},
    "lot_release_request.schema.json": {"lot_number": "Q1", "request_note": "Batch record closed."},
    "lot_release_failed.schema.json": {"action": "open_capa", "comment": "Labels missing on pallet 3."},
    "lot_release_review.schema.json": {"batch_record_reviewed": True, "review_comment": "Complete."},
    "lot_release_decision.schema.json": {"decision": "approve"},
    "change_request.schema.json": {"title": "New sealing temperature", "change_type": "process",
                                   "description": "Raise the sealing temperature.", "reason": "Weak seals",
                                   "requested_on": "2026-11-23", "lot_numbers": "C1"},
    "change_classification.schema.json": {"classification": "minor", "classification_rationale": "No risk change",
                                          "regulatory_filing": False, "new_udi_di": False},
    "change_impact_qa.schema.json": {"qa_impact_text": "No impact", "qa_risk": "low", "qa_recommendation": "approve"},
    "change_impact_ra.schema.json": {"ra_impact_text": "No filing", "ra_risk": "low", "ra_recommendation": "approve"},
    "change_impact_production.schema.json": {"production_impact_text": "Retrain", "production_risk": "medium",
                                             "production_recommendation": "approve"},
    "change_approval.schema.json": {"decision": "reject", "comment": "Validate first."},
    "change_close.schema.json": {"decision": "approve"},
    "change_implementation.schema.json": {"actions": [{"action": "Set point", "owner": "prod", "done": True}],
                                          "implementation_summary": "Done on line 2.", "implemented_on": "2026-11-30"},
    "change_verification.schema.json": {"verification_method": "validation", "verification_result": "PQ passed",
                                        "verification_record": "VAL-1", "verified_on": "2026-12-01"},
    "change_effectiveness.schema.json": {"effectiveness_comment": "No failures.", "lot_decision": "keep",
                                         "keep_reason": "More data needed.", "effective": False},
    "supplier_return_identify.schema.json": {"source": "incoming_inspection", "material_lots": "M1, M2",
                                             "defect_description": "Black specks in 12 of 50 samples.",
                                             "severity": "major", "found_on": "2026-11-23", "reference": "IQC-118"},
    "supplier_return_scar.schema.json": {"defect_description": "Black specks in the resin.",
                                         "requirements": "Containment, root cause, 8D report.",
                                         "scar_contact": "Li Na"},
    "supplier_return_request.schema.json": {"lines": [{"lot_number": "M1", "specification": "SG-5", "quantity": 2.5,
                                                       "unit": "t", "reason": "Contaminated"}],
                                            "recipient": "Resin Co, Ningbo", "rma_number": "RMA-1"},
    "supplier_return_authorisation.schema.json": {"decision": "approve"},
    "supplier_return_shipment.schema.json": {"returned_on": "2026-11-25", "carrier": "SF Express",
                                             "tracking_no": "SF1"},
    "supplier_return_verification.schema.json": {"verification": "accepted", "verification_note": "8D reviewed."},
    "supplier_return_status.schema.json": {"supplier_status": "suspended", "status_reason": "Major defect."},
    "supplier_return_close.schema.json": {"decision": "reject", "comment": "Reconsider the status."},
    "supplier_return_escalation.schema.json": {"action": "Phoned the supplier."},
    "supplier_review_decision.schema.json": {
        "assessment": "Three failed incoming inspections this year, SCAR answers late.",
        "supplier_status": "conditional", "status_reason": "15 % nonconforming.", "start_scar": True,
        "scar_lot": "ML-PP-202605",
    },
    "supplier_review_approval.schema.json": {"approval": "reject", "approval_comment": "Name the lots."},
    "scrap_request.schema.json": {"lot_number": "L-1", "location": "A-01", "quantity": 30, "method": "incineration",
                                  "witness": "Zhou Jie, warehouse supervisor", "reason": "Expired stock."},
    "scrap_approval.schema.json": {"approval": "reject", "approval_comment": "Return it to the supplier."},
}


@pytest.fixture(scope="module")
def form_files() -> dict[str, dict]:
    return forms.read_form_files(FORMS_DIR)


@pytest.fixture
def render():
    app = Flask(__name__, template_folder=str(ROOT / "app" / "templates"))

    def render_fields(fields: list[forms.Field]) -> str:
        with app.app_context():
            return render_template_string(
                '{% from "forms/_fields.html" import render_fields %}{{ render_fields(fields) }}', fields=fields)

    return render_fields


def _error(call, *args) -> dict[str, list[str]]:
    with pytest.raises(FormInvalid) as info:
        call(*args)
    return info.value.errors


def _properties(schema: dict):
    """Yield (name, property) for every property, including those of array items."""
    for name, prop in schema.get("properties", {}).items():
        yield name, prop
        yield from _properties(prop.get("items", {}))


@pytest.mark.parametrize(("formdata", "expected"), [
    ({"title": "Seal", "csrf_token": "x", "password": "secret"}, {"title": "Seal", "done": False}),
    ({"title": "  ", "colour": ""}, {"done": False}),
    ({"count": "3", "ratio": "2.5"}, {"count": 3, "ratio": 2.5, "done": False}),
    ({"count": "three", "ratio": "inf"}, {"count": "three", "ratio": "inf", "done": False}),
    ({"done": "on", "passed": "false"}, {"done": True, "passed": False}),
    ({"done": "true", "passed": "true"}, {"done": True, "passed": True}),
    ({"colour": "blue", "seen_on": "2024-05-06"}, {"colour": "blue", "seen_on": "2024-05-06", "done": False}),
    ({"tags": "a\r\n\r\n b \nc"}, {"tags": ["a", "b", "c"], "done": False}),
    ({"title": "Line 1\r\nLine 2"}, {"title": "Line 1\nLine 2", "done": False}),
], ids=["unknown-ignored", "empty-omitted", "numbers", "bad-numbers-kept", "checkbox-and-radio",
        "true-values", "enum-and-date", "textarea-lines", "crlf-normalized"])
def test_parse_submission_types(formdata, expected):
    assert forms.parse_submission(SAMPLE, formdata, SAMPLE_UI) == expected


def test_parse_submission_reads_repeated_fields_as_array_items():
    formdata = MultiDict([("tags", "a"), ("tags", ""), ("tags", "b")])

    assert forms.parse_submission(SAMPLE, formdata)["tags"] == ["a", "b"]


def test_parse_submission_builds_rows_and_drops_empty_ones():
    formdata = MultiDict([
        ("actions-0-owner", "ann"), ("actions-0-hours", "4"),
        ("actions-1-owner", " "), ("actions-1-hours", ""),
        ("actions-2-hours", "x"), ("actions-2-urgent", "on"),
        ("actions-10-owner", "bob"),
        ("actions-3-unknown", "ignored"),
    ])

    assert forms.parse_submission(SAMPLE, formdata)["actions"] == [
        {"owner": "ann", "hours": 4, "urgent": False},
        {"hours": "x", "urgent": True},
        {"owner": "bob", "urgent": False},
    ]


def test_parse_submission_omits_array_without_rows():
    assert "actions" not in forms.parse_submission(SAMPLE, {"actions-0-owner": ""})


@pytest.mark.parametrize(("schema_file", "payload", "path", "en", "zh"), [
    ("capa_problem.schema.json", {"title": "x" * 201}, "title",
     "Enter at most 200 characters.", "最多可输入 200 个字符。"),
    ("capa_problem.schema.json", {}, "title", "This field is required.", "此项为必填项。"),
    ("capa_problem.schema.json", {"source": "rumour"}, "source",
     "Choose one of the listed options.", "请从列出的选项中选择一项。"),
    ("capa_problem.schema.json", {"description": "short"}, "description",
     "Enter at least 10 characters.", "请至少输入 10 个字符。"),
    ("capa_problem.schema.json", {"reported_on": "2024-02-30"}, "reported_on",
     "Enter a date as YYYY-MM-DD.", "请输入日期，格式为 YYYY-MM-DD。"),
    ("capa_action_plan.schema.json", {"actions": []}, "actions", "Enter 1 or more entries.", "请至少填写 1 项。"),
    ("capa_action_plan.schema.json", {"actions": [{"description": "Fix", "owner": "ann", "due_date": "soon"}]},
     "actions.0.due_date", "Enter a date as YYYY-MM-DD.", "请输入日期，格式为 YYYY-MM-DD。"),
    ("capa_action_plan.schema.json", {"verification_period": "90 days"}, "verification_period",
     "Enter a value in the expected format.", "请按要求的格式输入。"),
    ("capa_investigation.schema.json", {"why_1": "a", "why_2": "b"}, "why_3", "This field is required.",
     "此项为必填项。"),
    ("capa_approval.schema.json", {"lot_decision": "keep"}, "keep_reason", "This field is required.",
     "此项为必填项。"),
    ("capa_action_plan.schema.json", {"actions": [{"description": "Fix", "due_date": "2024-06-01"}]},
     "actions.0.owner", "This field is required.", "此项为必填项。"),
    ("capa_approval.schema.json", {"decision": "maybe"}, "decision",
     "Choose one of the listed options.", "请从列出的选项中选择一项。"),
    (None, {"title": "t", "count": 0}, "count", "Enter a value of at least 1.", "请输入不小于 1 的值。"),
    (None, {"title": "t", "count": 10}, "count", "Enter a value of at most 9.", "请输入不大于 9 的值。"),
    (None, {"title": "t", "count": "three"}, "count", "Enter a whole number.", "请输入整数。"),
    (None, {"title": "t", "ratio": "inf"}, "ratio", "Enter a number.", "请输入数字。"),
    (None, {"title": "t", "contact": "nobody"}, "contact",
     "Enter a valid e-mail address.", "请输入有效的电子邮件地址。"),
    (None, {"title": "t", "code": "X1"}, "code", "Enter a value in the expected format.", "请按要求的格式输入。"),
    (None, {"title": "t", "tags": ["a"]}, "tags", "Enter 2 or more entries.", "请至少填写 2 项。"),
    (None, {"title": "t", "done": "yes"}, "done", "This value has the wrong type.", "此项的值类型不正确。"),
])
@pytest.mark.parametrize("lang", ["en", "zh-CN"])
def test_validate_reports_field_path_and_message(form_files, schema_file, payload, path, en, zh, lang):
    schema = form_files[schema_file] if schema_file else SAMPLE

    errors = _error(forms.validate, schema, payload, lang)

    assert (en if lang == "en" else zh) in errors[path]


def test_validate_collects_every_error_and_accepts_locale_spelling(form_files):
    errors = _error(forms.validate, form_files["capa_problem.schema.json"], {"title": "x" * 201}, "zh_CN")

    assert set(errors) == {"title", "source", "source_reference", "description", "severity", "reported_on"}
    assert errors["title"] == ["最多可输入 200 个字符。"]


def test_validate_falls_back_to_jsonschema_message():
    schema = {"type": "object", "properties": {"n": {"type": "integer", "multipleOf": 5}}}

    assert _error(forms.validate, schema, {"n": 3}) == {"n": ["3 is not a multiple of 5"]}


def test_every_schema_has_a_valid_payload():
    assert sorted(VALID_PAYLOADS) == SCHEMA_FILES


@pytest.mark.parametrize("schema_file", SCHEMA_FILES)
def test_valid_payload_passes(form_files, schema_file):
    forms.validate(form_files[schema_file], VALID_PAYLOADS[schema_file])


@pytest.mark.parametrize("schema_file", SCHEMA_FILES)
def test_schema_is_valid_and_translated(form_files, schema_file):
    schema = form_files[schema_file]

    forms.check_schema(schema)
    assert schema["title"] and schema["x-i18n"]["zh-CN"]["title"]
    for name, prop in _properties(schema):
        assert prop.get("title"), name
        assert prop.get("x-i18n", {}).get("zh-CN", {}).get("title"), name
        if "enum" in prop:
            assert len(prop["enumNames"]) == len(prop["x-i18n"]["zh-CN"]["enumNames"]) == len(prop["enum"]), name


@pytest.mark.parametrize("schema_file", SCHEMA_FILES)
def test_valid_payload_round_trips_through_the_html_form(form_files, schema_file):
    schema = form_files[schema_file]
    uischema = form_files.get(schema_file.replace(".schema.json", ".uischema.json"))
    payload = VALID_PAYLOADS[schema_file]
    formdata = MultiDict()
    for field in forms.form_fields(schema, uischema, payload, {}):
        cells = [cell for row in field.rows for cell in row] or [field]
        for cell in cells:
            if cell.widget != "checkbox" or cell.value:
                formdata.add(cell.name, "true" if cell.widget == "checkbox" else cell.value)

    assert forms.parse_submission(schema, formdata, uischema) == payload


def test_check_schema_rejects_invalid_schema():
    with pytest.raises(ValueError, match="minLength"):
        forms.check_schema({"type": "object", "properties": {"a": {"type": "string", "minLength": -1}}})


@pytest.mark.parametrize(("filename", "content", "problem"), [
    ("broken.schema.json", "{not json", "not valid JSON"),
    ("broken.uischema.json", "[]", "expected a JSON object"),
    ("broken.schema.json", '{"type": "strin"}', "invalid JSON Schema"),
])
def test_read_form_files_names_the_bad_file(tmp_path, filename, content, problem):
    (tmp_path / "good.schema.json").write_text('{"type": "object"}', encoding="utf-8")
    (tmp_path / filename).write_text(content, encoding="utf-8")

    with pytest.raises(ValueError, match=rf"^{re.escape(filename)}: {problem}"):
        forms.read_form_files(tmp_path)


def test_read_form_files_keys_schemas_and_uischemas_by_file_name(form_files):
    assert "capa_problem.schema.json" in form_files
    assert form_files["capa_problem.uischema.json"]["description"]["ui:widget"] == "textarea"


def test_form_fields_follow_ui_order_then_schema_order(form_files):
    fields = forms.form_fields(form_files["capa_problem.schema.json"], form_files["capa_problem.uischema.json"], {}, {})

    assert [f.name for f in fields] == ["title", "source", "source_reference", "severity", "probability",
                                        "reported_on", "lot_numbers", "description"]
    assert [f.widget for f in fields] == ["text", "select", "text", "select", "select", "date", "text", "textarea"]
    assert [f.required for f in fields] == [True, True, True, True, False, True, False, True]


def test_form_fields_translate_labels_help_and_options(form_files):
    fields = forms.form_fields(form_files["capa_problem.schema.json"], form_files["capa_problem.uischema.json"],
                               {"source": "complaint"}, {}, lang="zh-CN")
    by_name = {f.name: f for f in fields}

    assert by_name["title"].label == "问题标题"
    assert by_name["lot_numbers"].help == "问题涉及的产品批号；多个批号之间用逗号分隔。"
    assert by_name["source_reference"].attrs == {"maxlength": 120,
                                                 "placeholder": "例如 42、L2401、SUP-03、CMP-2026-118"}
    assert by_name["lot_numbers"].attrs == {"maxlength": 2000, "placeholder": "L2401, L2402"}
    assert by_name["source"].value == "complaint"
    assert by_name["source"].options[:2] == [("", "请选择…"), ("inspection", "检验不合格")]


def test_form_fields_describe_array_table_rows(form_files):
    schema, ui = form_files["capa_action_plan.schema.json"], form_files["capa_action_plan.uischema.json"]
    values = {"actions": [{"description": "Fix"}, {"owner": "ann"}, {"owner": "bob"}]}

    actions, *criterion = forms.form_fields(schema, ui, values, {"actions.1.due_date": ["Bad date."]})

    assert actions.widget == "array_table"
    assert [c.label for c in actions.columns] == ["Action", "Type", "Owner (user name)", "Due date"]
    assert len(actions.rows) == 4
    assert actions.rows[1][3].name == "actions-1-due_date"
    assert actions.rows[1][3].errors == ["Bad date."]
    assert [c.value for c in actions.rows[3]] == ["", "", "", ""]
    assert actions.rows[0][1].options == [("", "Choose…"), ("corrective", "Corrective"), ("preventive", "Preventive")]
    assert [f.name for f in criterion] == ["effectiveness_metric", "effectiveness_operator", "effectiveness_target",
                                           "verification_period"]
    assert len(forms.form_fields(schema, ui, {}, {})[0].rows) == 2
    assert len(forms.form_fields(schema, None, {}, {})[0].rows) == 1


def test_render_shows_required_error_next_to_its_input(form_files, render):
    schema = form_files["capa_problem.schema.json"]
    values = {"title": "Seal failure"}
    errors = _error(forms.validate, schema, values)

    html = render(forms.form_fields(schema, form_files["capa_problem.uischema.json"], values, errors))

    assert '<label class="form-label" for="field-title">' in html
    assert '<input class="form-control" type="text" id="field-title" name="title" value="Seal failure"' in html
    assert re.search(
        r'<input class="form-control is-invalid" type="date" id="field-reported_on" name="reported_on" value=""'
        r'[^>]*aria-invalid="true" aria-describedby="field-reported_on-error">\s*'
        r'<div id="field-reported_on-error" class="invalid-feedback d-block">This field is required.</div>', html)
    assert html.count("is-invalid") == 5
    assert "<form" not in html and 'type="submit"' not in html


def test_render_select_with_translated_options(form_files, render):
    schema = form_files["capa_problem.schema.json"]

    html = render(forms.form_fields(schema, None, {"source": "complaint"}, {}, lang="zh-CN"))

    assert re.search(r'<label class="form-label" for="field-source">来源<span[^>]*>\*</span></label>\s*'
                     r'<select class="form-select" id="field-source" name="source" aria-required="true">', html)
    assert '<option value="complaint" selected>投诉</option>' in html
    assert '<option value="recall">召回</option>' in html


def test_render_help_radio_and_array_table(form_files, render):
    approval = forms.form_fields(form_files["capa_approval.schema.json"], form_files["capa_approval.uischema.json"],
                                 {"decision": "reject"}, {})
    plan = forms.form_fields(form_files["capa_action_plan.schema.json"], None, {}, {"actions": ["Enter 1 or more."]})

    html = render(approval + plan)

    assert 'type="radio" id="field-decision-1" name="decision" value="reject" checked>' in html
    assert '<label class="form-check-label" for="field-decision-1">Reject</label>' in html
    assert '<fieldset class="mb-3" aria-describedby="field-actions-help field-actions-error">' in html
    assert 'for="field-actions-0-owner">Owner (user name) <span data-row-number>1</span></label>' in html
    assert 'name="actions-0-due_date"' in html
    assert re.search(r'<button type="button" [^>]*data-add-row="field-actions">Add row</button>', html)
    assert 'id="field-actions" data-array-name="actions"' in html

"""The studio's form editor in Chromium: the process owner retitles a CAPA field and sees the preview follow,
types a JSON Schema error and finds it listed at its path and line, fixes it and saves; others are turned away."""
from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from .accounts import sign_in
from .conftest import serve

pytestmark = pytest.mark.e2e

FIELD = '"type": "string",\n      "title": "Problem title"'


@pytest.fixture(scope="module")
def server_url(chromium: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server of this module's own: saving a form changes what later deploys on that server take."""
    with serve(tmp_path_factory.mktemp("form_editor_server")) as (url, _):
        yield url


def edit_schema(page: Page, old: str, new: str) -> None:
    schema = page.get_by_label("JSON Schema")
    text = schema.input_value()
    assert old in text
    schema.fill(text.replace(old, new, 1))


def test_owner_edits_previews_fixes_and_saves_a_form(page: Page):
    sign_in(page, "owner")
    page.goto("/studio/forms/")
    page.get_by_role("link", name="capa_problem", exact=True).click()
    expect(page.get_by_role("heading", name="Form editor: capa_problem")).to_be_visible()
    preview = page.get_by_test_id("form-preview")
    expect(preview.get_by_label("Problem title")).to_be_visible()

    edit_schema(page, FIELD, FIELD.replace("Problem title", "Short problem title"))
    expect(preview.get_by_label("Short problem title")).to_be_visible()
    expect(page.get_by_test_id("save-status")).to_have_text("Unsaved changes")

    edit_schema(page, '"type": "string",\n      "title": "Short', '"type": "strin",\n      "title": "Short')
    problem = page.get_by_test_id("problems").get_by_role("button").first
    expect(problem).to_contain_text("$.properties.title.type")
    expect(problem).to_contain_text("line 20")
    expect(problem).to_contain_text("'strin' is not one of")
    expect(page.get_by_text("The preview shows the last version without errors.")).to_be_visible()
    expect(preview.get_by_label("Short problem title")).to_be_visible()  # the last good preview stays

    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_test_id("save-status")).to_have_text("Not saved: the form has errors.")
    problem.click()  # moves the cursor to the line at fault
    expect(page.get_by_label("JSON Schema")).to_be_focused()
    assert page.evaluate("() => { const t = document.getElementById('schema-text');"
                         " return t.value.slice(t.selectionStart, t.selectionEnd); }").strip().startswith('"type"')

    edit_schema(page, '"type": "strin"', '"type": "string"')
    expect(page.get_by_test_id("problems")).to_have_text("No problems found.")
    page.keyboard.press("Control+s")
    expect(page.get_by_test_id("save-status")).to_contain_text("Saved: capa_problem.schema.json")

    page.reload()
    expect(page.get_by_label("JSON Schema")).to_have_value(re.compile(r".*Short problem title.*", re.S))
    page.locator("label[for='preview-lang-zh-CN']").click()
    expect(preview.get_by_label("问题标题")).to_be_visible()

    page.goto("/studio/forms/")
    row = page.get_by_test_id("forms-table").get_by_role("row").filter(has_text="capa_problem")
    expect(row.first).to_contain_text("studio")


def test_staff_are_turned_away(page: Page):
    sign_in(page, "head")
    response = page.goto("/studio/forms/capa_problem")
    assert response is not None and response.status == 403
    expect(page.get_by_test_id("error-message")).to_have_text("Only process owners and admins edit forms.")

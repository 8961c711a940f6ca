"""A user adds a logger, imports its readings on the import page, and sees them drawn by Chart.js under the page's
content security policy (the server's SVG chart is the fallback without JavaScript)."""
from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from playwright.sync_api import Page, expect

from tests.e2e.accounts import sign_in
from tests.e2e.test_security_browser import RECORD_VIOLATIONS, violations


def logger_file() -> bytes:
    start = datetime(2026, 11, 20, tzinfo=UTC)
    rows = ["timestamp,sensor,value,unit"]
    rows += [f"{(start + timedelta(minutes=5 * i)).strftime('%Y-%m-%dT%H:%M:%SZ')},E2E-T1,{4 + (i % 12) / 4},C"
             for i in range(288)]
    return ("\n".join(rows) + "\n").encode()


def test_a_logger_file_is_imported_and_charted(page: Page):
    page.add_init_script(RECORD_VIOLATIONS)
    sign_in(page, "qa")
    page.goto("/lots/sensors/new")
    page.get_by_label("Sensor").fill("E2E-T1")
    page.get_by_label("Location or vehicle (as in stock)").fill("E2E cold room")
    page.get_by_role("button", name="Save").click()
    page.goto("/lots/import?kind=readings")
    page.get_by_label("File (.csv or .xlsx)").set_input_files(
        {"name": "logger.csv", "mimeType": "text/csv", "buffer": logger_file()})
    page.get_by_role("button", name="Import").click()
    expect(page.get_by_test_id("import-succeeded")).to_be_visible(timeout=20_000)
    page.goto("/conditions/")
    page.get_by_role("link", name="E2E-T1").click()
    expect(page).to_have_url(re.compile(r"/conditions/sensors/\d+"))
    drawn = page.locator("canvas[data-conditions-chart][data-drawn='1']")
    expect(drawn).to_be_attached(timeout=10_000)
    expect(page.locator("svg.conditions-svg")).to_be_hidden()
    assert violations(page) == []

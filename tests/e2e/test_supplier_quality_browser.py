"""A head of QA scores the suppliers on the approved-supplier list, opens one and sees its score drawn by Chart.js
on the threshold bands under the page's content security policy, and downloads the list as XLSX."""
from __future__ import annotations

import io
import re
from datetime import date, timedelta

from openpyxl import load_workbook
from playwright.sync_api import Page, expect

from tests.e2e.accounts import sign_in
from tests.e2e.test_security_browser import RECORD_VIOLATIONS, violations


def inspections_file() -> bytes:
    """Two more passed incoming inspections of the demo's polypropylene lots (the demo has two in the last year)."""
    day = (date.today() - timedelta(days=1)).isoformat()
    rows = ["stage,material,material_lot,result,inspected_on,inspector,results"]
    rows += [f"incoming,Polypropylene resin,{lot},pass,{day},E2E Inspector,AQL 1.0 passed"
             for lot in ("ML-PP-202605", "ML-PP-202606")]
    return ("\n".join(rows) + "\n").encode()


def test_the_suppliers_are_scored_charted_and_exported(page: Page):
    page.add_init_script(RECORD_VIOLATIONS)
    sign_in(page, "head")
    page.goto("/lots/import?kind=inspections")
    page.get_by_label("File (.csv or .xlsx)").set_input_files(
        {"name": "iqc.csv", "mimeType": "text/csv", "buffer": inspections_file()})
    page.get_by_role("button", name="Import").click()
    expect(page.get_by_test_id("import-succeeded")).to_be_visible(timeout=20_000)
    page.goto("/suppliers/")
    page.get_by_test_id("evaluate-all").click()
    expect(page.get_by_role("alert").or_(page.locator(".alert-success")).first).to_contain_text("scored")
    page.get_by_label("Score").select_option("good")
    page.get_by_role("button", name="Filter").click()
    first = page.get_by_test_id("asl").locator("tbody tr").first
    expect(first.get_by_test_id("score")).not_to_contain_text("no score")
    first.locator("a").first.click()
    expect(page).to_have_url(re.compile(r"/suppliers/\d+"))
    expect(page.locator("canvas[data-supplier-chart][data-drawn='1']")).to_be_attached(timeout=10_000)
    page.goto("/suppliers/")
    with page.expect_download() as download:
        page.get_by_test_id("export-xlsx").click()
    sheet = load_workbook(io.BytesIO(open(download.value.path(), "rb").read())).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][0] == "Code" and len(rows) > 1
    assert violations(page) == []

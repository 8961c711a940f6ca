"""An auditor exports a lot's evidence package in the browser: the button opens the export's page, which follows
the background job (polling, under the CSP) until it offers the download; the downloaded zip has the SHA-256 the
page shows."""
from __future__ import annotations

import hashlib
import re

import pytest
from playwright.sync_api import Page, expect

from .accounts import sign_in
from .test_security_browser import RECORD_VIOLATIONS, violations

pytestmark = pytest.mark.e2e


def test_an_auditor_exports_a_lot_package_and_downloads_it(page: Page, tmp_path):
    page.add_init_script(RECORD_VIOLATIONS)
    sign_in(page, "auditor")
    page.goto("/audit/lots?lang=en&q=SY")
    page.get_by_test_id("audit-lots").get_by_role("link").first.click()
    lot_number = page.locator("h1").inner_text().split()[1]

    page.get_by_test_id("package-link").click()

    expect(page).to_have_url(re.compile(r"/audit/exports/\d+$"))
    expect(page.get_by_test_id("export-succeeded")).to_be_visible(timeout=30_000)
    shown = re.search(r"SHA-256 ([0-9a-f]{64})", page.get_by_test_id("export-succeeded").inner_text())[1]
    with page.expect_download() as download:
        page.get_by_test_id("export-download").click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert hashlib.sha256(saved.read_bytes()).hexdigest() == shown
    assert saved.name == f"evidence-lot-{lot_number}.zip"
    page.get_by_role("link", name="My exports").first.click()
    expect(page.get_by_test_id("export-jobs")).to_contain_text(saved.name)
    assert violations(page) == []

"""Lot release clicked through Chromium: QA enters a syringe lot in quarantine (its release starts by itself) and a
passed final inspection, requests the release and e-signs the batch record review; the authorised releaser e-signs
the release, the lot becomes released and the signed certificate names both signers. A second lot shows the
four-eyes rule: the releaser who reviewed a lot may not release it too, and the lot stays in quarantine."""
from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import docx
import pytest
from playwright.sync_api import Page, expect

from app.services.demo import DEMO_PASSWORD

from .accounts import open_from_inbox, sign_in, sign_out

pytestmark = pytest.mark.e2e

PRODUCT_MODEL = "SY-5"  # the demo's sterile syringe
REQUEST = "Request the release of a lot"
REVIEW = "Review the batch record (e-signature)"
RELEASE = "Release the lot (authorised releaser, e-signature)"
CHECKS_FAILED = "Release conditions not met"
CERTIFICATE = re.compile(r"^lot_release_certificate-\d+-r1\..+\.docx$")
FOUR_EYES = re.compile(r"^Four-eyes rule: you completed an earlier step this one must be checked against")


def today() -> date:
    return datetime.now(UTC).date()


# --- steps ----------------------------------------------------------------------------------------------------------

def menu(page: Page, name: str) -> None:
    page.get_by_role("navigation", name="Main menu").get_by_role("link", name=name, exact=True).click()
    expect(page.get_by_role("heading", name="Lots and master data", level=1)).to_be_visible()


def product_gtin(page: Page, model: str) -> str:
    """Lots -> Products, search the model and read its UDI-DI (GTIN)."""
    menu(page, "Lots")
    page.get_by_test_id("kinds").get_by_role("link", name="Products", exact=True).click()
    search = page.get_by_role("searchbox", name="Search")
    search.fill(model)
    search.press("Enter")
    rows = page.get_by_test_id("records-table").locator("tbody tr")
    expect(rows).to_have_count(1)
    gtin = rows.first.locator("td.hash").inner_text().strip()
    assert re.fullmatch(r"\d{14}", gtin), f"the demo product {model} should have a GTIN-14, not {gtin!r}"
    return gtin


def released_sterilization_batch(page: Page) -> str:
    """Lots -> Sterilization batches, filtered to the released ones: the newest batch QA released (demo data)."""
    menu(page, "Lots")
    page.get_by_test_id("kinds").get_by_role("link", name="Sterilization batches", exact=True).click()
    page.get_by_label("Status").select_option("released")
    page.get_by_role("button", name="Filter").click()
    rows = page.get_by_test_id("sterilization-batches").locator("tbody tr")
    return rows.first.locator("td").first.inner_text().strip()


def create_lot(page: Page, gtin: str, lot_number: str) -> None:
    """Lots -> Product lots -> New record: a lot in quarantine, batch record complete and labels checked, sterilized
    in a batch QA released."""
    made = today() - timedelta(days=3)
    batch = released_sterilization_batch(page)
    menu(page, "Lots")
    page.get_by_test_id("kinds").get_by_role("link", name="Product lots", exact=True).click()
    page.get_by_role("link", name="New record", exact=True).click()
    expect(page.get_by_role("heading", name="New record: Product lots", level=1)).to_be_visible()
    page.get_by_label("Product UDI-DI (GTIN)").fill(gtin)
    page.get_by_label("Lot number").fill(lot_number)
    page.get_by_label("Quantity").fill("1000")
    page.get_by_label("Manufactured on").fill(made.isoformat())
    page.get_by_label("Expiry date").fill((made + timedelta(days=1095)).isoformat())
    page.get_by_label("Sterilization batch").fill(batch)
    expect(page.get_by_label("Status")).to_have_value("quarantine")
    page.get_by_label("Batch record complete").check()
    page.get_by_label("Labels / UDI checked").check()
    page.get_by_role("button", name="Save").click()

    expect(page.get_by_role("status")).to_have_text("Product lots: the record was saved.")
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"Lot {lot_number}")
    expect(page.get_by_test_id("lot-status")).to_have_text("quarantine")
    # Entering the lot in quarantine started its release.
    expect(page.get_by_test_id("lot-instances").get_by_role("link", name=re.compile(
        rf"^#\d+ Release of lot {lot_number}$"))).to_be_visible()
    checks = page.get_by_test_id("release-checks")
    expect(checks).to_contain_text("Not releasable: 1 check(s) fail.")
    expect(checks).to_contain_text("no final inspection recorded")


def record_final_inspection(page: Page, lot_number: str) -> None:
    """Lots -> New record: Inspections, a passed final inspection of the lot."""
    menu(page, "Lots")
    page.get_by_role("link", name="New record: Inspections", exact=True).click()
    expect(page.get_by_role("heading", name="New record: Inspections", level=1)).to_be_visible()
    page.get_by_label("Stage").select_option("final")
    page.get_by_label("Product lot").fill(lot_number)
    page.get_by_role("combobox", name="Result", exact=True).select_option("pass")
    page.get_by_role("textbox", name="Results", exact=True).fill("Sterility, leak and label checks passed")
    page.get_by_label("Inspected on").fill(today().isoformat())
    page.get_by_label("Inspector").fill("Chen Jing")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_have_text("Inspections: the record was saved.")


def open_lot(page: Page, lot_number: str) -> None:
    """Lots -> Product lots, search the lot number and open the lot."""
    menu(page, "Lots")
    page.get_by_test_id("kinds").get_by_role("link", name="Product lots", exact=True).click()
    search = page.get_by_role("searchbox", name="Search")
    search.fill(lot_number)
    search.press("Enter")
    rows = page.get_by_test_id("records-table").locator("tbody tr")
    expect(rows).to_have_count(1)
    rows.first.get_by_role("link", name=lot_number, exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"Lot {lot_number}")


def open_step(page: Page, task_name: str) -> None:
    """Open a ready step from the instance page's step list."""
    page.get_by_test_id("task-table").get_by_role("link", name=task_name, exact=True).click()
    expect(page.get_by_role("heading", name=task_name, level=1)).to_be_visible()


def sign_and_complete(page: Page) -> None:
    """E-sign the task with the password; the instance page opens with the confirmation."""
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Sign and complete", exact=True).click()
    expect(page.get_by_role("status")).to_have_text("Task completed.")
    expect(page.get_by_test_id("task-table")).to_be_visible()


def request_release(page: Page, lot_number: str) -> None:
    """Complete the request with the lot filled in; every release check passes, so the review follows."""
    open_from_inbox(page, lot_number, REQUEST)
    expect(page.get_by_label("Product lot")).to_have_value(lot_number)
    page.get_by_label("Note").fill("Lot complete; please release for distribution.")
    page.get_by_role("button", name="Complete", exact=True).click()
    expect(page.get_by_role("status")).to_have_text("Task completed.")
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"Release of lot {lot_number}")
    steps = page.get_by_test_id("task-table")
    expect(steps.get_by_role("link", name=REVIEW, exact=True)).to_be_visible()
    expect(steps.get_by_text(CHECKS_FAILED)).to_have_count(0)


def review_batch_record(page: Page) -> None:
    """E-sign the batch record review, after seeing that all release checks passed."""
    open_step(page, REVIEW)
    checks = page.get_by_test_id("key-figures")
    expect(checks).to_contain_text("Batch record complete")
    expect(checks.get_by_text("fail")).to_have_count(0)
    page.get_by_label("The batch record is complete and reviewed").check()
    page.get_by_label("Review comment").fill("Batch record complete; no deviations.")
    sign_and_complete(page)
    expect(page.get_by_test_id("task-table").get_by_role("row").filter(has_text=RELEASE)).to_contain_text("ready")


def sign_release(page: Page) -> None:
    page.get_by_role("radio", name="Release the lot", exact=True).check()
    page.get_by_label("Comment").fill("Released for distribution.")
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Sign and complete", exact=True).click()


def docx_text(path: Path) -> str:
    document = docx.Document(str(path))
    text = [paragraph.text for paragraph in document.paragraphs]
    text += [cell.text for table in document.tables for row in table.rows for cell in row.cells]
    return "\n".join(text)


# --- the tests --------------------------------------------------------------------------------------------------------

def test_lot_release_from_new_lot_to_signed_certificate(page: Page, tmp_path: Path):
    lot_number = "E2E-LR-0001"

    sign_in(page, "qa")
    create_lot(page, product_gtin(page, PRODUCT_MODEL), lot_number)
    record_final_inspection(page, lot_number)
    open_lot(page, lot_number)
    expect(page.get_by_test_id("release-checks")).to_contain_text("Every release check passes.")
    request_release(page, lot_number)
    review_batch_record(page)
    sign_out(page)

    sign_in(page, "releaser")
    open_from_inbox(page, lot_number, RELEASE)
    sign_release(page)
    expect(page.get_by_role("status")).to_have_text("Task completed.")

    expect(page.get_by_role("heading", level=1)).to_contain_text(f"Release of lot {lot_number}")
    expect(page.get_by_test_id("instance-status")).to_have_text("completed")
    signatures = page.get_by_test_id("signature")
    expect(signatures.get_by_test_id("signature-meaning")).to_have_text(["reviewed", "released"])
    expect(signatures.get_by_test_id("signature-name")).to_have_text(["Li Na", "Rita Releaser"])
    certificate_link = page.get_by_test_id("document-table").get_by_role("link", name=CERTIFICATE)
    expect(certificate_link).to_have_count(1)

    with page.expect_download() as download_info:
        certificate_link.click()
    certificate = tmp_path / download_info.value.suggested_filename
    download_info.value.save_as(certificate)
    text = docx_text(certificate)
    for expected in (lot_number, "Li Na", "Rita Releaser"):
        assert expected in text, f"the release certificate should name {expected}"

    open_lot(page, lot_number)
    expect(page.get_by_test_id("lot-status")).to_have_text("released")
    expect(page.get_by_test_id("start-release")).to_have_count(0)


def test_four_eyes_rule_refuses_the_reviewer_as_releaser(page: Page):
    """The demo releaser is also in QA: having reviewed a lot's batch record, she may not release it herself."""
    lot_number = "E2E-LR-0002"

    sign_in(page, "releaser")
    create_lot(page, product_gtin(page, PRODUCT_MODEL), lot_number)
    record_final_inspection(page, lot_number)
    request_release(page, lot_number)
    review_batch_record(page)

    open_step(page, RELEASE)
    sign_release(page)
    expect(page.get_by_role("status")).to_have_text(FOUR_EYES)
    expect(page.get_by_role("heading", name=RELEASE, level=1)).to_be_visible()
    expect(page.get_by_test_id("task-form")).to_be_visible()  # still open for another releaser

    page.get_by_role("link", name=re.compile(rf"^#\d+ Release of lot {lot_number}$")).click()
    expect(page.get_by_test_id("instance-status")).to_have_text("running")
    expect(page.get_by_test_id("signature").get_by_test_id("signature-meaning")).to_have_text(["reviewed"])
    expect(page.get_by_test_id("signature").get_by_test_id("signature-name")).to_have_text(["Rita Releaser"])
    expect(page.get_by_text("No documents yet.")).to_be_visible()

    open_lot(page, lot_number)
    expect(page.get_by_test_id("lot-status")).to_have_text("quarantine")

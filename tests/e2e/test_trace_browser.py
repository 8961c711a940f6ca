"""Trace from a scanned UDI: find a released syringe lot, scan its UDI into the trace box, read both directions of
the trace, export the XLSX, and see a mistyped check digit refused - clicked and typed through Chromium."""
from __future__ import annotations

import calendar
import re
from datetime import date
from pathlib import Path

import openpyxl
import pytest
from playwright.sync_api import Page, expect

from app.services.demo import DEMO_PASSWORD

from .accounts import INBOX_HEADING

pytestmark = pytest.mark.e2e

GTIN = re.compile(r"UDI-DI (\d{14})")
DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def sign_in(page: Page, username: str) -> None:
    """Sign in through the login page and switch the pages to English (qa defaults to zh-CN)."""
    page.goto("/login")
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_label("Password").press("Enter")
    expect(page.get_by_test_id("current-user")).to_be_visible()
    page.get_by_role("link", name="English").click()
    expect(page.get_by_role("heading", name=INBOX_HEADING, level=1)).to_be_visible()


def menu(page: Page, name: str) -> None:
    page.get_by_role("navigation", name="Main menu").get_by_role("link", name=name, exact=True).click()


def open_oldest_released_syringe_lot(page: Page) -> None:
    """Lots -> Product lots, filter the released syringe (SY…) lots and open the first (oldest, so shipped)."""
    menu(page, "Lots")
    page.get_by_test_id("kinds").get_by_role("link", name="Product lots", exact=True).click()
    page.get_by_label("Status").select_option("released")
    search = page.get_by_role("searchbox", name="Search")
    search.fill("SY")
    search.press("Enter")
    expect(page).to_have_url(re.compile(r"q=SY.*status=released|status=released.*q=SY"))
    first_row = page.get_by_test_id("records-table").locator("tbody tr").first
    expect(first_row).to_contain_text("released")
    first_row.get_by_role("link").first.click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(re.compile(r"Lot SY\d{8}"))


def read_lot_page(page: Page) -> tuple[str, str, date, list[str], list[str]]:
    """Return the lot's number, GTIN, expiry date, shipment document numbers and material lot numbers."""
    lot_number = re.search(r"SY\d{8}", page.get_by_role("heading", level=1).inner_text())[0]
    gtin = GTIN.search(page.get_by_text(GTIN).inner_text())[1]
    facts = page.get_by_test_id("lot-facts")
    expiry = date.fromisoformat(DAY.search(facts.locator("dt:text-is('Expiry date') + dd").inner_text())[0])
    documents = page.get_by_test_id("shipments").locator("tbody tr td:nth-child(4)").all_inner_texts()
    materials = page.get_by_test_id("components").locator("tbody tr td:nth-child(2)").all_inner_texts()
    assert documents, f"the oldest released lot {lot_number} should have been shipped"
    assert materials, f"lot {lot_number} should record its material lots"
    return lot_number, gtin, expiry, [d.strip() for d in documents], [m.strip() for m in materials]


def trace_box(page: Page):
    return page.get_by_role("searchbox", name=re.compile("scanned UDI"))


def trace(page: Page, code: str) -> int:
    """Type (or "scan") a code into the focused trace box, replacing what is there, press Enter; return the status."""
    expect(trace_box(page)).to_be_focused()
    page.keyboard.press("ControlOrMeta+A")
    with page.expect_navigation() as navigation:
        page.keyboard.type(code)
        page.keyboard.press("Enter")
    return navigation.value.status


def test_trace_a_scanned_udi_and_export_xlsx(page: Page, tmp_path: Path):
    sign_in(page, "qa")
    open_oldest_released_syringe_lot(page)
    lot_number, gtin, expiry, documents, materials = read_lot_page(page)

    # The label prints the expiry month with day 00: "end of that month" in GS1.
    udi = f"(01){gtin}(17){expiry:%y%m}00(10){lot_number}"
    end_of_month = expiry.replace(day=calendar.monthrange(expiry.year, expiry.month)[1])
    menu(page, "Trace")
    expect(trace_box(page)).to_be_focused()  # autofocus: a scanner can send the code straight away
    assert trace(page, udi) == 200

    read_as = page.get_by_test_id("trace-code")
    expect(read_as.locator("dt:text-is('GTIN') + dd")).to_have_text(gtin)
    expect(read_as.locator("dt:text-is('Lot') + dd")).to_have_text(lot_number)
    expect(read_as.locator("dt:text-is('Expiry') + dd")).to_have_text(end_of_month.isoformat())
    expect(page.get_by_test_id("trace-matched")).to_contain_text(f"Product lot {lot_number}")

    forward = page.get_by_test_id("trace-forward")
    for document in documents:
        expect(forward.get_by_role("row").filter(has_text=document)).to_have_count(1)
    expect(page.get_by_test_id("trace-consignees").locator("tbody tr")).not_to_have_count(0)
    counts = page.get_by_test_id("trace-counts")
    assert int(counts.locator("[data-count=shipments]").inner_text()) >= len(documents)
    assert int(counts.locator("[data-count=consignees]").inner_text()) >= 1

    backward = page.get_by_test_id("trace-backward")
    material_lots = backward.get_by_role("table").filter(has=page.get_by_role("columnheader", name="Supplier"))
    for material in materials:
        supplier = "SUP-" + material.split("-")[1]  # demo material lots are ML-<supplier>-<nn>
        row = material_lots.get_by_role("row").filter(has=page.get_by_role("link", name=material, exact=True))
        expect(row).to_contain_text(supplier)
        expect(backward.get_by_role("listitem").filter(has_text=supplier)).to_have_count(1)

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Export XLSX").click()
    download = download_info.value
    assert download.suggested_filename.endswith(".xlsx")
    assert lot_number in download.suggested_filename
    workbook_path = tmp_path / download.suggested_filename
    download.save_as(workbook_path)
    workbook = openpyxl.load_workbook(workbook_path, read_only=True)
    lot_numbers = [row[0] for row in workbook["Product lots"].iter_rows(min_row=2, values_only=True)]
    assert lot_number in lot_numbers
    consignees = list(workbook["Consignees"].iter_rows(min_row=2, values_only=True))
    assert len(consignees) >= 1
    workbook.close()

    # A misread or mistyped check digit is refused with a clear message, not a crash or an empty trace.
    wrong_digit = str((int(gtin[-1]) + 1) % 10)
    bad_udi = udi.replace(f"(01){gtin}", f"(01){gtin[:-1]}{wrong_digit}")
    trace_box(page).click()  # the export link had the focus
    assert trace(page, bad_udi) == 400
    error = page.get_by_test_id("trace-error")
    expect(error).to_contain_text("This code cannot be read.")
    expect(error).to_contain_text(re.compile(rf"check digit.*expected {gtin[-1]}"))
    box = trace_box(page)
    expect(box).to_have_attribute("aria-invalid", "true")
    expect(box).to_have_value(bad_udi)
    expect(page.get_by_test_id("trace-forward")).to_have_count(0)

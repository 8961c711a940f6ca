"""A CAPA from the problem report to the e-signed QA approval and its report, clicked through Chromium."""
from __future__ import annotations

import re
from pathlib import Path

import docx
import pytest
from playwright.sync_api import Page, expect

from app.services.demo import DEMO_PASSWORD

from .accounts import sign_in, sign_out

pytestmark = pytest.mark.e2e

INSTANCE_TITLE = "E2E: burr on catheter hub"
PROBLEM_TITLE = "Burr on catheter hub, lot L2026-001"
# Form messages follow the instance language (the starter's, zh-CN for "qa"), not the page language.
REQUIRED = re.compile(r"This field is required\.")


def open_task(page: Page, task_name: str) -> None:
    """Find the case's task in the inbox with the search filter and open it."""
    page.get_by_role("link", name="Inbox", exact=True).click()
    page.get_by_role("textbox", name="Search", exact=True).fill(INSTANCE_TITLE)
    page.get_by_role("button", name="Filter").click()
    page.get_by_role("table").get_by_role("link", name=task_name, exact=True).click()
    expect(page.get_by_role("heading", name=task_name, level=1)).to_be_visible()


def complete(page: Page) -> None:
    page.get_by_role("button", name="Complete", exact=True).click()
    expect(page.get_by_role("status")).to_have_text("Task completed.")


def start_capa(page: Page) -> None:
    page.get_by_role("link", name="Start a procedure").click()
    page.get_by_label("Procedure").select_option("capa")
    page.get_by_label("Title").fill(INSTANCE_TITLE)
    page.get_by_role("button", name="Start", exact=True).click()
    expect(page.get_by_role("heading", name="Describe the problem", level=1)).to_be_visible()


def describe_problem_with_a_missing_title(page: Page) -> None:
    # The form starts from the instance data, so the title holds the instance title: clear it to leave it missing.
    title = page.get_by_label("Problem title")
    expect(title).to_have_value(INSTANCE_TITLE)
    title.clear()
    page.get_by_label("Source").select_option("complaint")
    page.get_by_label("Severity").select_option("major")
    page.get_by_label("Reported on").fill("2026-11-20")
    page.get_by_label("Affected lot numbers").fill("L2026-001")
    page.get_by_label("Problem description").fill("Burr found on the catheter hub at final inspection.")
    page.get_by_role("button", name="Complete", exact=True).click()

    expect(page.get_by_test_id("form-message")).to_have_text("The form has errors; nothing was saved.")
    expect(title).to_have_attribute("aria-invalid", "true")
    expect(title).to_have_accessible_description(REQUIRED)
    expect(page.locator("#field-title + .invalid-feedback")).to_have_text(REQUIRED)
    expect(page.get_by_label("Problem description")).to_have_value(
        "Burr found on the catheter hub at final inspection.")
    expect(page.get_by_role("button", name="Complete", exact=True)).to_be_enabled()

    title.fill(PROBLEM_TITLE)
    complete(page)


def contain(page: Page) -> None:
    open_task(page, "Containment (hold affected lots)")
    page.get_by_label("Containment actions").fill("Quarantine lot L2026-001 in the warehouse.")
    page.get_by_label("Lots on hold").fill("L2026-001")
    page.get_by_label("Containment is complete").check()
    complete(page)


def investigate_and_plan(page: Page) -> None:
    open_task(page, "Root-cause investigation")
    page.get_by_role("textbox", name="Why 1", exact=True).fill("The deburring tool at station 3 was worn.")
    page.get_by_label("Root-cause category (fishbone)").select_option("machine")
    page.get_by_role("textbox", name="Root cause", exact=True).fill("Worn deburring tool; the PM plan lacks a check.")
    complete(page)

    open_task(page, "Action plan (owners and due dates)")
    page.get_by_role("textbox", name="Action 1", exact=True).fill("Replace the deburring tool")
    page.get_by_role("textbox", name="Owner 1", exact=True).fill("prod")
    page.get_by_role("textbox", name="Due date 1", exact=True).fill("2026-12-01")
    page.get_by_role("button", name="Add row").click()
    expect(page.get_by_role("textbox", name="Action 4", exact=True)).to_be_focused()
    page.get_by_role("textbox", name="Action 4", exact=True).fill("Add a tool wear check to the PM plan")
    page.get_by_role("textbox", name="Owner 4", exact=True).fill("qa")
    page.get_by_role("textbox", name="Due date 4", exact=True).fill("2026-12-15")
    complete(page)


def implement(page: Page) -> None:
    open_task(page, "Implement the actions")
    page.get_by_label("Implementation summary").fill("Tool replaced; wear check added to the PM plan.")
    page.get_by_label("Completed on").fill("2026-11-30")
    complete(page)


def verify_effectiveness(page: Page) -> None:
    open_task(page, "Effectiveness verification")
    page.get_by_label("Effectiveness criterion").fill("No burr in the next three lots")
    page.get_by_label("Measured result").fill("0 of 300 hubs with a burr")
    page.get_by_label("The actions were effective").check()
    complete(page)


def approve_with_signature(page: Page) -> None:
    open_task(page, "QA approval (e-signature)")
    page.get_by_role("radio", name="Approve and close").check()
    page.get_by_label("Comment").fill("Effective; CAPA closed.")
    page.get_by_label("Password").fill("not-my-password")
    page.get_by_role("button", name="Sign and complete").click()

    expect(page.get_by_role("alert")).to_have_text("The password is wrong; the task was not signed.")
    expect(page.get_by_role("radio", name="Approve and close")).to_be_checked()
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Sign and complete").click()
    expect(page.get_by_role("status")).to_have_text("Task completed.")


def test_capa_from_problem_to_signed_report(page: Page, tmp_path: Path):
    sign_in(page, "qa")
    start_capa(page)
    describe_problem_with_a_missing_title(page)
    sign_out(page)

    sign_in(page, "prod")
    contain(page)
    sign_out(page)

    sign_in(page, "qa")
    investigate_and_plan(page)
    sign_out(page)

    sign_in(page, "prod")
    implement(page)
    sign_out(page)

    sign_in(page, "qa")
    verify_effectiveness(page)
    sign_out(page)

    sign_in(page, "head")
    approve_with_signature(page)

    expect(page.get_by_role("heading", level=1)).to_contain_text(INSTANCE_TITLE)
    expect(page.get_by_test_id("instance-status")).to_have_text("completed")
    signature = page.get_by_test_id("signature")
    expect(signature.get_by_test_id("signature-name")).to_have_text("Helen Head")
    expect(signature.get_by_test_id("signature-meaning")).to_have_text("approved")

    report_link = page.get_by_role("link", name=re.compile(r"^capa_report-\d+-r1\.[\w-]+\.docx$"))
    with page.expect_download() as download_info:
        report_link.click()
    report = tmp_path / download_info.value.suggested_filename
    download_info.value.save_as(report)
    document = docx.Document(str(report))
    text = [paragraph.text for paragraph in document.paragraphs]
    text += [cell.text for table in document.tables for row in table.rows for cell in row.cells]
    assert PROBLEM_TITLE in "\n".join(text)

"""A CAPA clicked through Chromium by QA (qa), production (prod) and the head of QA (head): a complaint about a
released lot, which containment puts on hold; 5 whys and a fishbone; an action plan of two actions for two owners,
each of whom finds their own action in their inbox and completes it; the 30-day verification period fired with
`flask timers tick`; the measured effectiveness; the e-signed closure releasing the held lot, and the report read."""
from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import docx
import pytest
from playwright.sync_api import Page, expect

from app.services.demo import DEMO_PASSWORD

from .accounts import complete, open_from_inbox, open_step, sign_and_complete, sign_in, sign_out, today
from .conftest import flask_command, serve

pytestmark = pytest.mark.e2e

TITLE = "E2E: burr on catheter hub"
PROBLEM_TITLE = "Burr on catheter hub reported by a hospital"
# Form messages follow the instance language (the starter's, zh-CN for "qa"), not the page language.
REQUIRED = re.compile(r"This field is required\.|此项为必填项。")
ACTIONS = {"prod": "1. Replace the deburring tool", "qa": "2. Add tool life to the maintenance plan"}
ACTION_STEP = "Carry out the CAPA action: {}"


@pytest.fixture(scope="module")
def capa_server(chromium: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A server of this module's own: the timer tick needs the served app's environment (its database)."""
    with serve(tmp_path_factory.mktemp("capa_server")) as (url, env):
        yield {"url": url, **env}


@pytest.fixture(scope="module")
def server_url(capa_server: dict[str, str]) -> str:
    """The page fixture opens this module's server (see conftest)."""
    return capa_server["url"]


def in_days(days: int) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).date().isoformat()


def pick_released_lot(page: Page) -> str:
    """Lots -> Product lots, filtered to released lots; return the first lot number."""
    page.get_by_role("navigation", name="Main menu").get_by_role("link", name="Lots", exact=True).click()
    page.get_by_test_id("kinds").get_by_role("link", name="Product lots", exact=True).click()
    page.get_by_label("Status").select_option("released")
    page.get_by_role("searchbox", name="Search").press("Enter")
    first_row = page.get_by_test_id("records-table").locator("tbody tr").first
    expect(first_row).to_contain_text("released")
    return first_row.get_by_role("link").first.inner_text().strip()


def start_capa(page: Page) -> None:
    page.get_by_role("link", name="Inbox", exact=True).click()
    page.get_by_role("link", name="Start a procedure").click()
    page.get_by_label("Procedure").select_option("capa")
    page.get_by_label("Title").fill(TITLE)
    page.get_by_role("button", name="Start", exact=True).click()
    expect(page.get_by_role("heading", name="Describe the problem", level=1)).to_be_visible()


def describe_problem(page: Page, lot_number: str) -> None:
    title = page.get_by_label("Problem title")
    expect(title).to_have_value(TITLE)  # the form starts from the instance data
    title.clear()
    page.get_by_role("combobox", name="Source").select_option("lot")
    page.get_by_label("Source reference").fill("NO-SUCH-LOT")
    page.get_by_label("Severity").select_option("major")
    page.get_by_label("Reported on").fill(today())
    page.get_by_label("Affected lot numbers").fill(lot_number)
    page.get_by_label("Problem description").fill("A hospital found a burr on the hub that cut a nurse's glove.")
    page.get_by_role("button", name="Complete", exact=True).click()

    # Refused field by field, nothing saved: first the missing title, then the source that names no lot.
    expect(page.get_by_test_id("form-message")).to_have_text("The form has errors; nothing was saved.")
    expect(title).to_have_accessible_description(REQUIRED)
    title.fill(PROBLEM_TITLE)
    page.get_by_role("button", name="Complete", exact=True).click()
    reference = page.get_by_label("Source reference")
    expect(reference).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#field-source_reference-error")).to_contain_text("NO-SUCH-LOT")
    reference.fill(lot_number)
    complete(page)
    source = page.get_by_test_id("capa-source")
    expect(source).to_contain_text(f"Nonconforming lot: product lot {lot_number} (released)")
    expect(source.get_by_role("link", name=lot_number, exact=True)).to_be_visible()


def contain(page: Page, lot_number: str) -> None:
    open_from_inbox(page, TITLE, "Containment (hold affected lots)")
    page.get_by_label("Containment actions").fill("Stock of the lot segregated in the warehouse.")
    page.get_by_label("Lots to put on hold").fill(lot_number)
    page.get_by_label("Containment is complete").check()
    complete(page)
    expect(page.get_by_test_id("capa-source").get_by_test_id("linked-lot").filter(
        has_text="held for containment")).to_contain_text("hold")


def investigate(page: Page) -> None:
    open_step(page, "Root-cause investigation (5 whys, fishbone)")
    for n, answer in enumerate(["The hub had a burr.", "The deburring tool was worn.",
                                "Tool wear is not monitored."], start=1):
        page.get_by_role("textbox", name=f"Why {n}", exact=True).fill(answer)
    page.get_by_label("Fishbone: Machine").fill("Worn deburring tool\nNo tool-life counter")
    page.get_by_label("Fishbone: Method").fill("Maintenance plan lacks a tool check")
    page.get_by_label("Root-cause category").select_option("machine")
    page.get_by_role("textbox", name="Root cause", exact=True).fill("Worn deburring tool; no tool-life check.")
    complete(page)


def plan(page: Page) -> None:
    open_step(page, "Action plan (owners, due dates, effectiveness criterion)")
    for row, owner, description, kind, due in ((1, "prod", "Replace the deburring tool", "corrective", 10),
                                               (2, "qa", "Add tool life to the maintenance plan", "preventive", 20)):
        page.get_by_role("textbox", name=f"Action {row}", exact=True).fill(description)
        page.get_by_role("combobox", name=f"Type {row}", exact=True).select_option(kind)
        page.get_by_role("textbox", name=f"Owner (user name) {row}", exact=True).fill(owner)
        page.get_by_role("textbox", name=f"Due date {row}", exact=True).fill(in_days(due))
    page.get_by_label("Effectiveness metric").fill("Burr complaints per 1000 hubs sold")
    page.get_by_label("Criterion").select_option("<=")
    page.get_by_label("Target value").fill("0.5")
    page.get_by_label("Verification period").fill("P30D")
    complete(page)
    steps = page.get_by_test_id("task-table")
    for owner, action in ACTIONS.items():
        expect(steps.get_by_role("row").filter(has_text=ACTION_STEP.format(action))).to_contain_text(
            {"prod": "Wang Wei", "qa": "Li Na"}[owner])


def do_my_action(page: Page, owner: str) -> None:
    """The owner finds their action in the inbox as theirs (scope: claimed by me) and completes it."""
    page.get_by_role("link", name="Inbox", exact=True).click()
    page.get_by_label("Show").select_option("mine")
    page.get_by_role("button", name="Filter").click()
    mine = page.get_by_test_id("inbox-table").get_by_role("link", name=re.compile(r"^Carry out the CAPA action"))
    expect(mine).to_have_count(1)
    expect(mine).to_have_text(ACTION_STEP.format(ACTIONS[owner]))
    mine.click()
    expect(page.get_by_test_id("assignee")).to_have_text({"prod": "Wang Wei", "qa": "Li Na"}[owner])
    page.get_by_label("What was done").fill(f"Done by {owner}: {ACTIONS[owner][3:]}.")
    page.get_by_label("Completed on").fill(today())
    page.get_by_label("Evidence reference").fill(f"MR-E2E-{owner}")
    complete(page)


def verify_effectiveness(page: Page) -> None:
    open_from_inbox(page, TITLE, "Effectiveness verification (measured result)")
    page.get_by_label("Measured value").fill("0.2")
    page.get_by_label("Measured on").fill(today())
    page.get_by_label("How it was measured").fill("Complaint database over 30 days, 5,000 hubs.")
    complete(page)


def approve(page: Page, lot_number: str) -> None:
    open_from_inbox(page, TITLE, "QA approval and closure (e-signature)")
    page.get_by_role("radio", name="Approve and close").check()
    page.get_by_label("Comment").fill("Effective; CAPA closed.")
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Sign and complete").click()
    # The held lot needs a decision: nothing was signed.
    expect(page.get_by_test_id("form-message")).to_have_text("The form has errors; nothing was saved.")
    expect(page.locator("#field-lot_decision-error")).to_contain_text(lot_number)
    page.get_by_role("radio", name="Lift the hold (back to their status before it)").check()
    sign_and_complete(page)
    expect(page.get_by_test_id("instance-status")).to_have_text("completed")
    expect(page.get_by_test_id("capa-source").get_by_test_id("linked-lot").filter(
        has_text="held for containment")).to_contain_text("released")


def test_capa_with_two_action_owners_from_complaint_to_signed_closure(page: Page, capa_server, tmp_path: Path):
    sign_in(page, "qa")
    lot_number = pick_released_lot(page)
    start_capa(page)
    describe_problem(page, lot_number)
    sign_out(page)

    sign_in(page, "prod")
    contain(page, lot_number)
    sign_out(page)

    sign_in(page, "qa")
    open_from_inbox(page, TITLE, "Root-cause investigation (5 whys, fishbone)")
    page.get_by_role("link", name=re.compile(rf"#\d+ {TITLE}")).click()
    investigate(page)
    plan(page)
    do_my_action(page, "qa")
    sign_out(page)

    sign_in(page, "prod")
    do_my_action(page, "prod")
    expect(page.get_by_text(re.compile(r"next timer"))).to_be_visible()  # the verification period runs
    sign_out(page)

    later = datetime.now(UTC) + timedelta(days=31)
    flask_command(capa_server, "timers", "tick", "--now", later.isoformat(timespec="seconds"))
    sign_in(page, "qa")
    verify_effectiveness(page)
    sign_out(page)

    sign_in(page, "head")
    approve(page, lot_number)
    signature = page.get_by_test_id("signature")
    expect(signature.get_by_test_id("signature-name")).to_have_text("Helen Head")
    expect(signature.get_by_test_id("signature-meaning")).to_have_text("approved")

    with page.expect_download() as download_info:
        page.get_by_role("link", name=re.compile(r"^capa_report-\d+-r1\.[\w-]+\.docx$")).click()
    report = tmp_path / download_info.value.suggested_filename
    download_info.value.save_as(report)
    document = docx.Document(str(report))
    rows = [[cell.text for cell in row.cells] for table in document.tables for row in table.rows]
    text = "\n".join([p.text for p in document.paragraphs] + [cell for row in rows for cell in row])
    assert PROBLEM_TITLE in text and "Worn deburring tool; No tool-life counter" in text
    done = {row[3]: row for row in rows if len(row) == 8 and row[3] in ACTIONS}
    assert done["prod"][5] == "Done by prod: Replace the deburring tool." and done["prod"][7] == "MR-E2E-prod"
    assert done["qa"][5] == "Done by qa: Add tool life to the maintenance plan."

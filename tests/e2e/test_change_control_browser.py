"""Change control clicked through Chromium by QA (qa), production (prod) and the head of QA (head): a major supplier
change naming one released lot, which goes on hold when the change is classified; parallel QA, RA and production
impact assessments; an e-signed approval that first rejects (the request returns to its author, pre-filled) and then
approves; implementation, verification, the 30-day effectiveness period fired with `flask timers tick`, the
effectiveness review releasing the lot and the e-signed close, with the change record downloaded and read."""
from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import docx
import pytest
from playwright.sync_api import Page, expect

from app.services.demo import DEMO_PASSWORD

from .accounts import complete, open_from_inbox, open_step, sign_and_complete, sign_in, sign_out, today
from .conftest import flask_command, serve

pytestmark = pytest.mark.e2e

# A blood glucose meter lot: the other browser tests use syringe (SY) lots or lots they create themselves.
LOT_PREFIX = "BG"
TITLE = "E2E change: second test strip supplier for the glucose meter"
DESCRIPTION = "Qualify a second supplier for the test strips of the blood glucose meter."
REJECTION = "Validate the strips on the second supplier's line too."
VERIFICATION_RECORD = "VAL-E2E-017"

REQUEST = "Change request"
CLASSIFY = "Classify the change"
IMPACT_QA = "Impact assessment (QA)"
IMPACT_RA = "Impact assessment (RA)"
IMPACT_PRODUCTION = "Impact assessment (production)"
APPROVAL = "Approve the change before implementation (e-signature)"
IMPLEMENTATION = "Implement the change"
VERIFICATION = "Validation / verification record"
EFFECTIVENESS = "Effectiveness review"
CLOSE = "Close the change (e-signature)"


def docx_link(kind: str, revision: int) -> re.Pattern[str]:
    return re.compile(rf"^{kind}-\d+-r{revision}\..+\.docx$")


@dataclass(frozen=True)
class Server:
    url: str
    env: dict[str, str]


@pytest.fixture(scope="module")
def change_server(chromium: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of this module's own: the timer tick needs the served app's environment (its database)."""
    with serve(tmp_path_factory.mktemp("change_server")) as (url, env):
        yield Server(url, env)


@pytest.fixture(scope="module")
def server_url(change_server: Server) -> str:
    """The page fixture opens this module's server (see conftest)."""
    return change_server.url




# --- steps ----------------------------------------------------------------------------------------------------------







def product_lots(page: Page) -> None:
    page.get_by_role("navigation", name="Main menu").get_by_role("link", name="Lots", exact=True).click()
    page.get_by_test_id("kinds").get_by_role("link", name="Product lots", exact=True).click()
    expect(page.get_by_role("heading", name="Product lots", level=1)).to_be_visible()


def pick_released_lot(page: Page) -> str:
    """Lots -> Product lots, filtered to the released glucose meter lots; return the first lot number."""
    product_lots(page)
    page.get_by_label("Status").select_option("released")
    search = page.get_by_role("searchbox", name="Search")
    search.fill(LOT_PREFIX)
    search.press("Enter")
    expect(page).to_have_url(re.compile(rf"q={LOT_PREFIX}.*status=released|status=released.*q={LOT_PREFIX}"))
    first_row = page.get_by_test_id("records-table").locator("tbody tr").first
    expect(first_row).to_contain_text("released")
    lot_number = first_row.get_by_role("link").first.inner_text().strip()
    assert re.fullmatch(rf"{LOT_PREFIX}\d{{8}}", lot_number), f"unexpected demo lot number {lot_number!r}"
    return lot_number


def open_lot(page: Page, lot_number: str) -> None:
    """Lots -> Product lots, search the lot number and open the lot."""
    product_lots(page)
    search = page.get_by_role("searchbox", name="Search")
    search.fill(lot_number)
    search.press("Enter")
    rows = page.get_by_test_id("records-table").locator("tbody tr")
    expect(rows).to_have_count(1)
    rows.first.get_by_role("link", name=lot_number, exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"Lot {lot_number}")


def start_change(page: Page) -> None:
    page.get_by_role("link", name="Inbox", exact=True).click()
    page.get_by_role("link", name="Start a procedure").click()
    expect(page.get_by_role("heading", name="Start a procedure", level=1)).to_be_visible()
    page.get_by_label("Procedure").select_option("change_control")
    page.get_by_label("Title").fill(TITLE)
    page.get_by_role("button", name="Start", exact=True).click()
    expect(page.get_by_role("heading", name=REQUEST, level=1)).to_be_visible()


def request_change(page: Page, lot_number: str) -> None:
    expect(page.get_by_label("Change title")).to_have_value(TITLE)  # the form starts from the instance title
    page.get_by_label("Type of change").select_option("supplier")
    page.get_by_role("textbox", name="What changes", exact=True).fill(DESCRIPTION)
    page.get_by_role("textbox", name="Why", exact=True).fill(
        "Single source for the strips; the supplier announced a long shutdown.")
    page.get_by_label("Affected products").fill("BG-1 blood glucose meter")
    page.get_by_label("Affected suppliers").fill("Second strip supplier (to be qualified)")
    page.get_by_label("Affected lots (held while the change is open)").fill(lot_number)
    page.get_by_label("Requested on").fill(today())
    complete(page)
    expect(page.get_by_role("heading", level=1)).to_contain_text(TITLE)


def classify(page: Page) -> None:
    open_step(page, CLASSIFY)
    page.get_by_role("radio", name="Major", exact=True).check()
    page.get_by_label("A regulatory filing (registration change) is needed").check()
    page.get_by_label("Rationale").fill("A new supplier of a part in contact with blood: major change.")
    complete(page)


def check_lot_on_hold(page: Page, lot_number: str) -> None:
    """The classification put the named lot on hold; its page links back to the change."""
    open_lot(page, lot_number)
    expect(page.get_by_test_id("lot-status")).to_have_text("hold")
    held = page.get_by_test_id("lot-history").locator("tbody tr").first  # newest first, audited with the reason
    expect(held).to_contain_text("released → hold")
    expect(held).to_contain_text(f"Change control open: {TITLE}")
    change = page.get_by_test_id("lot-instances").get_by_role("listitem").filter(has_text=TITLE)
    expect(change).to_contain_text("running")
    expect(change).to_contain_text("role: hold")
    change.get_by_role("link").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(TITLE)


def assess(page: Page, task_name: str, impact: str, risk: str) -> None:
    page.get_by_role("textbox", name="Impact", exact=True).fill(impact)
    page.get_by_role("combobox", name="Risk", exact=True).select_option(risk)
    page.get_by_role("textbox", name="Actions needed", exact=True).fill("Incoming inspection of the first lots.")
    page.get_by_role("radio", name="Approve", exact=True).check()
    complete(page)
    expect(page.get_by_test_id("task-table").get_by_role("row").filter(has_text=task_name).last).to_contain_text(
        "completed")


def assess_qa_and_ra(page: Page) -> None:
    open_step(page, IMPACT_QA)
    assess(page, IMPACT_QA, "Incoming inspection plan and supplier audit needed.", "medium")
    open_step(page, IMPACT_RA)
    assess(page, IMPACT_RA, "Registration dossier lists the strip supplier: change filing.", "high")


def assess_production(page: Page) -> None:
    open_from_inbox(page, TITLE, IMPACT_PRODUCTION)
    assess(page, IMPACT_PRODUCTION, "Strip magazine feeder to be adjusted for the new strips.", "low")


def reject(page: Page) -> None:
    open_from_inbox(page, TITLE, APPROVAL)
    documents = page.locator("aside")
    expect(documents.get_by_role("link", name=docx_link("change_request", 1))).to_be_visible()
    expect(documents.get_by_role("link", name=docx_link("change_impact_assessment", 1))).to_be_visible()
    page.get_by_role("radio", name="Reject: back to the requester", exact=True).check()
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Sign and complete", exact=True).click()
    # A rejection needs its reason: nothing was signed.
    expect(page.get_by_test_id("form-message")).to_have_text("The form has errors; nothing was saved.")
    expect(page.get_by_label("Comment")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_role("radio", name="Reject: back to the requester", exact=True)).to_be_checked()
    page.get_by_label("Comment").fill(REJECTION)
    sign_and_complete(page)
    expect(page.get_by_test_id("task-table").get_by_role("link", name=REQUEST, exact=True)).to_be_visible()


def resubmit(page: Page, lot_number: str) -> None:
    """The request is back with its author, pre-filled, with the reason; amend and send it again."""
    open_from_inbox(page, TITLE, REQUEST)
    expect(page.get_by_label("Change title")).to_have_value(TITLE)
    expect(page.get_by_label("Type of change")).to_have_value("supplier")
    expect(page.get_by_role("textbox", name="What changes", exact=True)).to_have_value(DESCRIPTION)
    expect(page.get_by_label("Affected lots (held while the change is open)")).to_have_value(lot_number)
    expect(page.get_by_label("Requested on")).to_have_value(today())
    data = page.get_by_test_id("instance-data")
    expect(data.locator("dt:text-is('decision') + dd")).to_have_text("reject")
    expect(data.locator("dt:text-is('comment') + dd")).to_have_text(REJECTION)
    page.get_by_role("textbox", name="What changes", exact=True).fill(
        f"{DESCRIPTION} The strips are validated on both suppliers' lines.")
    complete(page)
    expect(page.get_by_test_id("task-table").get_by_role("link", name=CLASSIFY, exact=True)).to_be_visible()


def approve(page: Page) -> None:
    open_from_inbox(page, TITLE, APPROVAL)
    documents = page.locator("aside")
    expect(documents.get_by_role("link", name=docx_link("change_request", 2))).to_be_visible()
    expect(documents.get_by_role("link", name=docx_link("change_impact_assessment", 2))).to_be_visible()
    page.get_by_role("radio", name="Approve the implementation", exact=True).check()
    page.get_by_label("Comment").fill("Approved: validation on both lines is planned.")
    sign_and_complete(page)


def implement(page: Page) -> None:
    open_from_inbox(page, TITLE, IMPLEMENTATION)
    page.get_by_role("textbox", name="Action 1", exact=True).fill("Adjust the strip magazine feeder")
    page.get_by_role("textbox", name="Owner 1", exact=True).fill("prod")
    page.get_by_role("checkbox", name="Done 1", exact=True).check()
    page.get_by_label("Summary").fill("Feeder adjusted; first lot made with strips of the second supplier.")
    page.get_by_label("Implemented on").fill(today())
    complete(page)


def verify(page: Page) -> None:
    open_from_inbox(page, TITLE, VERIFICATION)
    page.get_by_role("combobox", name="Method", exact=True).select_option("validation")
    page.get_by_label("Result").fill("Strip accuracy ISO 15197 passed on both lines.")
    page.get_by_label("Record no.").fill(VERIFICATION_RECORD)
    page.get_by_label("Verified on").fill(today())
    complete(page)
    documents = page.get_by_test_id("document-table")
    expect(documents.get_by_role("link", name=docx_link("change_record", 1))).to_be_visible()
    # The effectiveness period runs: no step is ready, the next timer is shown.
    expect(page.get_by_text(re.compile(r"next timer"))).to_be_visible()
    expect(page.get_by_test_id("task-table").get_by_role("link", name=EFFECTIVENESS, exact=True)).to_have_count(0)


def review_effectiveness(page: Page) -> None:
    open_from_inbox(page, TITLE, EFFECTIVENESS)
    page.get_by_label("The change is effective").check()
    page.get_by_label("Evidence of effectiveness").fill("No strip complaint and no accuracy failure in 30 days.")
    page.get_by_role("radio", name="Lift the hold (back to their status before it)", exact=True).check()
    complete(page)


def close(page: Page) -> None:
    open_from_inbox(page, TITLE, CLOSE)
    expect(page.locator("aside").get_by_role("link", name=docx_link("change_record", 2))).to_be_visible()
    page.get_by_role("radio", name="Close the change", exact=True).check()
    page.get_by_label("Comment").fill("Effective; change closed.")
    sign_and_complete(page)


def docx_text(path: Path) -> str:
    document = docx.Document(str(path))
    text = [paragraph.text for paragraph in document.paragraphs]
    text += [cell.text for table in document.tables for row in table.rows for cell in row.cells]
    return "\n".join(text)


# --- the test ---------------------------------------------------------------------------------------------------------

def test_change_control_from_request_to_signed_close(page: Page, change_server: Server, tmp_path: Path):
    sign_in(page, "qa")
    lot_number = pick_released_lot(page)
    start_change(page)
    request_change(page, lot_number)
    classify(page)
    check_lot_on_hold(page, lot_number)
    assess_qa_and_ra(page)
    sign_out(page)

    sign_in(page, "prod")
    assess_production(page)
    sign_out(page)

    sign_in(page, "head")
    reject(page)
    sign_out(page)

    sign_in(page, "qa")
    resubmit(page, lot_number)
    classify(page)
    assess_qa_and_ra(page)
    sign_out(page)

    sign_in(page, "prod")
    assess_production(page)
    sign_out(page)

    sign_in(page, "head")
    approve(page)
    sign_out(page)

    sign_in(page, "prod")
    implement(page)
    sign_out(page)

    sign_in(page, "qa")
    verify(page)
    later = datetime.now(UTC) + timedelta(days=31)
    flask_command(change_server.env, "timers", "tick", "--now", later.isoformat(timespec="seconds"))
    review_effectiveness(page)
    open_lot(page, lot_number)
    expect(page.get_by_test_id("lot-status")).to_have_text("released")
    sign_out(page)

    sign_in(page, "head")
    close(page)

    expect(page.get_by_role("heading", level=1)).to_contain_text(TITLE)
    expect(page.get_by_test_id("instance-status")).to_have_text("completed")
    signatures = page.get_by_test_id("signature")
    # The rejection is signed too (meaning "rejected"); then the approval and the close.
    expect(signatures.get_by_test_id("signature-meaning")).to_have_text(["rejected", "approved", "approved"])
    expect(signatures.get_by_test_id("signature-name")).to_have_text(["Helen Head"] * 3)

    record_link = page.get_by_test_id("document-table").get_by_role("link", name=docx_link("change_record", 2))
    with page.expect_download() as download_info:
        record_link.click()
    record = tmp_path / download_info.value.suggested_filename
    download_info.value.save_as(record)
    text = docx_text(record)
    for expected in (lot_number, VERIFICATION_RECORD, TITLE):
        assert expected in text, f"the closed change record should contain {expected}"

    open_lot(page, lot_number)
    # The lot was released before the change held it, so lifting the hold returns it to released.
    expect(page.get_by_test_id("lot-status")).to_have_text("released")
    change = page.get_by_test_id("lot-instances").get_by_role("listitem").filter(has_text=TITLE)
    expect(change).to_have_count(1)
    expect(change.filter(has_text="role: hold")).to_contain_text("completed")
    expect(page.get_by_test_id("lot-history").locator("tbody tr").first).to_contain_text(
        "hold → released")

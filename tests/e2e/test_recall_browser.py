"""The recall procedure from trigger to close, clicked through Chromium by QA (head) and the responsible person (rp):
a class I recall of a shipped syringe lot, its notices e-mailed over real SMTP with a .docx attached, a consignee's
acknowledgment through the public single-use link, the effectiveness check and the signed summary report."""
from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import Message
from pathlib import Path

import docx
import pytest
from babel import Locale
from babel.support import Translations
from playwright.sync_api import Page, expect

from app.services.demo import DEMO_PASSWORD

from .accounts import complete, open_from_inbox, open_step, sign_and_complete, sign_in, sign_out, today
from .conftest import ROOT, SCREENSHOTS, flask_command, new_context, serve

pytestmark = pytest.mark.e2e

RECALL_CLASS = "I"
MAIL_WAIT_SECONDS = 5
# The acknowledgment page speaks the consignee's language (Chinese for consignees in CN) whatever the browser asks
# for; its words are looked up in the catalog the server uses, so the test follows the translation.
zh = Translations.load(str(ROOT / "app" / "translations"), [Locale.parse("zh_CN")]).gettext


@dataclass(frozen=True)
class Consignee:
    code: str
    email: str
    kind: str


@dataclass(frozen=True)
class DemoLot:
    id: int
    number: str
    consignees: tuple[Consignee, ...]


@dataclass(frozen=True)
class Server:
    url: str
    env: dict[str, str]
    lot: DemoLot


def _pick_lot(database: Path) -> DemoLot:
    """The first released demo lot shipped to one to three consignees, all in CN with an e-mail address, that is no
    component of another lot (its recall stays one lot) and not the lot of the demo's own recall (the first shipped)."""
    with sqlite3.connect(database) as connection:
        row = connection.execute("""
            SELECT pl.id, pl.lot_number FROM product_lots pl
            JOIN shipments s ON s.product_lot_id = pl.id JOIN customers c ON c.id = s.customer_id
            WHERE pl.status = 'released'
              AND pl.id NOT IN (SELECT component_lot_id FROM genealogy_edges WHERE component_lot_id IS NOT NULL)
              AND pl.id <> (SELECT product_lot_id FROM shipments ORDER BY id LIMIT 1)
            GROUP BY pl.id
            HAVING COUNT(DISTINCT c.id) BETWEEN 1 AND 3 AND SUM(c.country <> 'CN' OR c.email = '') = 0
            ORDER BY pl.id LIMIT 1""").fetchone()
        assert row is not None, "the demo data should have a released lot shipped to a few consignees in CN"
        consignees = connection.execute("""
            SELECT DISTINCT c.code, c.email, c.kind FROM shipments s JOIN customers c ON c.id = s.customer_id
            WHERE s.product_lot_id = ? ORDER BY c.code""", (row[0],)).fetchall()
    return DemoLot(row[0], row[1], tuple(Consignee(*c) for c in consignees))


@pytest.fixture(scope="module")
def recall_server(chromium: Path, smtp_sink, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of this module's own whose outbox sends to the SMTP sink; the lot to recall comes from its database."""
    port, _ = smtp_sink
    workdir = tmp_path_factory.mktemp("recall_server")
    with serve(workdir, SMTP_HOST="127.0.0.1", SMTP_PORT=str(port)) as (url, env):
        yield Server(url, env, _pick_lot(workdir / "qualiflow.sqlite"))


@pytest.fixture(scope="module")
def server_url(recall_server: Server) -> str:
    """The page fixture opens this module's server (see conftest)."""
    return recall_server.url




# --- steps ----------------------------------------------------------------------------------------------------------







def open_workspace(page: Page) -> None:
    page.get_by_test_id("recall-workspace-link").click()
    expect(page.get_by_role("heading", name="Deadlines")).to_be_visible()


def open_instance_page(page: Page) -> None:
    page.get_by_test_id("instance-link").click()
    expect(page.get_by_test_id("task-table")).to_be_visible()


def open_lot(page: Page, lot_number: str) -> None:
    """Lots -> Product lots, search the lot number and open the lot."""
    page.get_by_role("navigation", name="Main menu").get_by_role("link", name="Lots", exact=True).click()
    page.get_by_test_id("kinds").get_by_role("link", name="Product lots", exact=True).click()
    search = page.get_by_role("searchbox", name="Search")
    search.fill(lot_number)
    search.press("Enter")
    rows = page.get_by_test_id("records-table").locator("tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("released")
    rows.first.get_by_role("link", name=lot_number).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"Lot {lot_number}")


def trigger(page: Page, lot: DemoLot) -> None:
    page.get_by_test_id("start-recall").get_by_role("button", name="Start a recall").click()
    expect(page.get_by_role("heading", name="Recall trigger", level=1)).to_be_visible()
    expect(page.get_by_label("Product lots")).to_have_value(lot.number)
    page.get_by_label("Source").select_option("complaint")
    page.get_by_label("Description").fill(f"Plunger stoppers of lot {lot.number} detach during aspiration.")
    page.get_by_label("Reported by").fill("Customer service, complaint C-0815")
    page.get_by_label("Reported on").fill(today())
    complete(page)
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"Recall: lot {lot.number}")


def assess(page: Page) -> None:
    open_step(page, "Health hazard assessment")
    page.get_by_label("Health hazard").fill("A detached stopper lets air into the syringe: risk of air embolism.")
    page.get_by_label("Risk evaluation").fill("Probable and serious: unacceptable.")
    page.get_by_label("Population at risk").fill("Patients receiving injections in hospitals.")
    page.get_by_role("radio", name=re.compile(rf"^Class {RECALL_CLASS} - ")).check()
    page.get_by_label("Action").select_option("recall")
    page.get_by_label("Countries").fill("CN")
    complete(page)

    open_step(page, "Sign the assessment (e-signature)")
    expect(page.get_by_role("link", name=re.compile(r"^health_hazard_evaluation-\d+-r1\..+\.docx$"))).to_be_visible()
    page.get_by_role("radio", name="Approve", exact=True).check()
    sign_and_complete(page)


def decide(page: Page, lot: DemoLot) -> None:
    open_from_inbox(page, lot.number, "Recall decision (e-signature)")
    page.get_by_role("radio", name="Approve", exact=True).check()
    page.get_by_label("Comment").fill("Recall approved, class I.")
    sign_and_complete(page)


def check_workspace_after_decision(page: Page, lot: DemoLot) -> None:
    open_workspace(page)
    notice = page.get_by_test_id("deadline-consignee_notice")
    expect(notice).to_have_attribute("data-status", "pending")
    expect(notice).to_contain_text("Notify consignees")
    expect(notice.locator(".countdown")).to_have_text(re.compile(r"^in (23 h( \d+ min)?|1 d)$"))
    due = datetime.fromisoformat(notice.locator(".countdown").get_attribute("data-due").replace("Z", "+00:00"))
    left = due - datetime.now(UTC)
    assert timedelta(hours=23, minutes=50) < left <= timedelta(days=1), f"class I: notify within 1 day, {left} left"
    expect(page.get_by_test_id("deadlines").locator("tbody tr")).to_have_count(3)  # no US or EU market

    affected = page.get_by_test_id("affected-lots")
    expect(affected.locator("tbody tr")).to_have_count(1)
    lot_row = affected.get_by_role("row").filter(has=page.get_by_role("link", name=lot.number))
    expect(lot_row).to_contain_text("recalled")  # the decision blocked the lot
    consignees = page.get_by_test_id("consignees")
    expect(consignees.locator("tbody tr")).to_have_count(len(lot.consignees))
    for consignee in lot.consignees:
        expect(page.get_by_test_id(f"consignee-{consignee.code}")).to_contain_text(consignee.email)
    open_instance_page(page)


def prepare_notices(page: Page) -> None:
    open_step(page, "Prepare the consignee notices")
    page.get_by_label("Reason for the recall (Chinese)").fill("注射器可能渗漏，存在给药剂量不足的风险。")
    page.get_by_label("Reason for the recall (English)").fill("The syringes may leak, with a risk of underdosing.")
    page.get_by_label("Instructions to consignees (Chinese)").fill("立即停止使用该批次，隔离库存并退回我司。")
    page.get_by_label("Instructions to consignees (English)").fill(
        "Stop using the lot at once, quarantine your stock and return it to us.")
    page.get_by_label("Contact for questions and returns (Chinese)").fill("何海伦，+86 21 5555 0100")
    page.get_by_label("Contact for questions and returns (English)").fill("Helen Head, +86 21 5555 0100")
    page.get_by_label("Ask distributors to forward the notice to their customers").check()
    complete(page)


def received_notices(mailbox, lot: DemoLot) -> dict[str, Message]:
    """The notices the outbox sent, by recipient; polls the SMTP sink briefly."""
    addresses = {c.email for c in lot.consignees}
    deadline = time.monotonic() + MAIL_WAIT_SECONDS
    while True:
        notices = [m for m in mailbox.messages() if m["To"] in addresses]
        if len(notices) >= len(addresses) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert sorted(m["To"] for m in notices) == sorted(addresses), "one notice e-mail per consignee"
    return {m["To"]: m for m in notices}


def mail_text(message: Message) -> str:
    part = next(p for p in message.walk() if p.get_content_type() == "text/plain" and not p.get_filename())
    return part.get_payload(decode=True).decode(part.get_content_charset() or "utf-8")


def docx_attachments(message: Message) -> list[str]:
    return [p.get_filename() for p in message.walk() if (p.get_filename() or "").endswith(".docx")]


def acknowledge(browser, url: str, link: str, lot: DemoLot, returned: int) -> None:
    """Answer the notice through its link in a browser of the consignee's own (no login), then reuse the link."""
    context = new_context(browser, url)
    ack = context.new_page()
    try:
        response = ack.goto(link)
        assert response.status == 200
        expect(ack.get_by_role("heading", name=zh("Recall acknowledgment"), level=1)).to_be_visible()
        expect(ack.get_by_test_id("current-user")).to_have_count(0)  # public: nobody is signed in
        received = ack.get_by_role("group", name=zh("Did you receive the recall notice?"))
        received.get_by_role("radio", name=zh("yes"), exact=True).check()
        shipped = int(ack.get_by_test_id("ack-lines").get_by_role("row").filter(has_text=lot.number)
                      .locator("td.text-end").inner_text())
        assert shipped >= returned
        ack.get_by_label(zh("Quantity still on hand (all affected lots)")).fill(str(shipped - returned))
        ack.get_by_label(f"{zh('Returned')} {lot.number}", exact=True).fill(str(returned))
        ack.get_by_label(zh("Contact (name and phone or e-mail)")).fill("Liu Yang, +86 571 5555 0199")
        with ack.expect_response(lambda r: r.request.method == "POST") as posted:
            ack.get_by_role("button", name=zh("Send the acknowledgment")).click()
        assert posted.value.status == 200
        expect(ack.get_by_role("heading", name=zh("Thank you"), level=1)).to_be_visible()
        expect(ack.get_by_test_id("ack-done")).to_be_visible()

        again = ack.goto(link)
        assert again.status == 409
        # The closed page still answers in the browser's language (en here), not the notice's: accept either.
        used = "This acknowledgment was already submitted; the link can be used only once. Thank you."
        expect(ack.get_by_test_id("error-message")).to_have_text(
            re.compile(f"^({re.escape(zh(used))}|{re.escape(used)})$"))
        expect(ack.get_by_test_id("ack-form")).to_have_count(0)
    except Exception:
        SCREENSHOTS.mkdir(exist_ok=True)
        ack.screenshot(path=SCREENSHOTS / "test_recall_acknowledgment.png", full_page=True)
        raise
    finally:
        context.close()


def submit_event_report(page: Page) -> None:
    open_step(page, "Report the recall to the regulator")
    page.get_by_label("Authority").fill("Jiangsu MPA")
    page.get_by_label("Submitted on").fill(today())
    page.get_by_label("Reference no.").fill("JS-RC-2026-001")
    complete(page)


def plan(page: Page) -> None:
    open_step(page, "Recall plan (submit within 5 working days)")
    page.get_by_label("Strategy").fill("Recover all stock from distributors and hospitals within 10 days; destroy it.")
    page.get_by_label("Depth").select_option("hospital")
    page.get_by_label("Effectiveness check level").select_option("A")
    page.get_by_label("Recall coordinator").fill("Helen Head")
    page.get_by_label("Submitted to the authority on").fill(today())
    complete(page)

    open_step(page, "Approve the recall plan (e-signature)")
    expect(page.get_by_role("link", name=re.compile(r"^recall_plan-\d+-r1\..+\.docx$"))).to_be_visible()
    page.get_by_role("radio", name="Approve", exact=True).check()
    sign_and_complete(page)


def optional_reports(page: Page) -> None:
    """The FDA 806 and EU FSCA steps appear only for US or EU markets; complete them if they do."""
    for name, authority in (("FDA 21 CFR 806 report", "FDA"), ("EU FSCA report and field safety notice", "BfArM")):
        link = page.get_by_test_id("task-table").get_by_role("link", name=name, exact=True)
        if link.count():
            open_step(page, name)
            page.get_by_label("Authority").fill(authority)
            page.get_by_label("Submitted on").fill(today())
            complete(page)


def monitor(page: Page) -> None:
    open_step(page, "Execute and monitor the recall")
    page.get_by_label("All field actions are done and returns are recorded").check()
    page.get_by_label("Summary of the execution").fill("All consignees notified; returns recorded.")
    complete(page)


def check_every_sampled_consignee(page: Page, lot: DemoLot) -> None:
    open_workspace(page)
    effectiveness = page.get_by_test_id("effectiveness")
    expect(effectiveness).to_contain_text(f"{len(lot.consignees)} of {len(lot.consignees)} consignees")
    sample = page.get_by_test_id("sample")
    expect(sample.locator("tbody tr")).to_have_count(len(lot.consignees))  # level A: every consignee
    for n, consignee in enumerate(lot.consignees, start=1):
        row = page.get_by_test_id(f"sample-{consignee.code}")
        row.get_by_label("Method").select_option("phone")
        row.get_by_role("radio", name="effective", exact=True).check()
        row.get_by_label("Note").fill(f"Phoned {consignee.code}: stock quarantined.")
        row.get_by_role("button", name="Record").click()
        expect(page.get_by_role("status")).to_have_text("The effectiveness check was recorded.")
        expect(page.get_by_test_id("sample-" + consignee.code).locator("td").nth(3)).to_have_text("yes")
        expect(page.get_by_test_id("checked")).to_have_text(str(n))
    expect(page.get_by_test_id("effective")).to_have_text(str(len(lot.consignees)))
    open_instance_page(page)


def effectiveness_gate(page: Page) -> None:
    open_step(page, "Effectiveness check (e-signature)")
    page.get_by_role("radio", name="The planned level is met").check()
    sign_and_complete(page)


def dispose(page: Page, lot: DemoLot, returned: int) -> None:
    open_step(page, "Disposition of returned goods")
    page.get_by_label("Lot 1", exact=True).fill(lot.number)
    page.get_by_label("Quantity 1", exact=True).fill(str(returned))
    page.get_by_label("Disposition 1", exact=True).select_option("destroy")
    page.get_by_label("Record no. 1", exact=True).fill("DR-2026-001")
    complete(page)


def final_approval(page: Page) -> None:
    """The page shows the figures it approves; below class I's thresholds it asks for a signed justification."""
    open_step(page, "Final QA approval (e-signature)")
    expect(page.get_by_role("link", name=re.compile(r"^recall_summary-\d+-r1\..+\.docx$"))).to_be_visible()
    for figure in ("Units shipped", "Units recovered", "Consignees contacted by the effectiveness check",
                   "Threshold: units recovered"):
        expect(page.get_by_text(figure, exact=True)).to_be_visible()
    page.get_by_role("radio", name="Approve", exact=True).check()
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Sign and complete", exact=True).click()
    expect(page.get_by_text("below the effectiveness thresholds of class I", exact=False).first).to_be_visible()
    page.get_by_label("Justification for closing below the effectiveness thresholds").fill(
        "The remaining units were used before the recall; every consignee confirmed by phone.")
    sign_and_complete(page)


def docx_text(path: Path) -> tuple[str, list[list[str]]]:
    document = docx.Document(str(path))
    rows = [[cell.text.strip() for cell in row.cells] for table in document.tables for row in table.rows]
    text = [paragraph.text for paragraph in document.paragraphs] + [cell for row in rows for cell in row]
    return "\n".join(text), rows


# --- the test ---------------------------------------------------------------------------------------------------------

def test_class_i_recall_from_trigger_to_close(page: Page, browser, recall_server: Server, smtp_sink,
                                              tmp_path: Path):
    lot, returned = recall_server.lot, 10
    _, mailbox = smtp_sink

    sign_in(page, "head")
    open_lot(page, lot.number)
    trigger(page, lot)
    assess(page)
    sign_out(page)

    sign_in(page, "rp")
    decide(page, lot)
    sign_out(page)

    sign_in(page, "head")
    open_from_inbox(page, lot.number, "Prepare the consignee notices")
    page.get_by_role("link", name=re.compile(rf"^#\d+ Recall: lot {lot.number}$")).click()
    check_workspace_after_decision(page, lot)
    prepare_notices(page)

    flask_command(recall_server.env, "outbox", "send")
    notices = received_notices(mailbox, lot)
    for message in notices.values():
        assert len(docx_attachments(message)) == 1, f"the notice to {message['To']} should carry its .docx"
    first = next(c for c in lot.consignees if c.kind == "distributor")
    links = re.findall(rf"{re.escape(recall_server.url)}/ack/[\w-]+", mail_text(notices[first.email]))
    assert len(links) == 1, "the notice e-mail should carry one acknowledgment link"
    acknowledge(browser, recall_server.url, links[0], lot, returned)

    page.reload()
    open_workspace(page)
    expect(page.get_by_test_id(f"consignee-{first.code}").get_by_role("cell", name="yes", exact=True)).to_have_count(1)
    expect(page.get_by_test_id("total-returned")).to_have_text(str(returned))
    expect(page.get_by_test_id("affected-frozen")).to_be_visible()
    open_instance_page(page)

    submit_event_report(page)
    plan(page)
    optional_reports(page)
    monitor(page)
    check_every_sampled_consignee(page, lot)
    effectiveness_gate(page)
    dispose(page, lot, returned)
    final_approval(page)

    expect(page.get_by_test_id("instance-status")).to_have_text("completed")
    signatures = page.get_by_test_id("signature")
    expect(signatures.get_by_test_id("signature-meaning")).to_have_text(["authored", "approved", "approved",
                                                                          "reviewed", "approved"])
    expect(signatures.get_by_test_id("signature-name")).to_have_text(["Helen Head", "Zhang Min", "Helen Head",
                                                                       "Helen Head", "Helen Head"])
    documents = page.get_by_test_id("document-table")
    for kind in ("health_hazard_evaluation", "recall_event_report", "recall_plan", r"recall_notice_\w+",
                 "recall_summary"):
        expect(documents.get_by_role("link", name=re.compile(rf"^{kind}-\d+-r\d+\..+\.docx$")).first).to_be_visible()

    open_workspace(page)
    expect(page.get_by_test_id("deadline-consignee_notice")).to_have_attribute("data-status", "met")
    expect(page.get_by_test_id("read-only")).to_be_visible()
    open_instance_page(page)

    with page.expect_download() as download_info:
        page.get_by_test_id("document-table").get_by_role(
            "link", name=re.compile(r"^recall_summary-\d+-r1\..+\.docx$")).click()
    summary = tmp_path / download_info.value.suggested_filename
    download_info.value.save_as(summary)
    text, rows = docx_text(summary)
    assert lot.number in text
    assert any(row[0] in ("Recall class", "召回级别") and row[-1] == RECALL_CLASS for row in rows), rows[:12]

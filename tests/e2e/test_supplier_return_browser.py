"""The supplier return clicked through Chromium by QA (head) and the warehouse (prod): a demo material lot is
returned from its page, the SCAR e-mailed over real SMTP with its .docx attached, the supplier answering through
the single-use link from that e-mail, QA verifying, the return authorised and shipped, the supplier suspended
and the return closed with an e-signature; the return note is downloaded and read."""
from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from pathlib import Path

import docx
import pytest
from babel import Locale
from babel.support import Translations
from playwright.sync_api import Page, expect

from .accounts import complete, open_step, sign_and_complete, sign_in, sign_out, today
from .conftest import ROOT, SCREENSHOTS, flask_command, new_context, serve

pytestmark = pytest.mark.e2e

MAIL_WAIT_SECONDS = 5
QUANTITY = "120"
REASON = "Stoppers tear at the flange"
# The response page speaks the supplier's language (zh-CN for the demo's Chinese suppliers) whatever the browser
# asks for; its words are looked up in the catalog the server uses, so the test follows the translation.
zh = Translations.load(str(ROOT / "app" / "translations"), [Locale.parse("zh_CN")]).gettext

IDENTIFY = "Identify the nonconforming material"
PREPARE_SCAR = "Prepare the supplier corrective action request"
VERIFY = "Verify the supplier's response"
REQUEST = "Return request"
AUTHORISE = "Authorise the return (e-signature)"
SHIP = "Ship the goods back"
STATUS = "Decide the approved-supplier status"
CLOSE = "Close the supplier return (e-signature)"


@dataclass(frozen=True)
class DemoMaterialLot:
    number: str
    material: str
    supplier_code: str
    supplier_name: str
    email: str


@dataclass(frozen=True)
class Server:
    url: str
    env: dict[str, str]
    lot: DemoMaterialLot


def _pick_lot(database: Path) -> DemoMaterialLot:
    """The newest released lot of the demo's rubber supplier (approved, Chinese, with an e-mail address)."""
    with sqlite3.connect(database) as connection:
        row = connection.execute("""
            SELECT m.lot_number, m.material, s.code, s.name, s.email FROM material_lots m
            JOIN suppliers s ON s.id = m.supplier_id
            WHERE s.code = 'SUP-RUB' AND s.status = 'approved' AND s.language = 'zh-CN' AND s.email <> ''
              AND m.status = 'released'
            ORDER BY m.lot_number DESC LIMIT 1""").fetchone()
    assert row is not None, "the demo data should have a released lot of an approved supplier with an e-mail address"
    return DemoMaterialLot(*row)


@pytest.fixture(scope="module")
def return_server(chromium: Path, smtp_sink, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of this module's own whose outbox sends to the SMTP sink."""
    port, _ = smtp_sink
    workdir = tmp_path_factory.mktemp("supplier_return_server")
    with serve(workdir, SMTP_HOST="127.0.0.1", SMTP_PORT=str(port)) as (url, env):
        yield Server(url, env, _pick_lot(workdir / "qualiflow.sqlite"))


@pytest.fixture(scope="module")
def server_url(return_server: Server) -> str:
    """The page fixture opens this module's server (see conftest)."""
    return return_server.url


def open_material_lot(page: Page, lot: DemoMaterialLot) -> None:
    """Lots -> Material lots, search the lot number and open the lot."""
    page.get_by_role("navigation", name="Main menu").get_by_role("link", name="Lots", exact=True).click()
    page.get_by_test_id("kinds").get_by_role("link", name="Material lots", exact=True).click()
    search = page.get_by_role("searchbox", name="Search")
    search.fill(lot.number)
    search.press("Enter")
    rows = page.get_by_test_id("records-table").locator("tbody tr")
    expect(rows).to_have_count(1)
    rows.first.get_by_role("link", name=lot.number, exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(lot.number)


def identify(page: Page, lot: DemoMaterialLot) -> str:
    """Start the return from the lot's page and identify it; return the instance page's address."""
    open_material_lot(page, lot)
    page.get_by_test_id("start-supplier-return").get_by_role("button", name="Start supplier return").click()
    expect(page.get_by_role("heading", name=IDENTIFY, level=1)).to_be_visible()
    expect(page.get_by_label("Material lots")).to_have_value(lot.number)
    page.get_by_label("Found by").select_option("incoming_inspection")
    page.get_by_label("Nonconformity").fill(f"{REASON}: 9 of 80 samples of lot {lot.number}.")
    page.get_by_label("Severity").select_option("major")
    page.get_by_label("Found on").fill(today())
    complete(page)
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"lot {lot.number}")
    return page.url.split("?")[0].split("#")[0]


def prepare_scar(page: Page) -> None:
    open_step(page, PREPARE_SCAR)
    page.get_by_label("What we require").fill("Contain your stock, find the root cause and send an 8D report.")
    page.get_by_label("Our contact for the supplier").fill("Helen Head, +86 512 5555 0100")
    complete(page)


def received_scar(mailbox, lot: DemoMaterialLot) -> Message:
    deadline = time.monotonic() + MAIL_WAIT_SECONDS
    while True:
        messages = [m for m in mailbox.messages() if m["To"] == lot.email]
        if messages or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len(messages) == 1, "one SCAR e-mail to the supplier"
    return messages[0]


def mail_text(message: Message) -> str:
    part = next(p for p in message.walk() if p.get_content_type() == "text/plain" and not p.get_filename())
    return part.get_payload(decode=True).decode(part.get_content_charset() or "utf-8")


def answer(browser, url: str, link: str, lot: DemoMaterialLot) -> None:
    """The supplier answers through the link in a browser of its own (no login), then finds the link used."""
    context = new_context(browser, url)
    supplier = context.new_page()
    try:
        assert supplier.goto(link).status == 200
        expect(supplier.get_by_role("heading", name=zh("Corrective action response"), level=1)).to_be_visible()
        expect(supplier.get_by_test_id("current-user")).to_have_count(0)  # public: nobody is signed in
        expect(supplier.get_by_test_id("scar-lots")).to_contain_text(lot.number)
        containment = zh("Containment (stock at your site and in transit)")
        supplier.get_by_label(containment).fill("库存已冻结，在途货物已召回。")
        supplier.get_by_label(zh("Root cause")).fill("硫化温度超出工艺范围，导致法兰强度不足。")
        supplier.get_by_label(zh("Corrective action")).fill("温控器已更换，增加每班温度点检。")
        supplier.get_by_label(zh("Your name")).fill("周磊")
        with supplier.expect_response(lambda r: r.request.method == "POST") as posted:
            supplier.get_by_role("button", name=zh("Send the response")).click()
        assert posted.value.status == 200
        expect(supplier.get_by_test_id("scar-done")).to_be_visible()
        assert supplier.goto(link).status == 409
        expect(supplier.get_by_test_id("scar-form")).to_have_count(0)
    except Exception:
        SCREENSHOTS.mkdir(exist_ok=True)
        supplier.screenshot(path=SCREENSHOTS / "test_supplier_scar_response.png", full_page=True)
        raise
    finally:
        context.close()


def verify(page: Page) -> None:
    open_step(page, VERIFY)
    page.get_by_role("radio", name="Accepted: root cause and actions are adequate").check()
    page.get_by_label("Verification note").fill("8D report and temperature records reviewed.")
    complete(page)


def request_return(page: Page, lot: DemoMaterialLot) -> None:
    open_step(page, REQUEST)
    page.get_by_label("Lot 1", exact=True).fill(lot.number)
    page.get_by_label("Specification 1", exact=True).fill("20 mm, natural rubber")
    page.get_by_label("Quantity 1", exact=True).fill(QUANTITY)
    page.get_by_label("Unit 1", exact=True).fill("pcs")
    page.get_by_label("Reason 1", exact=True).fill(REASON)
    page.get_by_label("Recipient (supplier, address, contact)").fill(f"{lot.supplier_name}, Wuxi; attn. 周磊")
    page.get_by_label("Supplier's return authorisation no. (RMA)").fill("RMA-E2E-42")
    complete(page)


def authorise(page: Page) -> None:
    open_step(page, AUTHORISE)
    expect(page.get_by_role("link", name=re.compile(r"^scar-\d+-r1\..+\.docx$"))).to_be_visible()
    page.get_by_role("radio", name="Authorise the return", exact=True).check()
    sign_and_complete(page)


def ship(page: Page) -> None:
    open_step(page, SHIP)
    page.get_by_label("Shipped on").fill(today())
    page.get_by_label("Carrier").fill("SF Express")
    page.get_by_label("Tracking no.").fill("SF-E2E-0042")
    complete(page)


def decide_status_and_close(page: Page) -> None:
    open_step(page, STATUS)
    suspended = page.get_by_role("radio", name="Suspended: no new material lots accepted")
    expect(suspended).to_be_checked()  # proposed after a major defect
    page.get_by_label("Reason").fill("Major defect; purchasing suspended until a re-audit.")
    complete(page)
    open_step(page, CLOSE)
    page.get_by_role("radio", name="Close the supplier return", exact=True).check()
    sign_and_complete(page)


def test_supplier_return_from_the_lot_page_to_the_signed_close(page: Page, browser, return_server: Server,
                                                               smtp_sink, tmp_path: Path):
    lot = return_server.lot
    _, mailbox = smtp_sink

    sign_in(page, "head")
    instance_url = identify(page, lot)
    prepare_scar(page)
    flask_command(return_server.env, "outbox", "send")
    message = received_scar(mailbox, lot)
    attachments = [p.get_filename() for p in message.walk() if (p.get_filename() or "").endswith(".docx")]
    assert len(attachments) == 1 and attachments[0].startswith("scar-"), attachments
    links = re.findall(rf"{re.escape(return_server.url)}/scar/[\w-]+", mail_text(message))
    assert len(links) == 1, "the SCAR e-mail should carry one response link"
    answer(browser, return_server.url, links[0], lot)
    page.goto(instance_url)
    verify(page)
    sign_out(page)

    sign_in(page, "prod")
    page.goto(instance_url)
    request_return(page, lot)
    sign_out(page)

    sign_in(page, "head")
    page.goto(instance_url)
    authorise(page)
    sign_out(page)

    sign_in(page, "prod")
    page.goto(instance_url)
    ship(page)
    sign_out(page)

    sign_in(page, "head")
    page.goto(instance_url)
    decide_status_and_close(page)
    expect(page.get_by_test_id("instance-status")).to_have_text("completed")
    signatures = page.get_by_test_id("signature")
    expect(signatures.get_by_test_id("signature-meaning")).to_have_text(["approved", "approved"])
    expect(signatures.get_by_test_id("signature-name")).to_have_text(["Helen Head", "Helen Head"])

    page.get_by_test_id("supplier-return-workspace-link").click()
    expect(page.get_by_test_id("supplier-status")).to_contain_text("suspended")
    expect(page.get_by_test_id("scar-1").get_by_test_id("scar-answered")).to_contain_text("周磊")
    expect(page.get_by_test_id(f"return-{lot.number}")).to_contain_text(f"{QUANTITY} pcs")
    page.get_by_test_id("instance-link").click()

    with page.expect_download() as download_info:
        page.get_by_test_id("document-table").get_by_role(
            "link", name=re.compile(r"^supplier_return_note-\d+-r1\..+\.docx$")).click()
    note = tmp_path / download_info.value.suggested_filename
    download_info.value.save_as(note)
    document = docx.Document(str(note))
    text = "\n".join([p.text for p in document.paragraphs] + [cell.text for table in document.tables
                                                              for row in table.rows for cell in row.cells])
    for expected in (lot.number, QUANTITY, REASON, lot.supplier_name, lot.material, "SF Express", "Helen Head"):
        assert expected in text, expected

"""The head of QA (QA group) opens the stock pages, proposes a first-expiry-first-out shipment of syringes to a
distributor, sees the held syringe lot refused with its reason, ships, and sees the stock of the lot picked go down;
then starts the scrap / destruction procedure from the Destroy button of the held lot's stock row."""
from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.e2e.accounts import sign_in


def _quantity(page: Page, lot: str, location: str) -> int:
    """The units of a lot at a location, as the stock page lists them."""
    page.goto(f"/stock/?q={lot}")
    row = page.get_by_test_id("stock-row").filter(has=page.get_by_role("link", name=lot, exact=True)).filter(
        has_text=location)
    return int(row.locator("td").nth(6).inner_text().strip())


def test_stock_is_shipped_fefo_refusing_a_held_lot_and_a_held_lot_is_sent_to_scrap(page: Page):
    sign_in(page, "head")
    page.goto("/stock/")
    expect(page.get_by_test_id("warehouses")).to_contain_text("WH-1")
    page.get_by_label("Status").select_option("hold")
    page.get_by_label("Lot, product or GTIN").fill("syringe")
    page.get_by_role("button", name="Filter").click()
    held_row = page.get_by_test_id("stock-row").first
    expect(held_row).to_contain_text("hold")
    held = held_row.locator("td").nth(2).inner_text().strip()
    held_row.get_by_role("link", name=held, exact=True).click()
    gtin = page.locator("p.text-muted .hash").first.inner_text().strip()
    assert re.fullmatch(r"\d{14}", gtin)

    # Propose: the lots expiring first are picked, the held one refused with the reason.
    page.goto("/stock/")
    page.get_by_test_id("ship-link").click()
    page.get_by_label("Product UDI-DI (GTIN)").fill(gtin)
    page.get_by_label("Customer code").fill("D01")
    page.get_by_label("Quantity").fill("3")
    page.get_by_test_id("propose").click()
    refused = page.get_by_test_id("refused").locator("tr", has_text=held)
    expect(refused).to_contain_text(f"Lot {held} at Finished goods WH-1 is on hold: it cannot be shipped until the "
                                    "hold is lifted.")
    expect(refused).to_contain_text("not overridable")
    pick = page.get_by_test_id("picks").locator("tbody tr").first
    picked, location = (pick.locator("td").nth(0).inner_text().strip(), pick.locator("td").nth(1).inner_text().strip())
    taken = int(pick.locator("td").nth(4).inner_text().strip())
    assert picked != held and taken >= 1

    # Check the stock of the picked lot, then ship the proposal: the stock goes down by what was taken.
    proposal_url = page.url
    before = _quantity(page, picked, location)
    page.goto(proposal_url)
    page.get_by_label("Product UDI-DI (GTIN)").fill(gtin)
    page.get_by_label("Customer code").fill("D01")
    page.get_by_label("Quantity").fill("3")
    page.get_by_label("Document no.").fill("DN-E2E-STOCK")
    page.get_by_test_id("propose").click()
    page.get_by_test_id("ship").click()
    expect(page.locator("main")).to_contain_text("DN-E2E-STOCK")
    expect(page.locator("main")).to_contain_text(picked)
    assert _quantity(page, picked, location) == before - taken

    # Destroy from the held lot's stock row: the scrap / destruction request opens, filled in.
    page.goto(f"/stock/?q={held}")
    row = page.get_by_test_id("stock-row").filter(has=page.get_by_role("link", name=held, exact=True))
    row.get_by_role("button", name=re.compile(r"^Destroy")).click()
    expect(page.get_by_text("Scrap / destruction started: check the request and send it for approval.")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/tasks/\d+$"))  # the first step of the scrap instance, started
    expect(page.locator("main")).to_contain_text(held)

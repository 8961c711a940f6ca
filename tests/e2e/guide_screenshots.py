"""Take the documentation's diagram pictures: `make screenshots` (not a test; pytest does not collect this file).

Serves the demo like the browser tests do, signs in as the process owner and saves, for every deployed
procedure, its version page's diagram with the heat map (docs/img/guide/<process>-diagram.png) and the
top of one open instance's page with its diagram (<process>-instance.png), starting an instance when the demo
has none.
"""
from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import Page, expect, sync_playwright

from tests.e2e.accounts import sign_in
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, CHROMIUM_MISSING, ROOT, serve

GUIDE = ROOT / "docs" / "img" / "guide"
VIEWPORT = {"width": 1600, "height": 1000}
INSTANCE_HEIGHT = 1500  # px of the instance page kept in its picture
USER = "owner"  # a process owner sees the heat map and may start instances
VERSION_LINK = re.compile(r"^/processes/([\w-]+)/(\d+)$")


def latest_versions(page: Page) -> dict[str, str]:
    """Return each procedure's latest version page, as the catalogue links it (newest first)."""
    page.goto("/processes/")
    found: dict[str, str] = {}
    for href in page.locator("a[href^='/processes/']").evaluate_all("links => links.map(a => a.getAttribute('href'))"):
        match = VERSION_LINK.match(href or "")
        if match and match.group(1) not in found:
            found[match.group(1)] = href
    return found


def wait_for_diagram(page: Page) -> None:
    expect(page.get_by_test_id("diagram")).to_have_attribute("data-diagram-state", "ready", timeout=30_000)


def open_instance(page: Page, key: str) -> bool:
    """Open the newest running instance of a procedure, starting one when there is none."""
    page.goto(f"/instances/?process={key}&status=running")
    links = page.locator("table a[href^='/instances/']")
    if links.count():
        links.first.click()
        return True
    page.goto(f"/instances/start?process={key}")
    page.get_by_label("Title").fill(f"Guide: {key.replace('_', ' ')}")
    page.get_by_role("button", name="Start", exact=True).click()
    page.goto(f"/instances/?process={key}&status=running")
    if not links.count():
        return False
    links.first.click()
    return True


def take(page: Page) -> list[Path]:
    GUIDE.mkdir(parents=True, exist_ok=True)
    saved = []
    for key, href in latest_versions(page).items():
        if open_instance(page, key):
            wait_for_diagram(page)
            saved.append(GUIDE / f"{key}-instance.png")
            # The page as a user sees it: title and status, deadlines, the diagram and the steps below it.
            height = min(page.evaluate("document.documentElement.scrollHeight"), INSTANCE_HEIGHT)
            page.screenshot(path=saved[-1], full_page=True, clip={"x": 0, "y": 0, "width": VIEWPORT["width"],
                                                                    "height": height})
        else:
            print(f"{key}: no instance could be started; no instance picture", file=sys.stderr)
        page.goto(href)  # after the instance, so that the heat map counts it
        wait_for_diagram(page)
        saved.append(GUIDE / f"{key}-diagram.png")
        page.get_by_test_id("diagram").screenshot(path=saved[-1])
    return saved


def main() -> None:
    if not CHROMIUM.exists():
        sys.exit(CHROMIUM_MISSING.replace("the browser tests need", "screenshots need"))
    with tempfile.TemporaryDirectory() as workdir, serve(Path(workdir)) as (url, _), sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(base_url=url, locale="en-US", viewport=VIEWPORT)
        context.set_default_timeout(15_000)
        page = context.new_page()
        sign_in(page, USER)
        for path in take(page):
            print(path.relative_to(ROOT))
        browser.close()


if __name__ == "__main__":
    main()

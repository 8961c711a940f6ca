"""The Content-Security-Policy in Chromium: the pages with the most script (Swagger UI, the studio's modeler, the form
editor, an instance's diagram) work under it and the browser reports no violation; a copy of the session cookie
taken before signing out no longer opens a page."""
from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from .accounts import sign_in, sign_out
from .test_diagram_browser import open_demo_capa

pytestmark = pytest.mark.e2e

# Chromium fires securitypolicyviolation for every blocked script, style, image, frame or connection.
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation',
  (e) => window.__cspViolations.push(e.violatedDirective + ' ' + (e.blockedURI || 'inline') + ' ' + e.sourceFile));
"""


def violations(page: Page) -> list[str]:
    return page.evaluate("window.__cspViolations || []")


def test_script_heavy_pages_work_under_the_csp_without_violations(page: Page):
    page.add_init_script(RECORD_VIOLATIONS)
    console: list[str] = []
    page.on("console", lambda m: console.append(m.text) if "Content Security Policy" in m.text else None)
    sign_in(page, "admin")

    page.goto("/api/v1/docs")
    expect(page.locator(".swagger-ui .opblock").first).to_be_visible(timeout=20_000)
    assert violations(page) == []

    page.goto("/studio/processes/capa/1")  # the modeler, its properties panel and bpmnlint
    expect(page.get_by_test_id("studio-editor")).to_have_attribute("data-studio-state", "ready", timeout=20_000)
    assert violations(page) == []

    page.goto("/studio/forms/capa_problem")
    expect(page.get_by_test_id("form-preview").get_by_label("Problem title")).to_be_visible()
    assert violations(page) == []

    open_demo_capa(page)
    expect(page.get_by_test_id("diagram").locator("svg").first).to_be_visible()
    assert violations(page) == [] and console == []


def test_a_cookie_copied_before_sign_out_does_not_open_pages_after_it(page: Page):
    sign_in(page, "qa")
    copied = [c for c in page.context.cookies() if c["name"] == "session"]
    sign_out(page)
    page.context.add_cookies(copied)  # the copy comes back, e.g. from another machine
    page.goto("/")
    expect(page.get_by_role("heading", name="Sign in to Qualiflow")).to_be_visible()


def test_the_dashboard_draws_its_charts_under_the_csp(page: Page):
    page.add_init_script(RECORD_VIOLATIONS)
    sign_in(page, "head")
    page.goto("/dashboard/")  # the demo CAPA is open: its tile has a chart
    drawn = page.locator("canvas[data-chart][data-drawn='1']")
    expect(drawn.first).to_be_attached(timeout=10_000)
    assert drawn.count() == page.locator("canvas[data-chart]").count() >= 1
    assert violations(page) == []

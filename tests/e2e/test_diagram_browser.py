"""The BPMN diagrams in Chromium: the instance page's state markers and zoom buttons, the owner's heat map."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from .accounts import sign_in

pytestmark = pytest.mark.e2e

DEMO_CAPA = "CAPA: burr on catheter hub (demo)"


def watch_errors(page: Page) -> list[str]:
    """Collect the page's script and console errors (js/diagram.js logs a failed bpmn-js import)."""
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    def console(message) -> None:
        url = message.location.get("url") or ""
        if message.type == "error" and not url.endswith("/favicon.ico"):  # the app has no icon
            errors.append(f"{message.text} {url}")

    page.on("console", console)
    return errors


def open_demo_capa(page: Page) -> None:
    page.goto("/instances/?process=capa")
    page.get_by_role("link", name=DEMO_CAPA).first.click()
    expect(page.get_by_role("heading", name="Diagram")).to_be_visible()


def has_class(name: str) -> re.Pattern:
    """Match a class attribute whose list contains name."""
    return re.compile(rf"(^|\s){re.escape(name)}(\s|$)")


def zoom_level(page: Page) -> float:
    return float(page.get_by_test_id("diagram").get_attribute("data-zoom-level"))


def test_instance_diagram_marks_the_active_step_and_zooms_by_keyboard(page: Page):
    errors = watch_errors(page)
    sign_in(page, "qa")
    open_demo_capa(page)
    figure = page.get_by_test_id("diagram")
    expect(figure).to_have_attribute("data-diagram-state", "ready")
    expect(figure.locator(".djs-container svg").first).to_be_visible()
    active = figure.locator('g.djs-element[data-element-id="describe_problem"]')
    expect(active).to_have_class(has_class("state-active"))
    expect(figure.locator('g.djs-element[data-element-id="start"]')).to_have_class(has_class("state-completed"))
    expect(figure.locator("g.djs-element.state-active")).to_have_count(1)
    expect(page.get_by_text("active: waiting for a user")).to_be_visible()

    fitted = zoom_level(page)
    page.get_by_role("button", name="Zoom in").focus()
    page.keyboard.press("Enter")
    expect(figure).not_to_have_attribute("data-zoom-level", f"{fitted:.3f}")
    assert zoom_level(page) == pytest.approx(fitted * 1.25, rel=0.01)
    page.get_by_role("button", name="Zoom out").focus()
    page.keyboard.press("Space")
    page.keyboard.press("Space")
    assert zoom_level(page) == pytest.approx(fitted / 1.25, rel=0.01)
    page.get_by_role("button", name="Fit").click()
    assert zoom_level(page) == pytest.approx(fitted, rel=0.01)
    assert not errors, errors


def test_owner_sees_the_heat_map_on_the_version_page(page: Page):
    errors = watch_errors(page)
    sign_in(page, "owner")
    page.goto("/processes/capa/1")
    figure = page.get_by_test_id("diagram")
    expect(figure).to_have_attribute("data-diagram-state", "ready")
    badge = figure.locator('.diagram-count[data-element="describe_problem"]')
    expect(badge).to_be_visible()
    count = page.get_by_test_id("heat-map").locator('tr[data-element="describe_problem"] td').nth(1).inner_text()
    expect(badge).to_have_text(count)
    assert not errors, errors


def test_the_diagram_speaks_the_page_language(page: Page):
    """On a Chinese page the viewer draws the steps (automatic ones too) and the lanes in Chinese."""
    errors = watch_errors(page)
    sign_in(page, "qa")
    open_demo_capa(page)
    figure = page.get_by_test_id("diagram")
    expect(figure).to_have_attribute("data-diagram-state", "ready")
    expect(figure.locator("svg text", has_text="Describe the problem").first).to_be_attached()
    expect(figure.locator("svg text", has_text="Quality assurance").first).to_be_attached()  # the lane qa
    page.get_by_role("link", name="中文", exact=True).click()
    figure = page.get_by_test_id("diagram")
    expect(figure).to_have_attribute("data-diagram-state", "ready")
    expect(figure.locator("svg text", has_text="问题描述").first).to_be_attached()
    expect(figure.locator("svg text", has_text="关联来源和批次").first).to_be_attached()  # an automatic step
    expect(figure.locator("svg text", has_text="质量保证").first).to_be_attached()
    expect(figure.locator("svg text", has_text="Describe the problem")).to_have_count(0)
    assert not errors, errors

"""The process studio in Chromium: every shipped diagram survives the modeler unchanged, and a process owner
changes CAPA (due time, a form found missing by Validate and fixed), deploys version 2 and sees the diff."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from lxml import etree
from playwright.sync_api import Page, expect

from app.services.demo import DEMO_PASSWORD

from .accounts import sign_in, sign_out
from .test_diagram_browser import watch_errors

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "processes").glob("*.bpmn"))
BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"
DI_NAMESPACES = ("http://www.omg.org/spec/BPMN/20100524/DI", "http://www.omg.org/spec/DD/20100524/DC",
                 "http://www.omg.org/spec/DD/20100524/DI")
# Derived from the flows' sourceRef/targetRef: bpmn-js writes them for flows drawn in the modeler.
DERIVED = {f"{{{BPMN}}}incoming", f"{{{BPMN}}}outgoing"}
# Attributes at their BPMN schema default, which bpmn-js leaves out when it writes the file.
DEFAULTS = {("isSequential", "false"), ("cancelActivity", "true"), ("isInterrupting", "true"),
            ("isForCompensation", "false"), ("parallelMultiple", "false"), ("isClosed", "false")}


def semantic(xml: bytes | str) -> tuple:
    """Reduce BPMN XML to what the engine reads: elements, attributes and texts, without DI, comments,
    formatting, namespace prefixes, flow-node incoming/outgoing, attributes at their default or the default
    xsi:type of expressions."""
    data = xml.encode("utf-8") if isinstance(xml, str) else xml
    root = etree.fromstring(data, etree.XMLParser(resolve_entities=False, no_network=True, remove_comments=True,
                                                  remove_pis=True))
    return _canonical(root)


def _canonical(element: etree._Element) -> tuple:
    attributes = tuple(sorted((name, value) for name, value in element.attrib.items()
                              if (name, value) not in DEFAULTS
                              and not (name == XSI_TYPE and value.endswith("tFormalExpression"))))
    children = tuple(sorted(_canonical(child) for child in element
                            if isinstance(child.tag, str) and etree.QName(child).namespace not in DI_NAMESPACES
                            and child.tag not in DERIVED))
    return (element.tag, attributes, (element.text or "").strip(), children)


def differences(before: tuple, after: tuple, path: str = "") -> list[str]:
    """Name where two canonical trees differ (for a readable failure)."""
    tag, attributes, text, children = before
    here = f"{path}/{etree.QName(tag).localname}{dict(attributes).get('id', '')}"
    if before[:3] != after[:3]:
        return [f"{here}: {before[:3]} != {after[:3]}"]
    if len(children) != len(after[3]):
        return [f"{here}: {len(children)} children != {len(after[3])}"]
    return [d for mine, theirs in zip(children, after[3], strict=True) for d in differences(mine, theirs, here)]


def open_editor(page: Page, url: str) -> None:
    page.goto(url)
    expect(page.get_by_test_id("studio-editor")).to_have_attribute("data-studio-state", "ready", timeout=20_000)


def exported(page: Page) -> str:
    return page.evaluate("window.qualiflowStudio.editor.exportXml()")


def test_every_shipped_diagram_survives_the_modeler(page: Page):
    errors = watch_errors(page)
    sign_in(page, "owner")
    for path in SHIPPED:
        open_editor(page, f"/studio/processes/{path.stem}/1")
        unknown = page.evaluate("(window.qualiflowStudio.editor.importWarnings || [])"
                                ".filter(w => !/^unresolved reference/.test(w.message)).map(w => w.message)")
        assert unknown == [], (path.name, unknown)
        xml = exported(page)
        assert "bpmndi:BPMNDiagram" in xml  # the laid-out diagram comes back with its coordinates
        original, saved = semantic(path.read_bytes()), semantic(xml)
        assert saved == original, (path.name, differences(original, saved)[:5])
    assert not errors, errors


def properties(page: Page):
    return page.locator("[data-studio-properties]")


def select_element(page: Page, element_id: str, name: str) -> None:
    canvas = page.locator("[data-studio-canvas]")
    shape = canvas.locator(f'g.djs-element[data-element-id="{element_id}"]')
    # A large diagram opens at a readable scale from its left edge: scroll the canvas with the wheel, as a user
    # would, until the step is in view right of the palette (which floats over the canvas's left edge).
    for _ in range(40):
        area, box = canvas.bounding_box(), shape.bounding_box()
        palette = canvas.locator(".djs-palette").bounding_box()
        left = palette["x"] + palette["width"] + 10 if palette else area["x"]
        dx = (200 if box["x"] + box["width"] > area["x"] + area["width"] - 10
              else -200 if box["x"] < left else 0)
        dy = (150 if box["y"] + box["height"] > area["y"] + area["height"] - 10
              else -150 if box["y"] < area["y"] + 10 else 0)
        if not dx and not dy:
            break
        page.mouse.move(area["x"] + area["width"] / 2, area["y"] + area["height"] / 2)
        page.mouse.wheel(dx, dy)
        page.wait_for_timeout(50)
    shape.click()
    expect(properties(page).locator(".bio-properties-panel-header-label")).to_have_text(name)


def validate(page: Page) -> None:
    page.get_by_role("button", name="Validate").click()
    expect(page.get_by_test_id("problems")).to_be_visible()


def test_owner_changes_capa_validates_and_deploys_version_2(page: Page):
    errors = watch_errors(page)
    sign_in(page, "owner")
    page.get_by_role("link", name="Studio").click()
    expect(page.get_by_role("heading", name="Process studio")).to_be_visible()
    page.get_by_test_id("versions-capa").get_by_role("link", name="Open v1").click()
    expect(page.get_by_test_id("studio-editor")).to_have_attribute("data-studio-state", "ready", timeout=20_000)

    # The due time, with its preview in words.
    select_element(page, "describe_problem", "Describe the problem")
    due = properties(page).get_by_label("Due in (ISO 8601 duration)")
    expect(due).to_have_value("P2D")
    due.fill("P3D")
    expect(properties(page).get_by_text("Due 3 days after the task opens.")).to_be_visible()
    due.fill("three days")
    expect(properties(page).get_by_text("Not an ISO 8601 duration such as P3D, PT4H or P1DT12H.")).to_be_visible()
    due.fill("P3D")

    # Without its form the task cannot be deployed: Validate says so at the element, which a click selects.
    form = properties(page).get_by_label("Form", exact=True)
    expect(form).to_have_value("capa_problem.schema.json")
    form.select_option("")
    expect(properties(page).get_by_text("A user task needs a form.")).to_be_visible()
    select_element(page, "investigation", "Root-cause investigation (5 whys, fishbone)")
    validate(page)
    expect(page.get_by_role("status").filter(has_text="error(s)")).to_be_visible()
    problem = page.get_by_test_id("server-problems").locator("li", has_text="describe_problem")
    expect(problem).to_contain_text("form")
    expect(problem).to_have_attribute("data-severity", "error")
    problem.get_by_role("button", name="describe_problem").click()
    expect(properties(page).locator(".bio-properties-panel-header-label")).to_have_text("Describe the problem")
    expect(page.get_by_test_id("lint-problems")).to_contain_text("label-required")

    properties(page).get_by_label("Form", exact=True).select_option("capa_problem.schema.json")
    validate(page)
    expect(page.get_by_text("The diagram is valid: it can be deployed.")).to_be_visible()
    expect(page.get_by_test_id("server-problems").locator('li[data-severity="error"]')).to_have_count(0)

    # Deploy with a change note.
    page.get_by_role("button", name="Deploy…").click()
    dialog = page.get_by_role("dialog", name="Deploy as the next version")
    dialog.get_by_label("Change note (required)").fill("Problem description due in 3 days instead of 2.")
    dialog.get_by_role("button", name="Deploy", exact=True).click()
    expect(dialog.get_by_text("capa deployed as version 2.")).to_be_visible()
    dialog.get_by_role("link", name="Open version 2").click()
    expect(page).to_have_url(re.compile(r"/processes/capa/2$"))

    # The studio lists version 2 with its note; the diff shows the changed due time.
    page.get_by_role("link", name="Studio").click()
    versions = page.get_by_test_id("versions-capa")
    expect(versions.locator('tr[data-version="2"]')).to_contain_text("Problem description due in 3 days instead of 2.")
    versions.get_by_role("link", name="Compare v1 → v2").click()
    expect(page.get_by_test_id("studio-diff")).to_have_attribute("data-studio-state", "ready", timeout=20_000)
    change = page.get_by_test_id("diff-table").locator('tr[data-kind="changed"][data-element="describe_problem"]')
    expect(change).to_contain_text("dueIn")
    expect(change).to_contain_text("P2D")
    expect(change).to_contain_text("P3D")
    expect(page.locator('[data-diff-canvas="to"] g.djs-element.diff-changed[data-element-id="describe_problem"]')
           ).to_have_count(1)

    # Version 2 is pending: new instances stay on version 1 until QA - not its author - approves it with an
    # electronic signature on its review page.
    page.goto("/processes/capa/2/review")
    expect(page.get_by_test_id("status")).to_have_text("pending approval")
    expect(page.get_by_role("button", name="Sign and approve")).to_have_count(0)
    page.goto("/instances/start?process=capa")
    expect(page.get_by_label("Procedure")).to_contain_text("(v1)")
    sign_out(page)
    sign_in(page, "head")
    page.goto("/processes/capa/2/review")
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Sign and approve").click()
    expect(page.get_by_text("Version 2 approved with your electronic signature.")).to_be_visible()
    expect(page.get_by_test_id("status")).to_have_text("effective")

    # New instances start on version 2; the demo CAPA started before stays on version 1.
    page.goto("/instances/start?process=capa")
    expect(page.get_by_label("Procedure")).to_contain_text("(v2)")
    page.get_by_label("Title").fill("CAPA on version 2")
    page.get_by_role("button", name="Start", exact=True).click()
    expect(page.get_by_role("heading", name="Describe the problem", level=1)).to_be_visible()
    page.goto("/instances/?process=capa")
    page.get_by_role("link", name="CAPA on version 2").first.click()
    expect(page.get_by_text(re.compile(r"· version 2 ·"))).to_be_visible()
    page.goto("/instances/?process=capa")
    page.get_by_role("link", name="CAPA: burr on catheter hub (demo)").first.click()
    expect(page.get_by_text(re.compile(r"· version 1 ·"))).to_be_visible()
    assert not errors, errors


def test_staff_get_the_403_page_and_no_studio_link(page: Page):
    sign_in(page, "qa")
    expect(page.get_by_role("link", name="Studio")).to_have_count(0)
    response = page.goto("/studio/")
    assert response is not None and response.status == 403
    expect(page.get_by_text("The studio is for process owners and administrators.")).to_be_visible()


def test_leaving_with_unsaved_changes_asks_first(page: Page):
    sign_in(page, "owner")
    open_editor(page, "/studio/processes/capa/1")
    select_element(page, "describe_problem", "Describe the problem")
    properties(page).get_by_label("Due in (ISO 8601 duration)").fill("P4D")
    expect(page.get_by_test_id("studio-editor")).to_have_attribute("data-studio-dirty", "true")
    asked = []

    def answer(dialog):
        asked.append(dialog.type)
        dialog.dismiss()  # stay on the page

    page.on("dialog", answer)
    page.get_by_role("link", name="Inbox").click()
    expect(page.get_by_test_id("studio-editor")).to_be_visible()
    assert asked == ["beforeunload"]


def test_a_saved_draft_is_named_in_the_heading_and_compares_with_its_base(page: Page):
    errors = watch_errors(page)
    sign_in(page, "owner")
    page.goto("/studio/")
    page.get_by_test_id("versions-capa").get_by_role("link", name="Open v1").click()
    expect(page.get_by_test_id("studio-editor")).to_have_attribute("data-studio-state", "ready", timeout=20_000)
    expect(page.get_by_test_id("studio-title")).to_have_text("CAPA (corrective and preventive action) v1")
    expect(page.get_by_test_id("compare-with-base")).to_be_hidden()
    select_element(page, "describe_problem", "Describe the problem")
    properties(page).get_by_label("Due in (ISO 8601 duration)").fill("P3D")
    page.get_by_role("button", name="Save draft").click()
    expect(page.get_by_test_id("studio-title")).to_have_text(
        re.compile(r"^CAPA \(corrective and preventive action\): draft #\d+$"))
    page.get_by_role("link", name="Compare with its base (v1)").click()
    expect(page.get_by_test_id("studio-diff")).to_have_attribute("data-studio-state", "ready", timeout=20_000)
    change = page.get_by_test_id("diff-table").locator('tr[data-kind="changed"][data-element="describe_problem"]')
    expect(change).to_contain_text("P3D")
    assert not errors, errors

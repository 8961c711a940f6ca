"""The zh-CN sweep: every page each demo role reaches, rendered in Chinese, shows no English UI text.

A database with a played example of every shipped procedure (a closed CAPA, a decided recall, a lot release, a
change control and a supplier return under way); each demo user signs in with the page language zh-CN and the test
follows every link it is shown (one or two pages per URL pattern), reads the visible text (not <script>, <style>,
<code>, <pre> or attributes other than the ones a user reads: title, placeholder, aria-label, alt) and fails naming
page and string for an English word that is neither data the test entered nor on the short allow-list below.
The 403, 404 and 500 pages, the viewer's diagram labels and the studio's handler descriptions are checked too.
"""
from __future__ import annotations

import html
import os
import re
from collections import deque
from datetime import date
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from lxml import etree

from app.extensions import db
from app.models import (
    Customer,
    GenealogyEdge,
    Inspection,
    MaterialLot,
    ProcessDefinition,
    Product,
    ProductLot,
    Shipment,
    Supplier,
    User,
)
from app.models.sterilization import SterilizationBatch, SterilizationLoad
from app.services import demo
from app.services.lots import lots as lot_service
from app.services.procedures import supplier_returns
from app.services.workflow import instances, tasks
from tests.conftest import T0, login
from tests.integration import capa_steps, recall_steps
from tests.integration.services import scenarios

# Words that stay as they are in a Chinese page, each for a reason:
ALLOWED_WORDS = {
    "Qualiflow",  # the product's name
    "BPMN", "DMN", "GS1", "UDI", "DI", "PI", "GTIN", "SSCC",  # standards and their identifiers
    "CAPA", "SCAR", "RMA", "FSCA", "NMPA", "FDA", "MDR", "EU", "CFR", "ISO", "GSP", "MPA",  # regulatory terms
    "SHA", "CSV", "XLSX", "PDF", "ZIP", "zip", "docx", "JSON",  # file formats and hashes
    "API", "OpenAPI", "Swagger", "Bearer", "ID", "URL",  # the REST API's terms
    "UTC", "CST",  # time zones as the plant clock prints them
    "QA",  # as Chinese quality staff say it (QA 人员, QA 放行人)
    "II", "III",  # device classes (II 类, III 类)
    "REST", "ERP", "HTTP", "Authorization", "JavaScript", "Schema",  # technologies; JSON Schema and UI Schema are names
    "UI",  # UI Schema, the form layout file's name
    "HOLIDAYS",  # a setting's name
    "RH",  # %RH, the unit of relative humidity
    "kGy", "EO",  # the unit of a radiation dose; ethylene oxide sterilization (环氧乙烷 EO 灭菌)
    "Camunda", "Modeler", "Signavio", "SpiffArena", "BfArM",  # products and an authority named as examples
    "CN", "US",  # country codes
    "English",  # the language switch names each language in itself: English / 简体中文
}
# Text the test itself entered (instance data, lot data, user names) is data, not UI: every string in these.
DATA_SOURCES = [capa_steps.PROBLEM, capa_steps.CONTAINMENT, capa_steps.INVESTIGATION, capa_steps.PLAN,
                capa_steps.ACTION_DONE, capa_steps.MEASURED, scenarios.APPROVE, recall_steps.TRIGGER,
                recall_steps.ASSESSMENT, recall_steps.APPROVE,
                {"t": "Burr on hub", "r": "Leaking infusion sets", "c": "Sealing", "note": "test setup",
                 "release": "Initial release of the shipped procedures at installation (test setup)"}]
CHANGE_REQUEST = {"title": "New sealing temperature", "change_type": "process", "requested_on": "2026-11-23",
                  "description": "Raise the pouch sealing temperature from 180 to 185 C.",
                  "reason": "Seal strength near the lower limit", "lot_numbers": "Z1"}
RETURN_IDENTIFY = {"source": "incoming_inspection", "material_lots": "MZ1", "severity": "major",
                   "found_on": "2026-11-23", "defect_description": "Black specks in 12 of 50 samples.",
                   "reference": "IQC-2026-118"}
DATA_SOURCES += [CHANGE_REQUEST, RETURN_IDENTIFY]
DUMP = Path(os.environ["ZH_DUMP"]) if os.environ.get("ZH_DUMP") else None  # a folder to keep the pages read
IN_PROGRESS: tuple[str, ...] = ()  # paths of pages still being built, left out until their translations land
IN_PROGRESS_PAGES = re.compile(r"(?!)")  # matches no page
IN_PROGRESS_PROCEDURES: tuple[str, ...] = ()  # keys of procedures whose names are read as data meanwhile
BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
EVERY_ONE = {"/tasks/N", "/instances/N"}  # each step's form and each procedure's instance page differ: read them all
SKIPPED_PATHS = (*IN_PROGRESS, "/static/", "/language/", "/logout", "/instances/documents/", "/api/")
SKIPPED_SUFFIXES = (".csv", ".xlsx", ".zip", ".bpmn", ".json", ".pdf", ".docx")
VISIBLE_ATTRIBUTES = ("title", "placeholder", "aria-label", "alt")
HIDDEN_TAGS = {"script", "style", "code", "pre", "template", "textarea"}
VOID_TAGS = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
WORD = re.compile(r"[A-Za-z][A-Za-z'’]*[A-Za-z]")
# A chunk (between spaces) with a digit, an @, a dot inside or an underscore is an identifier: a lot or record
# number, a date, a hash, an e-mail address, a file name or folder, a process key or element id, a JSON Schema
# keyword (x-checks, ui:order); a command line (flask evidence verify); a file column's name glossed in
# Chinese right after it: customer（收货方编码）.
IDENTIFIER = re.compile(r"\S*(\d|@|\.\w|_|\w:\w|\w/|\bx-\w)\S*|\bflask( [a-z]+)+|[A-Za-z]+(?=（)")


def _data_strings(extra: tuple[str, ...] = ()) -> re.Pattern:
    found: set[str] = set()

    def walk(value) -> None:
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, str) and value:
            found.add(value)
    for source in DATA_SOURCES:
        walk(source)
    # Option codes (lower-case words) are no data: a page shows their labels; nor are one or two letters.
    texts = {value for value in found if len(value) > 2 and not re.fullmatch(r"[a-z_]+", value)}
    texts.update(name for username, full_name, *_ in demo.USERS for name in (username, full_name))
    texts.update(extra)
    texts = sorted(texts, key=len, reverse=True)
    return re.compile("|".join(rf"(?<!\w){re.escape(value)}(?!\w)" for value in texts))


class _Page(HTMLParser):
    """The visible text chunks of a page and the links it shows."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hidden = 0
        self.stack: list[bool] = []
        self.texts: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        values = dict(attrs)
        if tag == "a" and values.get("href"):
            self.links.append(values["href"])
        hidden = tag in HIDDEN_TAGS or "hidden" in values or values.get("translate") == "no"
        if not self.hidden and not hidden:
            self.texts.extend(values[name] for name in VISIBLE_ATTRIBUTES if values.get(name))
            if tag == "input" and values.get("type") in ("submit", "button") and values.get("value"):
                self.texts.append(values["value"])
        if tag in VOID_TAGS:
            return
        self.stack.append(hidden)
        self.hidden += hidden

    def handle_endtag(self, tag) -> None:
        if tag in VOID_TAGS or not self.stack:
            return
        self.hidden -= self.stack.pop()

    def handle_data(self, data) -> None:
        if not self.hidden and data.strip():
            self.texts.append(data.strip())


def english(text: str, data: re.Pattern) -> list[str]:
    """The English words of a visible text, once data, identifiers and allowed words are taken out."""
    text = data.sub(" ", text)
    text = IDENTIFIER.sub(" ", text)
    return [word for word in WORD.findall(text) if word not in ALLOWED_WORDS]


def _pattern(url: str) -> str:
    parts = urlsplit(url)
    return re.sub(r"/\d+", "/N", parts.path) + ("?" if parts.query else "")


def _followable(href: str) -> bool:
    parts = urlsplit(href)
    return (not parts.scheme and not parts.netloc and parts.path.startswith("/")
            and not parts.path.startswith(SKIPPED_PATHS) and not parts.path.endswith(SKIPPED_SUFFIXES)
            and "lang=" not in parts.query and not IN_PROGRESS_PAGES.search(parts.path))


def crawl(client, data: re.Pattern, problems: dict[str, str], start: tuple[str, ...] = ("/",)) -> set[str]:
    """Follow every link from the start pages (two pages per URL pattern, one of them with a query string);
    record each English text once with the first page that showed it. Return the pages read."""
    seen: dict[str, int] = {}
    queue = deque(start)
    read: set[str] = set()
    while queue:
        url = queue.popleft()
        if url in read:
            continue
        pattern, parent = _pattern(url), urlsplit(url).path.rsplit("/", 1)[0]
        numbered = pattern.endswith("/N")  # four pages of a folder by name (forms, lot kinds), any number by id
        limit = 1 if pattern.endswith("?") else 50 if pattern in EVERY_ONE else 2
        if seen.get(pattern, 0) >= limit or (seen.get(parent, 0) >= 4 and not numbered):
            continue
        seen[pattern] = seen.get(pattern, 0) + 1
        seen[parent] = seen.get(parent, 0) + (not pattern.endswith("?") and not numbered)
        read.add(url)
        response = client.get(url)
        if response.status_code in (301, 302, 303) or not response.mimetype == "text/html":
            continue
        page = _Page()
        page.feed(response.get_data(as_text=True))
        if DUMP:
            (DUMP / (re.sub(r"\W", "_", url) + ".html")).write_text(response.get_data(as_text=True))
        for text in page.texts:
            if english(text, data) and text not in problems:
                problems[text] = f"{url} ({response.status_code})"
        queue.extend(link.split("#")[0] for link in page.links if _followable(link.split("#")[0]))
    return read


def _plant() -> dict[str, int]:
    """Lot data in Chinese (as a Chinese plant enters it): a product lot shipped to a distributor and a hospital,
    one in quarantine awaiting release, one for a change, a material lot that failed incoming inspection."""
    supplier = Supplier(code="SZ1", name="宁波树脂", contact_name="周雷", email="quality@resin.example",
                        language="zh-CN")
    product = Product(name="一次性使用输液器", model="IS-20", gtin="06901234567892",
                      registration_no="国械注准20263140001", device_class="II", sterile=True)
    db.session.add_all([supplier, product])
    db.session.flush()
    material = MaterialLot(supplier=supplier, material="聚氯乙烯树脂", lot_number="M1", status="released",
                           received_on=date(2026, 5, 1), expiry_on=date(2028, 5, 1))
    returned = MaterialLot(supplier=supplier, material="聚氯乙烯树脂", lot_number="MZ1", status="released",
                           received_on=date(2026, 11, 20), expiry_on=date(2028, 11, 20))
    made = {name: ProductLot(product=product, lot_number=name, quantity=500, status=status,
                             manufactured_on=date(2026, 6, 1), expiry_on=date(2029, 5, 31),
                             sterilization_batch=f"ST-{name}", batch_record_complete=True, labels_checked=True)
            for name, status in (("L1", "released"), ("Q1", "quarantine"), ("Z1", "released"))}
    db.session.add_all([material, returned, *made.values()])
    db.session.flush()
    db.session.add(GenealogyEdge(product_lot_id=made["L1"].id, material_lot_id=material.id, quantity=1))
    # Sterilization records: L1's batch released (signed), Q1's EO batch with its biological indicator incubating.
    db.session.add(SterilizationBatch(batch_number="ST-L1", method="gamma", processed_on=date(2026, 6, 2),
                                      parameters={"dose_min_kgy": 26.1, "dose_max_kgy": 34.8},
                                      limits={"dose_min_kgy": [25, None], "dose_max_kgy": [None, 40]},
                                      status="released", signed_meaning="released", signed_name="Rita Releaser",
                                      signed_hash="0" * 64, decided_at=T0,
                                      load=[SterilizationLoad(product_lot_id=made["L1"].id, quantity=500)]))
    db.session.add(SterilizationBatch(batch_number="ST-Q1", method="eo", processed_on=date(2026, 6, 2),
                                      parameters={"temperature_c": 54, "humidity_rh": 60, "gas_mg_l": 600,
                                                  "exposure_minutes": 200},
                                      limits={"temperature_c": [45, 60], "humidity_rh": [40, 80],
                                              "gas_mg_l": [400, 1000], "exposure_minutes": [240, None]},
                                      bi_result="pending", status="pending",
                                      load=[SterilizationLoad(product_lot_id=made["Q1"].id, quantity=500)]))
    db.session.add(Inspection(stage="final", product_lot_id=made["Q1"].id, result="pass",
                              inspected_on=date(2026, 11, 3)))
    db.session.add(Inspection(stage="incoming", material_lot_id=returned.id, result="fail", results="黑点 12/50",
                              inspected_on=date(2026, 11, 23), inspector="陈静"))
    distributor = Customer(code="D1", name="江苏医疗器械经营公司", kind="distributor", region="江苏",
                           contact="陈杰", email="d1@example.com")
    hospital = Customer(code="H1", name="苏州市立医院", kind="hospital", region="江苏", contact="吴医生",
                        email="h1@example.com")
    db.session.add_all([distributor, hospital])
    db.session.flush()
    db.session.add_all([Shipment(product_lot_id=made["L1"].id, customer_id=distributor.id, quantity=100,
                                 shipped_on=date(2026, 7, 1), document_no="DN-1"),
                        Shipment(product_lot_id=made["L1"].id, customer_id=hospital.id, quantity=20,
                                 from_customer_id=distributor.id, shipped_on=date(2026, 7, 2), document_no="DN-2")])
    db.session.commit()
    return {"Q1": made["Q1"].id, "MZ1": returned.id}


@pytest.fixture
def played(seeded, user):
    """One example of each shipped procedure, played through the services."""
    ids = _plant()
    scenarios.close_capa(user, now=T0)
    capa_steps.run_capa_to_approval(user, now=T0)
    trigger = dict(recall_steps.TRIGGER, product_lots="L1")
    recall_steps.decide(user, T0, trigger=trigger)
    release = lot_service.start_release(ids["Q1"], user("qa"), now=T0)
    tasks.complete_task(capa_steps.ready_task(release.id, "request_release").id, {"lot_number": "Q1"}, user("qa"),
                        now=T0)
    change = instances.start_instance("change_control", user("qa"), {"title": "Sealing"}, title="Sealing",
                                      language="en", now=T0)
    tasks.complete_task(capa_steps.ready_task(change.id, "request").id, CHANGE_REQUEST, user("qa"), now=T0)
    returned = supplier_returns.start_return(user("qa"), ids["MZ1"], now=T0)
    tasks.complete_task(capa_steps.ready_task(returned.id, "identify").id, RETURN_IDENTIFY, user("qa"), now=T0,
                        lang="en")
    return ids


def _as_chinese(client, username: str) -> None:
    db.session.execute(db.update(User).where(User.username == username).values(language="zh-CN"))
    db.session.commit()
    login(client, username)


def _report(problems: dict[str, str]) -> str:
    return "\n".join(f"  {page}: {text!r}" for text, page in sorted(problems.items(), key=lambda p: p[1]))


def test_every_page_each_role_reaches_is_chinese(app, client, played):
    """Every demo user in turn, on one played database (one crawl each: the pages differ by role). The `client`
    fixture makes every request start afresh (page language, signed-in user), as on a real server."""
    in_progress = tuple(db.session.scalars(db.select(ProcessDefinition.name).where(
        ProcessDefinition.key.in_(IN_PROGRESS_PROCEDURES))))
    data = _data_strings(in_progress)
    found: dict[str, dict[str, str]] = {}
    for username, *_ in demo.USERS:
        client = app.test_client()
        _as_chinese(client, username)
        problems: dict[str, str] = {}
        read = crawl(client, data, problems)
        assert len(read) > 5, (username, sorted(read))
        if problems:
            found[username] = problems
    assert not found, "English text on zh-CN pages:\n" + "\n".join(
        f"{username}:\n{_report(problems)}" for username, problems in found.items())


def test_error_pages_and_refusals_are_chinese(app, client, played):
    """403 (a refusal of a service), 404 (no such page or record) and 500 (a failure) in zh-CN."""

    @app.get("/zh-sweep-failure")
    def failure():
        raise RuntimeError("a failure the page must not show")

    app.config["PROPAGATE_EXCEPTIONS"] = False
    _as_chinese(client, "prod")
    data = _data_strings()
    pages = {"/studio/": 403, "/no-such-page": 404, "/instances/999999": 404, "/zh-sweep-failure": 500}
    for url, status in pages.items():
        response = client.get(url)
        assert response.status_code == status, url
        page = _Page()
        page.feed(response.get_data(as_text=True))
        english_texts = [text for text in page.texts if english(text, data)]
        assert not english_texts, f"{url} ({status}): {english_texts}"
    assert "没有此页面或记录" in client.get("/no-such-page").get_data(as_text=True)
    assert "系统内部出错" in client.get("/zh-sweep-failure").get_data(as_text=True)
    assert "a failure the page must not show" not in client.get("/zh-sweep-failure").get_data(as_text=True)


def test_a_refusal_of_the_services_is_chinese(app, client, played):
    """A 403 from the task service (a step of another group) and a 409 (claimed by someone else), in zh-CN."""
    _as_chinese(client, "prod")
    approval = capa_steps.ready_task(2, "qa_approval")
    response = client.post(f"/tasks/{approval.id}/claim")
    assert response.status_code == 403
    assert "此任务属于用户组 'qa_management'，您不在该组中。" in html.unescape(response.get_data(as_text=True))
    head, releaser = app.test_client(), app.test_client()
    _as_chinese(head, "head")
    assert head.post(f"/tasks/{approval.id}/claim").status_code == 302
    _as_chinese(releaser, "releaser")
    response = releaser.post(f"/tasks/{approval.id}/claim")
    assert response.status_code == 409 and "此任务已由 Helen Head 认领。" in response.get_data(as_text=True)


def test_a_wrong_signature_password_is_refused_in_chinese(client, played):
    _as_chinese(client, "head")
    approval = capa_steps.ready_task(1, "qa_approval") or capa_steps.ready_task(2, "qa_approval")
    response = client.post(f"/tasks/{approval.id}/complete", data={**scenarios.APPROVE, "password": "wrong"})
    assert response.status_code == 401
    assert "密码错误，任务未签署。" in response.get_data(as_text=True)


def test_the_viewer_names_steps_and_lanes_in_chinese(client, played):
    """The diagram the viewer draws on a Chinese page: every named element and lane in Chinese; the download
    (without labels) stays the diagram's own text."""
    _as_chinese(client, "owner")
    for key in ("capa", "recall", "lot_release", "change_control", "supplier_return"):
        page = client.get(f"/processes/{key}/1").get_data(as_text=True)
        assert 'data-labels="zh-CN"' in page  # the viewer asks for the diagram with these labels
        root = etree.fromstring(client.get(f"/processes/{key}/1/diagram.bpmn?labels=zh-CN").data)
        named = [(element.get("id"), element.get("name")) for element in root.iter(f"{{{BPMN}}}*")
                 if element.get("name") and not element.tag.endswith(("inputDataItem", "outputDataItem"))]
        assert named
        untranslated = [(i, name) for i, name in named if english(name, _data_strings())]
        assert not untranslated, f"{key}: {untranslated}"
        raw = etree.fromstring(client.get(f"/processes/{key}/1/diagram.bpmn").data)
        # The download keeps the lane's group as the file names it.
        assert any(element.get("name") == "qa" for element in raw.iter(f"{{{BPMN}}}lane"))


def test_studio_handler_descriptions_are_chinese(client, played):
    _as_chinese(client, "owner")
    handlers = client.get("/studio/api/handlers", headers={"Accept": "application/json"}).get_json()["handlers"]
    data = _data_strings()
    untranslated = [(h["id"], h["description"]) for h in handlers if english(h["description"], data)]
    assert not untranslated

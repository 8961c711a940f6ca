"""The scrap / destruction procedure end to end: a request (lot, location, quantity, method, witness) checked against
the stock, the head of QA's e-signed approval (four eyes, wrong password refused), the stock taken off and the lot
scrapped when none is left, the destruction record in English and Chinese read back with python-docx."""
from __future__ import annotations

from datetime import timedelta

import pytest

from app.exceptions import FormInvalid, PermissionDenied, SignatureRejected
from app.extensions import db
from app.models import AuditEvent, Document, ProductLot, ScrapRecord, Signature, Task, User
from app.services import demo
from app.services.workflow import instances, tasks
from tests.conftest import T0, login
from tests.integration.document_checks import docx_text, empty_fields, raw_codes
from tests.integration.stock.conftest import level, put_lot

REQUEST = {"lot_number": "SCR-1", "location": "A-01", "quantity": 30, "method": "incineration",
           "witness": "Zhou Jie, warehouse supervisor", "reason": "Expired stock, locked by the expiry job"}


def ready(instance_id: int, element: str) -> Task | None:
    return db.session.scalar(db.select(Task).where(Task.instance_id == instance_id, Task.element_id == element,
                                                   Task.state == "ready"))


def complete(instance_id: int, element: str, data: dict, who, password: str | None = None, lang: str = "en"):
    task = ready(instance_id, element)
    assert task is not None, f"no ready task {element}"
    return tasks.complete_task(task.id, data, who, password=password, now=T0 + timedelta(hours=1), lang=lang)


@pytest.fixture
def expired_lot(depot):
    lot = put_lot(depot["product"], "SCR-1", 30, "A-01", status="expired", expiry=-10)
    put_lot(depot["product"], "SCR-1", 10, "A-02")
    return lot


def start(user, who: str = "qa"):
    return instances.start_instance("scrap", user(who), {}, title="Scrap SCR-1", now=T0)


def test_scrap_is_requested_signed_and_takes_the_stock_off_until_the_lot_is_gone(expired_lot, user):
    instance = start(user)
    complete(instance.id, "request", REQUEST, user("qa"))
    # Four eyes: the requester cannot approve; a wrong password is refused and nothing is destroyed.
    with pytest.raises(PermissionDenied):
        complete(instance.id, "approve", {"approval": "approve"}, user("qa"), demo.DEMO_PASSWORD)
    db.session.rollback()
    with pytest.raises(SignatureRejected):
        complete(instance.id, "approve", {"approval": "approve"}, user("head"), "wrong password")
    db.session.rollback()
    assert level("SCR-1", "A-01") == 30
    complete(instance.id, "approve", {"approval": "approve"}, user("head"), demo.DEMO_PASSWORD)

    db.session.expire_all()
    assert instance.status == "completed", instance.status
    assert (level("SCR-1", "A-01"), level("SCR-1", "A-02")) == (0, 10)
    lot = db.session.get(ProductLot, expired_lot.id)
    assert lot.status == "expired"  # 10 are still in stock at A-02
    record = db.session.scalar(db.select(ScrapRecord))
    assert (record.quantity, record.method, record.witness, record.approved_by, record.lot_scrapped) == (
        30, "incineration", "Zhou Jie, warehouse supervisor", "Helen Head", False)
    signature = db.session.scalar(db.select(Signature).where(Signature.instance_id == instance.id))
    assert (signature.printed_name, signature.meaning) == ("Helen Head", "approved")
    event = db.session.scalar(db.select(AuditEvent).where(AuditEvent.action == "stock.scrapped"))
    assert event.new["scrapped"] == 30 and event.old == {"quantity": 30, "location": "A-01"}

    # The rest at A-02: now the whole lot is gone and it becomes scrapped.
    second = start(user)
    complete(second.id, "request", {**REQUEST, "location": "A-02", "quantity": 10}, user("qa"))
    complete(second.id, "approve", {"approval": "approve"}, user("head"), demo.DEMO_PASSWORD)
    db.session.expire_all()
    assert db.session.get(ProductLot, expired_lot.id).status == "scrapped"
    assert db.session.scalar(db.select(ScrapRecord).where(ScrapRecord.instance_id == second.id)).lot_scrapped


@pytest.mark.parametrize(("change", "field", "message"), [
    ({"lot_number": "NOPE"}, "lot_number", "There is no product lot NOPE."),
    ({"location": "B-01"}, "location", "Lot SCR-1 has no stock at B-01."),
    ({"quantity": 31}, "quantity", "Only 30 of lot SCR-1 are at A-01; 31 cannot be scrapped."),
    ({"quantity": 0}, "quantity", None),
    ({"method": "burying"}, "method", None),
    ({"witness": ""}, "witness", None),
])
def test_a_request_the_stock_cannot_cover_is_refused_at_the_form(expired_lot, user, change, field, message):
    instance = start(user)
    with pytest.raises(FormInvalid) as refused:
        complete(instance.id, "request", {**REQUEST, **change}, user("qa"))
    assert field in refused.value.errors
    if message:
        assert refused.value.errors[field] == [message]
    db.session.rollback()
    assert ready(instance.id, "request") is not None and level("SCR-1", "A-01") == 30


def test_the_request_is_refused_in_chinese_on_a_chinese_form(expired_lot, user):
    instance = start(user)
    with pytest.raises(FormInvalid) as refused:
        complete(instance.id, "request", {**REQUEST, "quantity": 31}, user("qa"), lang="zh-CN")
    assert refused.value.errors["quantity"] == ["批次 SCR-1 在 A-01 仅有 30，无法报废 31。"]


def test_a_rejected_scrap_keeps_the_stock(expired_lot, user):
    instance = start(user)
    complete(instance.id, "request", REQUEST, user("qa"))
    complete(instance.id, "approve", {"approval": "reject", "approval_comment": "Return to the supplier instead"},
             user("head"), demo.DEMO_PASSWORD)
    db.session.expire_all()
    assert instance.status == "completed" and level("SCR-1", "A-01") == 30
    assert db.session.scalar(db.select(db.func.count()).select_from(ScrapRecord)) == 0
    assert db.session.scalar(db.select(db.func.count()).select_from(Document).where(
        Document.instance_id == instance.id)) == 0


@pytest.mark.parametrize(("language", "expected"), [
    ("en", ["Scrap / Destruction Record", "SCR-1", "A-01", "Incineration", "Zhou Jie, warehouse supervisor",
            "Approval (head of QA)", "Helen Head", "Expired stock, locked by the expiry job"]),
    ("zh-CN", ["报废 / 销毁记录", "SCR-1", "A-01", "焚烧", "Zhou Jie, warehouse supervisor", "批准（质量负责人）",
               "Helen Head", "销毁数量"]),
])
def test_the_destruction_record_reads_back_in_both_languages(expired_lot, user, language, expected):
    db.session.get(User, user("qa").id).language = language
    db.session.commit()
    instance = start(user)
    complete(instance.id, "request", REQUEST, user("qa"))
    complete(instance.id, "approve", {"approval": "approve"}, user("head"), demo.DEMO_PASSWORD)
    record = db.session.scalar(db.select(Document).where(Document.instance_id == instance.id))
    assert record.kind == "scrap_record" and record.template_name == f"scrap_record.{language}.docx"
    text = docx_text(record.content)
    for part in expected:
        assert part in text, part
    assert "30" in text and "{{" not in text and "{%" not in text
    assert empty_fields(record) == [] and raw_codes(record) == []


def test_destroy_from_the_stock_page_starts_the_procedure_filled_in_and_the_lot_page_shows_the_record(
        expired_lot, user, client):
    login(client, "qa")
    client.get("/language/en")
    listed = client.get("/stock/?location=A-01").get_data(as_text=True)
    assert f'data-testid="scrap-{expired_lot.id}-A-01"' in listed
    started = client.post("/stock/scrap", data={"lot_id": expired_lot.id, "location": "A-01", "next": "/stock/"})
    assert started.status_code == 302 and "/tasks/" in started.headers["Location"]
    instance = db.session.scalar(db.select(Task.instance_id).where(Task.element_id == "request",
                                                                   Task.state == "ready"))
    task_page = client.get(started.headers["Location"]).get_data(as_text=True)
    assert 'value="SCR-1"' in task_page and 'value="A-01"' in task_page and 'value="30"' in task_page
    complete(instance, "request", REQUEST, user("qa"))
    complete(instance, "approve", {"approval": "approve"}, user("head"), demo.DEMO_PASSWORD)
    lot_page = client.get(f"/lots/product-lots/{expired_lot.id}").get_data(as_text=True)
    assert 'data-testid="scrap-records"' in lot_page and "incineration" in lot_page and "Helen Head" in lot_page
    assert "WH-A" in lot_page
    # Nothing left at A-01: a second start is refused with the reason, nothing started.
    again = client.post("/stock/scrap", data={"lot_id": expired_lot.id, "location": "A-01", "next": "/stock/"},
                        follow_redirects=True)
    assert "Lot SCR-1 has no stock at A-01." in again.get_data(as_text=True)
    assert client.post("/stock/scrap", data={"lot_id": "x", "location": ""}).status_code == 400


def test_an_auditor_sees_the_stock_but_no_destroy_button(expired_lot, client):
    login(client, "auditor")
    page = client.get("/stock/").get_data(as_text=True)
    assert ">SCR-1<" in page and 'data-testid="scrap-' not in page
    assert client.post("/stock/scrap", data={"lot_id": expired_lot.id, "location": "A-01"},
                       follow_redirects=True).status_code == 200
    assert db.session.scalar(db.select(db.func.count()).select_from(ScrapRecord)) == 0
    assert ready_count() == 0


def ready_count() -> int:
    return db.session.scalar(db.select(db.func.count()).select_from(Task).where(Task.state == "ready"))

"""The shipped lot release procedure through the service layer: checks, CAPA on failure, review, the
authorised releaser's four-eyes signature, the certificate and the released status."""
from __future__ import annotations

from datetime import date, timedelta
from io import BytesIO

import docx
import pytest

from app.exceptions import Conflict, FormInvalid, PermissionDenied
from app.extensions import db
from app.models import Document, Inspection, ProcessInstance, Product, ProductLot, Signature, Task
from app.models.sterilization import SterilizationBatch
from app.services import demo
from app.services.lots import imports, lots
from app.services.workflow import tasks
from tests.conftest import T0

# Every path also runs cold: each engine step as in a freshly started process.
pytestmark = pytest.mark.usefixtures("engine_caches")

HOUR = timedelta(hours=1)
REVIEW = {"batch_record_reviewed": True, "review_comment": "Batch record complete, no deviation."}
RELEASE = {"decision": "approve", "comment": "Released for distribution."}


@pytest.fixture
def lot(seeded):
    """A sterile lot in quarantine whose batch record, final inspection and labels are all in order."""
    product = Product(name="Syringe 5 ml", model="S5", gtin="06901234567892", sterile=True)
    lot = ProductLot(product=product, lot_number="Q1", quantity=1000, status="quarantine",
                     manufactured_on=date(2026, 11, 1), expiry_on=date(2029, 10, 31), sterilization_batch="EO-7",
                     batch_record_complete=True, labels_checked=True)
    db.session.add_all([product, lot])
    db.session.flush()
    db.session.add(Inspection(stage="final", product_lot_id=lot.id, result="pass", inspected_on=date(2026, 11, 3)))
    # The lot's sterilization batch, released by QA (how it is signed: test_sterilization.py).
    db.session.add(SterilizationBatch(batch_number="EO-7", method="eo", processed_on=date(2026, 11, 2),
                                      bi_result="pass", status="released", signed_meaning="released",
                                      signed_name="Rita Releaser"))
    db.session.commit()
    return lot


def _ready(instance_id: int, element: str) -> Task | None:
    return db.session.scalar(db.select(Task).where(Task.instance_id == instance_id, Task.element_id == element,
                                                   Task.state == "ready"))


def _complete(instance_id, element, data, username, user, signed=False, now=T0):
    task = _ready(instance_id, element)
    assert task is not None, f"no ready task {element}"
    return tasks.complete_task(task.id, data, user(username), password=demo.DEMO_PASSWORD if signed else None,
                               now=now)


def _start(lot, user):
    instance = lots.start_release(lot.id, user("qa"), now=T0)
    _complete(instance.id, "request_release", {"lot_number": lot.lot_number}, "qa", user)
    return instance


def test_a_lot_in_order_is_reviewed_released_and_certified(lot, user):
    instance = _start(lot, user)
    _complete(instance.id, "review_batch_record", REVIEW, "qa", user, signed=True)
    _complete(instance.id, "release", RELEASE, "releaser", user, signed=True, now=T0 + HOUR)
    db.session.expire_all()
    assert db.session.get(ProductLot, lot.id).status == "released"
    assert db.session.get(ProcessInstance, instance.id).status == "completed"
    signatures = db.session.scalars(db.select(Signature).where(Signature.instance_id == instance.id)
                                    .order_by(Signature.id)).all()
    assert [(s.meaning, s.printed_name) for s in signatures] == [("reviewed", "Li Na"), ("released", "Rita Releaser")]
    certificate = db.session.scalar(db.select(Document).where(Document.instance_id == instance.id,
                                                              Document.kind == "lot_release_certificate"))
    parsed = docx.Document(BytesIO(certificate.content))
    text = "\n".join([p.text for p in parsed.paragraphs]
                     + [c.text for t in parsed.tables for r in t.rows for c in r.cells])
    assert "Q1" in text and "Syringe 5 ml" in text and "Li Na" in text and "Rita Releaser" in text


def test_the_reviewer_cannot_also_release(lot, user):
    instance = _start(lot, user)
    _complete(instance.id, "review_batch_record", REVIEW, "releaser", user, signed=True)
    with pytest.raises(PermissionDenied, match="Four-eyes"):
        _complete(instance.id, "release", RELEASE, "releaser", user, signed=True)
    assert db.session.get(ProductLot, lot.id).status == "quarantine"


def test_only_an_authorised_releaser_signs_a_release(lot, user):
    instance = _start(lot, user)
    _complete(instance.id, "review_batch_record", REVIEW, "qa", user, signed=True)
    with pytest.raises(PermissionDenied, match="authorised releaser"):
        _complete(instance.id, "release", RELEASE, "head", user, signed=True)


def test_a_sent_back_release_returns_to_the_review(lot, user):
    instance = _start(lot, user)
    _complete(instance.id, "review_batch_record", REVIEW, "qa", user, signed=True)
    with pytest.raises(FormInvalid):
        _complete(instance.id, "release", {"decision": "reject"}, "releaser", user, signed=True)
    _complete(instance.id, "release", {"decision": "reject", "comment": "Sign the deviation DV-3 first."},
              "releaser", user, signed=True)
    assert _ready(instance.id, "review_batch_record") is not None
    assert db.session.get(ProductLot, lot.id).status == "quarantine"


def test_failed_checks_list_each_condition_and_can_open_a_capa(lot, user):
    lot.batch_record_complete = False
    lot.labels_checked = False
    db.session.commit()
    instance = _start(lot, user)
    db.session.expire_all()
    failed = db.session.get(ProcessInstance, instance.id).data["release"]["failed"]
    assert [f["code"] for f in failed] == ["batch_record_complete", "labels_udi"]
    assert _ready(instance.id, "checks_failed") is not None
    with pytest.raises(FormInvalid):  # opening a CAPA needs a description
        _complete(instance.id, "checks_failed", {"action": "open_capa"}, "qa", user)
    _complete(instance.id, "checks_failed", {"action": "open_capa", "comment": "Labels missing on pallet 3."},
              "qa", user)
    db.session.expire_all()
    data = db.session.get(ProcessInstance, instance.id).data
    capa = db.session.get(ProcessInstance, data["capa"]["capa_instance_id"])
    assert capa.version.definition.key == "capa" and "Q1" in capa.title
    assert [f["code"] for f in data["release"]["failed"]] == ["batch_record_complete", "labels_udi",
                                                              "no_open_capa_or_deviation"]
    lot = db.session.get(ProductLot, lot.id)
    lot.batch_record_complete = lot.labels_checked = True
    db.session.commit()
    _complete(instance.id, "checks_failed", {"action": "recheck"}, "qa", user)
    assert _ready(instance.id, "checks_failed") is not None  # the CAPA is still open: the lot stays in quarantine
    assert db.session.get(ProductLot, lot.id).status == "quarantine"


@pytest.mark.parametrize(("number", "message"), [
    ("NOPE", "Unknown product lot NOPE."),
    ("Q1", "Lot Q1 already has a release in progress"),
])
def test_a_release_request_names_a_lot_awaiting_release(lot, user, number, message):
    first = lots.start_release(lot.id, user("qa"), now=T0)
    _complete(first.id, "request_release", {"lot_number": "Q1"}, "qa", user)
    from app.services.workflow import instances
    second = instances.start_instance("lot_release", user("qa"), {"title": "t"}, title="t", language="en", now=T0)
    with pytest.raises(FormInvalid) as err:
        _complete(second.id, "request_release", {"lot_number": number}, "qa", user)
    assert err.value.errors["lot_number"][0].startswith(message)
    with pytest.raises(Conflict):
        lots.start_release(lot.id, user("qa"), now=T0)


def test_a_lot_entered_in_quarantine_starts_its_release(seeded, user):
    product_id = imports.create_record("products", {"gtin": "06901234567892", "name": "Mask"},
                                       user("qa"), now=T0)
    lot_id = imports.create_record("product_lots", {"gtin": "06901234567892", "lot_number": "N1",
                                                    "quantity": 10}, user("qa"), now=T0)
    assert product_id
    instance = db.session.scalar(db.select(ProcessInstance).where(ProcessInstance.title == "Release of lot N1"))
    assert instance is not None and instance.data["lot_number"] == "N1"
    assert db.session.get(ProductLot, lot_id).status == "quarantine"


def test_a_running_release_does_not_hold_its_own_lot(lot, user):
    _start(lot, user)
    assert lots.release_checks(db.session.get(ProductLot, lot.id), date(2026, 11, 23)).failed == []


def test_the_lot_page_starts_a_release_once(client, lot, user):
    from tests.conftest import login
    login(client, "qa")
    page = client.get(f"/lots/product-lots/{lot.id}").get_data(as_text=True)
    assert 'data-testid="start-release"' in page
    response = client.post(f"/lots/product-lots/{lot.id}/release")
    assert response.status_code == 302 and "/tasks/" in response.headers["Location"]
    again = client.post(f"/lots/product-lots/{lot.id}/release", follow_redirects=True)
    assert "already has a release in progress" in again.get_data(as_text=True)
    assert db.session.scalar(db.select(db.func.count(ProcessInstance.id))) == 1


def test_the_api_starts_a_release_and_refuses_a_second(client, lot, user):
    from app.services import users
    token = users.issue_token("qa")
    headers = {"Authorization": f"Bearer {token}"}
    response = client.post(f"/api/v1/product-lots/{lot.id}/release", headers=headers)
    assert response.status_code == 201
    body = response.get_json()
    assert body["title"] == "Release of lot Q1" and body["task_id"]
    again = client.post(f"/api/v1/product-lots/{lot.id}/release", headers=headers)
    assert again.status_code == 409 and "already has a release in progress" in again.get_json()["message"]


@pytest.mark.parametrize(("status", "detail"), [
    ("pending", "sterilization batch EO-7 is pending: not yet released by QA"),
    ("failed", "sterilization batch EO-7 failed"),
])
def test_a_lot_whose_sterilization_batch_is_not_released_fails_its_checks(lot, user, status, detail):
    db.session.scalar(db.select(SterilizationBatch)).status = status
    db.session.commit()
    instance = _start(lot, user)
    db.session.expire_all()
    failed = db.session.get(ProcessInstance, instance.id).data["release"]["failed"]
    assert [(f["code"], f["detail"]) for f in failed] == [("sterilization_record", detail)]
    assert _ready(instance.id, "checks_failed") is not None

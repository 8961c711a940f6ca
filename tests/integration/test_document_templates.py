"""The docx templates outside the recall (test_recall_documents plays those), rendered from a real run of their
procedure in English and Chinese and read back: no empty field, no raw code in a Chinese document."""
from __future__ import annotations

from datetime import timedelta

import pytest

from app.extensions import db
from app.models import Document
from app.services.lots import lots as lot_service
from app.services.workflow import instances, timers
from tests.conftest import T0
from tests.integration import capa_steps
from tests.integration.document_checks import empty_fields, raw_codes
from tests.integration.lots import test_lot_release as release
from tests.integration.services import test_change_control as change
from tests.integration.services.scenarios import approve
from tests.integration.suppliers import conftest as suppliers
from tests.integration.suppliers import test_supplier_return as supplier_return

DAY = timedelta(days=1)
# the plants of the change control, the lot release and the supplier return
lots, lot, supplier_plant = change.lots, release.lot, suppliers.supplier_plant
# The supplier's answer without a word that is also a code ("recalled" in free text is not an untranslated code).
ANSWER = {**supplier_return.ANSWER, "containment": "Stock of lots M1, M2 blocked at our warehouse; 3 t in transit "
                                                   "called back."}


def _found(template: str) -> dict[str, list[str]]:
    documents = [d for d in db.session.scalars(db.select(Document)) if d.template_name.startswith(template)]
    assert documents, f"no {template} document"
    problems = {d.template_name: empty_fields(d) + raw_codes(d) for d in documents}
    return {name: found for name, found in problems.items() if found}


@pytest.mark.parametrize("language", ["en", "zh-CN"])
def test_capa_report(seeded, user, language):
    """No lots and three empty fishbone categories print "none"; the report is rendered in the CAPA's language."""
    instance = capa_steps.run_capa_to_approval(user, language=language)
    approve(instance.id, user, T0)
    assert _found("capa_report") == {}


@pytest.mark.parametrize("language", ["en", "zh-CN"])
def test_change_control_documents(lots, user, language):
    instance = instances.start_instance("change_control", user("qa"), {"title": "Sealing"}, title="Sealing",
                                        language=language, now=T0)
    for element, data in (("request", change.REQUEST), ("classify", change.CLASSIFY),
                          *((f"impact_{d}", change.IMPACT[d]) for d in ("qa", "ra", "production")),
                          ("approval", change.APPROVE), ("implementation", change.IMPLEMENT)):
        change._do(instance.id, element, data, user)
    change._do(instance.id, "verification", change.VERIFY, user, now=T0 + DAY)
    timers.fire_due_timers(now=T0 + 31 * DAY + timedelta(minutes=1))
    change._do(instance.id, "effectiveness", change.EFFECTIVE, user, now=T0 + 32 * DAY)
    change._do(instance.id, "close", change.APPROVE, user, now=T0 + 33 * DAY)
    assert _found("change_") == {}


@pytest.mark.parametrize("language", ["en", "zh-CN"])
def test_lot_release_certificate(lot, user, language):
    instance = lot_service.start_release(lot.id, user("qa"), now=T0)
    instance.language = language
    release._complete(instance.id, "request_release", {"lot_number": lot.lot_number}, "qa", user)
    release._complete(instance.id, "review_batch_record", release.REVIEW, "qa", user, signed=True)
    release._complete(instance.id, "release", release.RELEASE, "releaser", user, signed=True,
                      now=T0 + timedelta(hours=1))
    assert _found("lot_release_certificate") == {}



@pytest.fixture
def supplier_return_run(supplier_plant, user) -> None:
    """A supplier return played to its close: S1's SCAR goes out in Chinese, the return note in English."""
    instance = supplier_return.supplier_returns.start_return(user("qa"), supplier_plant["M1"].id, now=T0)
    suppliers.step(instance.id, "identify", supplier_return.IDENTIFY, user)
    suppliers.step(instance.id, "prepare_scar", supplier_return.SCAR, user)
    suppliers.ship(instance.id, user, T0 + timedelta(hours=1))
    [scar] = supplier_return._scars(instance.id)
    supplier_return.supplier_returns.respond(suppliers.scar_link(scar), ANSWER, now=T0 + 3 * DAY)
    suppliers.step(instance.id, "verify_response", supplier_return.ACCEPT, user, T0 + 4 * DAY)
    suppliers.step(instance.id, "supplier_status", supplier_return.STATUS, user, T0 + 4 * DAY)
    suppliers.step(instance.id, "close", supplier_return.CLOSE, user, T0 + 5 * DAY)


def test_supplier_return_note(supplier_return_run):
    assert _found("supplier_return_note") == {}


def test_scar(supplier_return_run):
    assert _found("scar") == {}

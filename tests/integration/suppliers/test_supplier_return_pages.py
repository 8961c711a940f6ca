"""The supplier return through its pages and /api/v1: starting from a material lot, the workspace, the public
SCAR response page and API (forged 404, used 409, expired 410, bad input 422 per field), and the supplier's
record with its contact fields."""
from __future__ import annotations

from datetime import timedelta

import pytest

from app.extensions import db
from app.models import Document, MaterialLot, ScarRequest, Supplier
from app.services.procedures import supplier_returns
from tests.conftest import T0, login
from tests.integration.api.conftest import auth  # noqa: F401 - bearer tokens for the API tests
from tests.integration.suppliers.conftest import ANSWER, IDENTIFY, SCAR, scar_link, start, step

API = "/api/v1"


def _text(response) -> str:
    return response.get_data(as_text=True)


def _scar(instance_id: int) -> ScarRequest:
    db.session.expire_all()
    return supplier_returns.current_scar(instance_id)


def test_a_return_starts_from_the_material_lot_page(client, supplier_plant):
    login(client, "qa")
    lot = supplier_plant["M1"]
    page = _text(client.get(f"/lots/material-lots/{lot.id}?lang=en"))
    assert 'data-testid="start-supplier-return"' in page
    assert 'data-testid="failed-inspection-hint"' in page  # M1 failed its incoming inspection
    other = _text(client.get(f"/lots/material-lots/{supplier_plant['M3'].id}?lang=en"))
    assert 'data-testid="start-supplier-return"' in other and 'data-testid="failed-inspection-hint"' not in other
    response = client.post("/supplier-returns/start", data={"material_lot_id": lot.id})
    assert response.status_code == 302 and "/tasks/" in response.headers["Location"]
    task_page = _text(client.get(response.headers["Location"] + "?lang=en"))
    assert "Identify the nonconforming material" in task_page and 'value="M1"' in task_page
    page = _text(client.get(f"/lots/material-lots/{lot.id}?lang=en"))
    assert "SR-000001" in page  # the lot page lists its returns
    # While that return is open, the page says so instead of offering a second one.
    assert 'data-testid="open-supplier-return"' in page and 'data-testid="start-supplier-return"' not in page


def test_the_auditor_cannot_start_a_return(client, supplier_plant):
    login(client, "auditor")
    lot = supplier_plant["M1"]
    assert 'data-testid="start-supplier-return"' not in _text(client.get(f"/lots/material-lots/{lot.id}"))
    assert client.post("/supplier-returns/start", data={"material_lot_id": lot.id}).status_code == 403


def test_the_workspace_shows_lots_scar_delivery_and_the_answer(client, supplier_plant, user):
    instance = start(supplier_plant, user)
    supplier_returns.respond(scar_link(_scar(instance.id)), ANSWER, now=T0 + timedelta(days=1))
    login(client, "qa")
    page = _text(client.get(f"/supplier-returns/{instance.id}?lang=en"))
    for expected in ("Resin Co", "quality@resin.example", "M1", "M2", f"SCAR-{instance.id:06d}-1", "queued",
                     "Torn screen mesh on extruder 2", 'data-testid="deadline-scar_response_1" data-status="met"'):
        assert expected in page, expected
    instance_page = _text(client.get(f"/instances/{instance.id}?lang=en"))
    assert 'data-testid="supplier-return-workspace-link"' in instance_page
    assert client.get("/supplier-returns/999999").status_code == 404


def test_the_public_response_page_speaks_the_suppliers_language_and_is_single_use(client, supplier_plant, user):
    instance = start(supplier_plant, user)
    token = scar_link(_scar(instance.id))
    page = _text(client.get(f"/scar/{token}"))  # nobody is signed in
    assert '<html lang="zh-CN">' in page and "Resin Co" in page and 'name="root_cause"' in page
    assert 'href="/instances/"' not in page
    refused = client.post(f"/scar/{token}", data={**ANSWER, "corrective_action": ""})
    assert refused.status_code == 422 and 'id="corrective_action-error"' in _text(refused)
    assert _scar(instance.id).responded_at is None
    done = client.post(f"/scar/{token}", data=ANSWER)
    assert done.status_code == 200 and 'data-testid="scar-done"' in _text(done)
    assert done.headers["Cache-Control"] == "no-store" and done.headers["Referrer-Policy"] == "no-referrer"
    again = client.get(f"/scar/{token}")
    assert again.status_code == 409 and 'data-testid="scar-closed"' in _text(again) and "<form" not in _text(again)
    assert client.get("/scar/forged-token").status_code == 404


def test_the_scar_response_api(client, supplier_plant, user):
    instance = start(supplier_plant, user)
    token = scar_link(_scar(instance.id))
    form = client.get(f"{API}/scar-responses/{token}").get_json()
    assert (form["number"], form["supplier"], form["language"]) == (f"SCAR-{instance.id:06d}-1", "Resin Co", "zh-CN")
    assert [lot["lot_number"] for lot in form["lots"]] == ["M1", "M2"]
    bad = client.post(f"{API}/scar-responses/{token}", json={**ANSWER, "root_cause": "", "completion_date": "x"})
    assert bad.status_code == 422 and set(bad.get_json()["errors"]) == {"root_cause", "completion_date"}
    ok = client.post(f"{API}/scar-responses/{token}", json=ANSWER)
    assert ok.status_code == 200 and ok.get_json()["number"] == f"SCAR-{instance.id:06d}-1"
    assert client.post(f"{API}/scar-responses/{token}", json=ANSWER).status_code == 409
    assert client.get(f"{API}/scar-responses/not-a-token").status_code == 404


def test_an_expired_link_answers_410(client, supplier_plant, user):
    instance = start(supplier_plant, user)
    token = scar_link(_scar(instance.id))
    db.session.execute(db.update(ScarRequest).values(token_expires_at=T0))
    db.session.commit()
    assert client.get(f"/scar/{token}").status_code == 410
    assert client.post(f"{API}/scar-responses/{token}", json=ANSWER).status_code == 410


def test_the_api_starts_and_reads_a_return(client, supplier_plant, user, auth):  # noqa: F811
    lot = supplier_plant["M1"]
    started = client.post(f"{API}/supplier-returns/start", json={"material_lot_id": lot.id}, headers=auth("qa"))
    assert started.status_code == 201 and started.get_json()["task_id"]
    instance_id = started.get_json()["id"]
    step(instance_id, "identify", IDENTIFY, user)
    view = client.get(f"{API}/supplier-returns/{instance_id}", headers=auth("auditor")).get_json()
    assert view["supplier"]["code"] == "S1" and [lot["status"] for lot in view["lots"]] == ["quarantine"] * 2
    assert view["scars"] == [] and view["number"] == f"SR-{instance_id:06d}"
    assert client.post(f"{API}/supplier-returns/start", json={"material_lot_id": 999},
                       headers=auth("qa")).status_code == 404
    assert client.get(f"{API}/supplier-returns/{instance_id}").status_code == 401


@pytest.mark.parametrize(("values", "status", "field"), [
    ({"email": "quality@pp.example", "language": "en", "contact_name": "Ms Xu"}, 201, None),
    ({"email": "not-an-address"}, 422, "email"),
    ({"language": "fr"}, 422, "language"),
])
def test_suppliers_carry_their_contact_for_scars(client, seeded, auth, values, status, field):  # noqa: F811
    response = client.post(f"{API}/suppliers", json={"code": "SUP-X", "name": "X Co", **values}, headers=auth("qa"))
    assert response.status_code == status, response.get_json()
    if field:
        assert field in response.get_json()["errors"]
    else:
        supplier = db.session.scalar(db.select(Supplier).where(Supplier.code == "SUP-X"))
        assert (supplier.email, supplier.language, supplier.contact_name) == ("quality@pp.example", "en", "Ms Xu")


def test_an_english_supplier_gets_an_english_scar(client, supplier_plant, user):
    instance = supplier_returns.start_return(user("qa"), supplier_plant["M3"].id, now=T0)
    step(instance.id, "identify", {**IDENTIFY, "material_lots": "M3"}, user)
    step(instance.id, "prepare_scar", SCAR, user)
    scar = _scar(instance.id)
    assert scar.language == "en" and scar.message.subject.startswith("Supplier corrective action request")
    assert db.session.get(Document, scar.document_id).template_name == "scar.en.docx"
    assert db.session.get(MaterialLot, supplier_plant["M3"].id).status == "quarantine"

"""A suspended supplier delivers nothing new: its new material lots and passing inspections of its lots are refused
(409 on the API and the entry form, a row error in a file import) naming the supplier and its status, in English and
Chinese; a failed inspection of its lot is still recorded (it is evidence). A conditional supplier's lots and
inspections are accepted with a warning to inspect them with tightened incoming inspection."""
from __future__ import annotations

from datetime import date

import pytest

from app.extensions import db
from app.models import ImportJob, Inspection, MaterialLot, Supplier
from app.services import users
from app.services.lots import import_rules, imports
from tests.conftest import login

DAY = "2026-11-23"


@pytest.fixture
def plant(seeded):
    """Suppliers SA (approved), SC (conditional) and SS (suspended), each with one material lot in quarantine."""
    made = {}
    for code, name, status in (("SA", "Alpha Resin", "approved"), ("SC", "Cond Tubes", "conditional"),
                               ("SS", "Stop Films", "suspended")):
        supplier = Supplier(code=code, name=name, status=status)
        lot = MaterialLot(supplier=supplier, material="PVC resin", lot_number=f"ML-{code}", status="quarantine",
                          received_on=date(2026, 11, 20))
        db.session.add_all([supplier, lot])
        made[code] = lot
    db.session.commit()
    return {code: lot.id for code, lot in made.items()}


def _inspections(lot_number: str) -> list[tuple[str, str]]:
    return [(i.stage, i.result) for i in db.session.scalars(
        db.select(Inspection).join(MaterialLot).where(MaterialLot.lot_number == lot_number))]


def _headers(username: str = "qa") -> dict[str, str]:
    return {"Authorization": f"Bearer {users.issue_token(username)}"}


def _inspection(lot: str, result: str) -> dict:
    return {"stage": "incoming", "material": "PVC resin", "material_lot": lot, "result": result,
            "inspected_on": DAY, "inspector": "Chen Jing", "results": "AQL 1.0"}


def test_the_api_refuses_a_suspended_suppliers_new_lot_and_passing_inspection(plant, client):
    headers = _headers()
    refused = client.post("/api/v1/material-lots?lang=en", headers=headers,
                          json={"supplier_code": "SS", "material": "PVC resin", "lot_number": "ML-NEW"})
    assert refused.status_code == 409
    body = refused.get_json()
    assert body["message"].startswith("Supplier SS (Stop Films) is suspended: no new material lots are accepted")
    assert body["errors"] == {"supplier_code": ["supplier SS is suspended: no new lots accepted"]}
    assert db.session.scalar(db.select(MaterialLot).where(MaterialLot.lot_number == "ML-NEW")) is None

    passing = client.post("/api/v1/inspections?lang=en", headers=headers, json=_inspection("ML-SS", "pass"))
    assert passing.status_code == 409
    assert passing.get_json()["message"].startswith(
        "Material lot ML-SS comes from supplier SS (Stop Films), which is suspended: a passing inspection is not "
        "accepted.")
    assert "result" in passing.get_json()["errors"]
    assert _inspections("ML-SS") == []

    # The failed inspection is evidence: recorded, answered with the warning that the lot cannot be released.
    failed = client.post("/api/v1/inspections?lang=en", headers=headers, json=_inspection("ML-SS", "fail"))
    assert failed.status_code == 201, failed.get_json()
    assert failed.get_json()["warnings"] == [
        "Supplier SS is suspended: this lot cannot be released. Return it to the supplier, or reinstate the "
        "supplier through a signed supplier review."]
    assert _inspections("ML-SS") == [("incoming", "fail")]

    # In Chinese, the same refusal names the supplier and its status.
    zh = client.post("/api/v1/material-lots?lang=zh-CN", headers=headers,
                     json={"supplier_code": "SS", "material": "PVC resin", "lot_number": "ML-NEW"})
    assert zh.status_code == 409 and "供应商 SS（Stop Films）已暂停" in zh.get_json()["message"]
    zh_pass = client.post("/api/v1/inspections?lang=zh-CN", headers=headers, json=_inspection("ML-SS", "pass"))
    assert zh_pass.status_code == 409 and "已暂停的供应商 SS（Stop Films）" in zh_pass.get_json()["message"]


def test_the_api_accepts_a_conditional_suppliers_records_with_a_warning(plant, client):
    headers = _headers()
    lot = client.post("/api/v1/material-lots?lang=en", headers=headers,
                      json={"supplier_code": "SC", "material": "PVC tube", "lot_number": "ML-C2"})
    assert lot.status_code == 201
    assert lot.get_json()["supplier_status"] == "conditional"
    assert lot.get_json()["warnings"] == [
        "Supplier SC is conditional: inspect this lot with tightened incoming inspection before release."]
    passing = client.post("/api/v1/inspections?lang=zh-CN", headers=headers, json=_inspection("ML-SC", "pass"))
    assert passing.status_code == 201
    assert passing.get_json()["warnings"] == ["供应商 SC 为有条件合格：此批次放行前请加严进货检验。"]
    approved = client.post("/api/v1/inspections", headers=headers, json=_inspection("ML-SA", "pass"))
    assert approved.status_code == 201 and approved.get_json()["warnings"] == []
    assert _inspections("ML-SC") == [("incoming", "pass")] and _inspections("ML-SA") == [("incoming", "pass")]


def test_the_entry_forms_refuse_with_the_reason_and_warn_for_a_conditional_supplier(plant, client):
    login(client, "qa")  # a Chinese-speaking QA user; the page follows ?lang
    client.get("/lots/?lang=en")
    refused = client.post("/lots/inspections/new", data=_inspection("ML-SS", "pass"))
    page = refused.get_data(as_text=True)
    assert refused.status_code == 409
    assert "Material lot ML-SS comes from supplier SS (Stop Films), which is suspended" in page
    assert "Record the inspection as failed" in page and _inspections("ML-SS") == []
    recorded = client.post("/lots/inspections/new", data=_inspection("ML-SS", "fail"), follow_redirects=True)
    assert recorded.status_code == 200 and _inspections("ML-SS") == [("incoming", "fail")]
    assert "Supplier SS is suspended: this lot cannot be released." in recorded.get_data(as_text=True)

    new_lot = client.post("/lots/material_lots/new", data={"supplier_code": "SS", "material": "PVC resin",
                                                           "lot_number": "ML-NEW"})
    assert new_lot.status_code == 409
    assert "Supplier SS (Stop Films) is suspended: no new material lots are accepted" in new_lot.get_data(as_text=True)

    warned = client.post("/lots/inspections/new", data=_inspection("ML-SC", "pass"), follow_redirects=True)
    assert warned.status_code == 200
    assert "Supplier SC is conditional: inspect this lot with tightened incoming inspection before release." in \
        warned.get_data(as_text=True)
    conditional_lot = client.post("/lots/material_lots/new", data={"supplier_code": "SC", "material": "PVC tube",
                                                                   "lot_number": "ML-C3"}, follow_redirects=True)
    assert conditional_lot.status_code == 200
    assert 'data-testid="supplier-conditional-warning"' in conditional_lot.get_data(as_text=True)

    client.get("/lots/?lang=zh-CN")
    zh = client.post("/lots/inspections/new", data=_inspection("ML-SS", "pass"))
    assert zh.status_code == 409
    assert "已暂停的供应商 SS（Stop Films）：不接受合格的检验结论" in zh.get_data(as_text=True)


def _import(user, kind: str, text: str) -> ImportJob:
    job = imports.start_import(kind, "file.csv", text.encode(), user("qa"))
    return imports.run_import(job.id)


def test_a_file_import_refuses_passing_inspections_of_a_suspended_suppliers_lot(plant, user):
    header = "stage,material,material_lot,result,inspected_on,inspector\n"
    job = _import(user, "inspections", header + f"incoming,PVC resin,ML-SA,pass,{DAY},Chen\n"
                                                f"incoming,PVC resin,ML-SS,pass,{DAY},Chen\n"
                                                f"incoming,PVC resin,ML-SC,pass,{DAY},Chen\n")
    assert job.status == "failed"
    assert [(e["line"], e["column"], e["code"]) for e in job.errors] == [(3, "result", "supplier_suspended_pass")]
    assert import_rules.reason_text(job.errors[0], "en") == (
        "lot ML-SS comes from supplier SS, which is suspended: a passing inspection is not accepted "
        "(a failed one is recorded)")
    assert import_rules.reason_text(job.errors[0], "zh-CN") == (
        "批次 ML-SS 来自已暂停的供应商 SS：不接受合格的检验结论（不合格的检验可以记录）")
    assert _inspections("ML-SA") == []  # one bad row refuses the file
    job = _import(user, "inspections", header + f"incoming,PVC resin,ML-SS,fail,{DAY},Chen\n"
                                                f"incoming,PVC resin,ML-SC,pass,{DAY},Chen\n")
    assert job.status == "succeeded" and job.imported_rows == 2
    assert _inspections("ML-SS") == [("incoming", "fail")] and _inspections("ML-SC") == [("incoming", "pass")]
    lots_job = _import(user, "material_lots", "supplier_code,material,lot_number\nSS,PVC resin,ML-X\n")
    assert lots_job.status == "failed" and lots_job.errors[0]["code"] == "supplier_suspended"

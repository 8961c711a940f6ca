"""The lot endpoints of /api/v1 through Flask's test client: lists, records, lot status and release checks,
trace and its exports, imports."""
from __future__ import annotations

import csv
import io
import json

import pytest
from biip.checksums import gs1_standard_check_digit
from openpyxl import load_workbook

from app.services.lots import imports

API = "/api/v1"


def with_check_digit(body: str) -> str:
    """Complete a GTIN body with its GS1 check digit."""
    return body + str(gs1_standard_check_digit(body))


GTIN = with_check_digit("0690123456789")  # the plant's product
GTIN_NEW = with_check_digit("0690123456790")  # valid, not in the database
BAD_CHECK_DIGIT = GTIN[:-1] + str((int(GTIN[-1]) + 1) % 10)

PLANT = [
    ("products", {"gtin": GTIN, "name": "Catheter", "sterile": True}),
    ("suppliers", {"code": "S1", "name": "Resin Co"}),
    ("material_lots", {"supplier_code": "S1", "material": "resin", "lot_number": "M1", "received_on": "2026-01-02"}),
    ("product_lots", {"gtin": GTIN, "lot_number": "L1", "quantity": 100, "manufactured_on": "2026-01-10",
                      "expiry_on": "2028-01-10", "sterilization_batch": "ST-1", "status": "released"}),
    ("product_lots", {"gtin": GTIN, "lot_number": "L2", "quantity": 50, "manufactured_on": "2026-02-10",
                      "expiry_on": "2028-02-10", "status": "quarantine"}),
    ("product_lots", {"gtin": GTIN, "lot_number": "L3", "quantity": 20, "manufactured_on": "2024-01-10",
                      "expiry_on": "2026-01-10", "status": "expired"}),
    ("genealogy", {"product_lot": "L1", "material_lot": "M1", "quantity": 3}),
    ("customers", {"code": "D1", "name": "North Distribution", "kind": "distributor", "region": "Jiangsu",
                   "contact": "Zhao Lei", "email": "zhao@north.example"}),
    ("customers", {"code": "H1", "name": "City Hospital", "kind": "hospital", "region": "Nanjing",
                   "contact": "Dr. Sun", "email": "sun@city.example", "parent_code": "D1"}),
    ("shipments", {"product_lot": "L1", "customer_code": "D1", "quantity": 10, "shipped_on": "2026-02-01",
                   "document_no": "DN-1"}),
    ("shipments", {"product_lot": "L1", "customer_code": "H1", "from_customer_code": "D1", "quantity": 4,
                   "shipped_on": "2026-02-05", "document_no": "DN-2"}),
]


@pytest.fixture
def plant(user):
    """Product Catheter; supplier S1 and material lot M1 in lot L1 (released, shipped to distributor D1 and on to
    hospital H1); lots L2 (quarantine) and L3 (expired). Return the lots' ids by lot number."""
    admin = user("admin")
    ids = {}
    for kind, data in PLANT:
        record_id = imports.create_record(kind, data, admin)
        if kind.endswith("lots"):
            ids[data["lot_number"]] = record_id
    return ids


def _get(client, auth, path: str, username: str = "auditor"):
    response = client.get(API + path, headers=auth(username))
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def _lot(client, auth, lot_id: int) -> dict:
    return _get(client, auth, f"/product-lots/{lot_id}")["lot"]


# --- authentication and discovery ---------------------------------------------------------------

@pytest.mark.parametrize("method, path", [
    ("get", "/product-lots"), ("post", "/products"), ("get", "/product-lots/1"), ("post", "/product-lots/1/status"),
    ("get", "/trace?q=L1"), ("get", "/trace/export?q=L1"), ("post", "/imports"), ("get", "/imports/1"),
])
def test_lot_endpoints_without_a_valid_token_get_401(client, seeded, method, path):
    response = getattr(client, method)(API + path, headers={"Authorization": "Bearer not-a-token"}, json={})
    assert response.status_code == 401
    assert "Bearer" in response.get_json()["message"]


def test_the_openapi_document_describes_the_lot_endpoints(client, seeded):
    spec = json.loads(client.get(f"{API}/openapi.json").data)
    paths = spec["paths"]
    listed = ("products", "suppliers", "material-lots", "product-lots", "customers", "shipments", "inspections",
              "stock")
    assert {f"/api/v1/{kind}" for kind in listed} <= {p for p in paths if "get" in paths[p]}
    assert {"/api/v1/genealogy", "/api/v1/serials", "/api/v1/imports"} <= {p for p in paths if "post" in paths[p]}
    assert {"/api/v1/product-lots/{lot_id}/status", "/api/v1/product-lots/{lot_id}/release-checks",
            "/api/v1/trace", "/api/v1/trace/export", "/api/v1/imports/{job_id}"} <= set(paths)
    create = paths["/api/v1/shipments"]["post"]
    assert create["summary"] and "`product_lot`: Product lot (required)" in create["description"]
    assert all(op.get("summary") for path, ops in paths.items() for op in ops.values() if isinstance(op, dict)
               and path.startswith(("/api/v1/product-lots", "/api/v1/trace", "/api/v1/imports")))


# --- lists ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("query, expected", [
    ("", ["L1", "L2", "L3"]),
    ("?status=released", ["L1"]),
    ("?status=recalled", []),
    ("?q=l2", ["L2"]),
    ("?q=ST-1", ["L1"]),  # sterilization batch
])
def test_product_lots_filter_by_text_and_status(client, auth, plant, query, expected):
    body = _get(client, auth, f"/product-lots{query}")
    assert [lot["lot_number"] for lot in body["items"]] == expected
    assert body["total"] == len(expected)


def test_lists_are_paginated(client, auth, plant):
    first = _get(client, auth, "/product-lots?per_page=2")
    second = _get(client, auth, "/product-lots?per_page=2&page=2")
    assert (first["page"], first["pages"], first["total"], len(first["items"])) == (1, 2, 3, 2)
    assert (second["page"], second["pages"], second["total"], len(second["items"])) == (2, 2, 3, 1)


@pytest.mark.parametrize("query", ["?per_page=101", "?per_page=0", "?page=0"])
def test_page_sizes_are_bounded(client, auth, plant, query):
    response = client.get(f"{API}/product-lots{query}", headers=auth("qa"))
    assert response.status_code == 422
    assert response.get_json()["errors"]["query"]


@pytest.mark.parametrize("path, expected", [
    ("/products", {"gtin": GTIN, "name": "Catheter", "sterile": True}),
    ("/suppliers", {"code": "S1", "name": "Resin Co", "status": "approved"}),
    ("/material-lots", {"lot_number": "M1", "material": "resin", "supplier_code": "S1", "received_on": "2026-01-02",
                        "status": "quarantine"}),
    ("/product-lots?q=L1", {"lot_number": "L1", "gtin": GTIN, "product_name": "Catheter", "quantity": 100,
                            "manufactured_on": "2026-01-10", "expiry_on": "2028-01-10",
                            "sterilization_batch": "ST-1", "status": "released"}),
    ("/customers?q=H1", {"code": "H1", "kind": "hospital", "region": "Nanjing", "contact": "Dr. Sun",
                         "email": "sun@city.example", "parent_code": "D1"}),
    ("/shipments?q=DN-2", {"lot_number": "L1", "customer_code": "H1", "customer_name": "City Hospital",
                           "from_customer_code": "D1", "quantity": 4, "shipped_on": "2026-02-05",
                           "document_no": "DN-2"}),
], ids=lambda value: value if isinstance(value, str) else "")
def test_each_list_shows_the_useful_fields_of_its_kind(client, auth, plant, path, expected):
    item = _get(client, auth, path)["items"][0]
    assert {name: item[name] for name in expected} == expected
    assert isinstance(item["id"], int)


# --- creating records ----------------------------------------------------------------------------

def _stored(client, auth, path: str, plant: dict) -> int:
    """Count what a kind has stored (genealogy and serials show on their product lot's page)."""
    if path == "/genealogy":
        return len(_get(client, auth, f"/product-lots/{plant['L2']}")["components"])
    if path == "/serials":
        return _get(client, auth, f"/product-lots/{plant['L1']}")["serial_count"]
    return _get(client, auth, f"{path}?per_page=1")["total"]


CREATED = [
    # path, body, fields the answer shows (None: the answer is {id})
    ("/products", {"gtin": GTIN_NEW, "name": "Stent", "device_class": "III"},
     {"gtin": GTIN_NEW, "name": "Stent", "device_class": "III"}),
    ("/suppliers", {"code": "S2", "name": "Tube Co", "status": "conditional"}, {"code": "S2", "status": "conditional"}),
    ("/material-lots", {"supplier_code": "S1", "material": "tubing", "lot_number": "M2", "expiry_on": "2027-01-01"},
     {"lot_number": "M2", "supplier_code": "S1", "status": "quarantine", "expiry_on": "2027-01-01"}),
    ("/product-lots", {"gtin": GTIN, "lot_number": "L9", "quantity": 40, "manufactured_on": "2026-03-01",
                       "expiry_on": "2028-03-01", "sterilization_batch": "ST-9"},
     {"lot_number": "L9", "gtin": GTIN, "product_name": "Catheter", "quantity": 40, "status": "quarantine",
      "sterilization_batch": "ST-9"}),
    ("/customers", {"code": "H2", "name": "County Hospital", "kind": "hospital", "parent_code": "D1"},
     {"code": "H2", "kind": "hospital"}),
    ("/shipments", {"product_lot": "L1", "customer_code": "H1", "quantity": 5, "shipped_on": "2026-03-01"},
     {"quantity": 5, "shipped_on": "2026-03-01"}),
    ("/inspections", {"stage": "final", "product_lot": "L2", "result": "pass", "inspected_on": "2026-03-01"},
     {"product_lot": "L2", "result": "pass", "capa_instance_id": None}),
    ("/stock", {"product_lot": "L1", "location": "WH-A", "quantity": 60}, {"location": "WH-A", "quantity": 60}),
    ("/genealogy", {"product_lot": "L2", "material_lot": "M1", "quantity": 2.5}, None),
    ("/serials", {"product_lot": "L1", "serial": "SN0001"}, None),
]


@pytest.mark.parametrize("path, body, shown", CREATED, ids=[case[0][1:] for case in CREATED])
def test_each_kind_is_created_through_the_api(client, auth, plant, path, body, shown):
    before = _stored(client, auth, path, plant)
    response = client.post(API + path, headers=auth("qa"), json=body)
    assert response.status_code == 201, response.get_json()
    answer = response.get_json()
    assert isinstance(answer["id"], int)
    if shown:
        assert {name: answer[name] for name in shown} == shown
    else:
        assert answer == {"id": answer["id"]}
    assert _stored(client, auth, path, plant) == before + 1


LOT = {"gtin": GTIN, "lot_number": "L7", "quantity": 10}
BAD_RECORDS = [
    # id, path, body, the field the 422 names, a word of its reason
    ("bad-check-digit", "/products", {"gtin": BAD_CHECK_DIGIT, "name": "Stent"}, "gtin", "check digit"),
    ("unknown-product", "/product-lots", {**LOT, "gtin": GTIN_NEW}, "gtin", "unknown product"),
    ("duplicate-lot", "/product-lots", {**LOT, "lot_number": "L1"}, "lot_number", "already exists"),
    ("expiry-before-manufacture", "/product-lots", {**LOT, "manufactured_on": "2026-05-01", "expiry_on": "2026-04-01"},
     "expiry_on", "before"),
    ("negative-quantity", "/product-lots", {**LOT, "quantity": -5}, "quantity", "negative"),
    ("unknown-column", "/product-lots", {**LOT, "colour": "blue"}, "colour", "unknown column"),
    ("missing-required", "/customers", {"code": "H9", "kind": "hospital"}, "name", "required"),
    ("bad-email", "/customers", {"code": "H9", "name": "X", "kind": "hospital", "email": "nope"}, "email", "e-mail"),
    ("unknown-supplier", "/material-lots", {"supplier_code": "S7", "material": "resin", "lot_number": "M7"},
     "supplier_code", "unknown supplier"),
    ("zero-shipped", "/shipments", {"product_lot": "L1", "customer_code": "H1", "quantity": 0,
                                    "shipped_on": "2026-03-01"}, "quantity", "greater than zero"),
    ("self-component", "/genealogy", {"product_lot": "L1", "component_lot": "L1"}, "component_lot", "own component"),
    ("material-received-after-made", "/genealogy", {"product_lot": "L3", "material_lot": "M1"}, "material_lot",
     "received on 2026-01-02, after lot L3 was made on 2024-01-10"),
    ("component-made-after", "/genealogy", {"product_lot": "L1", "component_lot": "L2"}, "component_lot",
     "made on 2026-02-10, after lot L1 was made on 2026-01-10"),
]


@pytest.mark.parametrize("path, body, field, reason", [case[1:] for case in BAD_RECORDS],
                         ids=[case[0] for case in BAD_RECORDS])
def test_bad_records_answer_422_naming_the_field_and_save_nothing(client, auth, plant, path, body, field, reason):
    before = _stored(client, auth, path, plant)
    response = client.post(API + path, headers=auth("qa"), json=body)
    assert response.status_code == 422
    errors = response.get_json()["errors"]
    assert reason in " ".join(errors[field]), errors
    assert _stored(client, auth, path, plant) == before


def test_shipping_a_quarantine_lot_is_refused_and_nothing_is_written(client, auth, plant):
    response = client.post(f"{API}/shipments", headers=auth("qa"), json={
        "product_lot": "L2", "customer_code": "H1", "quantity": 5, "shipped_on": "2026-03-01"})
    assert response.status_code == 422
    assert response.get_json()["errors"] == {"product_lot": ["lot L2 is quarantine and cannot be shipped"]}
    assert _get(client, auth, "/shipments")["total"] == 2
    assert _get(client, auth, f"/product-lots/{plant['L2']}")["shipments"] == []


def test_an_auditor_cannot_create_records(client, auth, plant):
    response = client.post(f"{API}/suppliers", headers=auth("auditor"), json={"code": "S2", "name": "Tube Co"})
    assert response.status_code == 403
    assert _get(client, auth, "/suppliers")["total"] == 1


def test_a_failed_final_inspection_opens_a_capa_on_its_lot(client, auth, plant):
    response = client.post(f"{API}/inspections", headers=auth("qa"), json={
        "stage": "final", "product_lot": "L2", "result": "fail", "results": "seal leak on 3 of 20",
        "inspected_on": "2026-03-02", "inspector": "QC Zhou"})
    assert response.status_code == 201
    page = _get(client, auth, f"/product-lots/{plant['L2']}")
    (inspection,) = page["inspections"]
    assert (inspection["id"], inspection["result"], inspection["stage"]) == (response.get_json()["id"], "fail", "final")
    capa_id = inspection["capa_instance_id"]
    assert response.get_json()["capa_instance_id"] == capa_id  # the answer names the CAPA it opened
    # L2 was entered in quarantine, so its release procedure runs too
    assert sorted((i["process"], i["role"]) for i in page["instances"]) == [("capa", "subject"),
                                                                            ("lot_release", "subject")]
    assert [i["id"] for i in page["instances"] if i["process"] == "capa"] == [capa_id]
    instance = _get(client, auth, f"/instances/{capa_id}")
    assert (instance["process"], instance["status"]) == ("capa", "running")
    assert "L2" in instance["title"] and "seal leak" in instance["data"]["description"]
    checks = _get(client, auth, f"/product-lots/{plant['L2']}/release-checks")
    assert {"final_inspection_passed", "no_open_capa_or_deviation"} <= {f["code"] for f in checks["failed"]}


# --- lots: pages, status, release checks ----------------------------------------------------------

def test_a_product_lot_page_shows_its_shipments_genealogy_and_history(client, auth, plant):
    page = _get(client, auth, f"/product-lots/{plant['L1']}")
    assert (page["lot"]["lot_number"], page["lot"]["status"]) == ("L1", "released")
    assert [s["document_no"] for s in page["shipments"]] == ["DN-2", "DN-1"]  # newest first
    assert [(c["material_lot_id"], c["quantity"]) for c in page["components"]] == [(plant["M1"], 3.0)]
    material = _get(client, auth, f"/material-lots/{plant['M1']}")
    assert (material["lot"]["lot_number"], material["inspections"], material["history"]) == ("M1", [], [])


STATUS_CHANGES = [
    # id, user, lot, body, status code, the lot's status afterwards
    ("hold", "qa", "L2", {"status": "hold", "reason": "label mix-up"}, 200, "hold"),
    ("release", "releaser", "L2", {"status": "released", "reason": "all checks done"}, 200, "released"),
    ("no-reason", "qa", "L2", {"status": "hold"}, 400, "quarantine"),
    ("blank-reason", "qa", "L2", {"status": "hold", "reason": "  "}, 400, "quarantine"),
    ("unknown-status", "qa", "L2", {"status": "sunny", "reason": "why not"}, 400, "quarantine"),
    ("no-status", "qa", "L2", {"reason": "why not"}, 422, "quarantine"),
    ("auditor", "auditor", "L2", {"status": "hold", "reason": "label mix-up"}, 403, "quarantine"),
    ("staff-releasing", "qa", "L2", {"status": "released", "reason": "looks fine"}, 403, "quarantine"),
    ("not-qa", "prod", "L2", {"status": "hold", "reason": "label mix-up"}, 403, "quarantine"),
    ("expired-to-released", "releaser", "L3", {"status": "released", "reason": "extended"}, 409, "expired"),
    ("material-hold", "qa", "M1", {"status": "hold", "reason": "supplier notice"}, 200, "hold"),
]


@pytest.mark.parametrize("username, lot, body, code, after", [case[1:] for case in STATUS_CHANGES],
                         ids=[case[0] for case in STATUS_CHANGES])
def test_who_may_move_a_lot_to_which_status(client, auth, plant, username, lot, body, code, after):
    path = f"/{'material' if lot.startswith('M') else 'product'}-lots/{plant[lot]}"
    response = client.post(f"{API}{path}/status", headers=auth(username), json=body)
    assert response.status_code == code
    if code == 200:
        assert response.get_json()["status"] == after
    else:
        assert response.get_json()["message"]
    page = _get(client, auth, path)
    assert page["lot"]["status"] == after
    assert [(e["action"], e["reason"]) for e in page["history"]] == (
        [("lot.status_changed", body["reason"])] if code == 200 else [])


def test_release_checks_list_what_a_lot_still_lacks(client, auth, plant):
    report = _get(client, auth, f"/product-lots/{plant['L1']}/release-checks")
    assert (report["lot_number"], report["releasable"]) == ("L1", False)
    assert {check["code"]: check["passed"] for check in report["checks"]} == {
        "batch_record_complete": False, "final_inspection_passed": False, "sterilization_record": False,
        "labels_udi": False, "no_open_capa_or_deviation": True, "not_expired": True}
    assert {f["code"] for f in report["failed"]} == {"batch_record_complete", "final_inspection_passed", "labels_udi",
                                                     "sterilization_record"}
    sterilization = next(f for f in report["failed"] if f["code"] == "sterilization_record")
    assert (sterilization["detail"], sterilization["detail_zh"]) == (
        "sterilization batch ST-1 has no sterilization record", "灭菌批 ST-1 没有灭菌记录")


@pytest.mark.parametrize("method, path", [
    ("get", "/product-lots/999"), ("get", "/material-lots/999"), ("post", "/product-lots/999/status"),
    ("post", "/material-lots/999/status"), ("get", "/product-lots/999/release-checks"), ("get", "/imports/999"),
])
def test_unknown_lots_and_jobs_answer_404_json(client, auth, plant, method, path):
    response = getattr(client, method)(API + path, headers=auth("admin"), json={"status": "hold", "reason": "x"})
    assert response.status_code == 404
    assert response.get_json()["message"]


# --- trace ---------------------------------------------------------------------------------------

def test_trace_of_a_material_lot_reaches_lots_shipments_and_consignees(client, auth, plant):
    report = _get(client, auth, "/trace?q=M1")
    assert [lot["lot_number"] for lot in report["matched"]["material_lots"]] == ["M1"]
    assert [lot["lot_number"] for lot in report["forward"]["product_lots"]] == ["L1"]
    assert [(s["document_no"], s["customer_code"], s["from_customer_code"]) for s in report["forward"]["shipments"]] \
        == [("DN-1", "D1", None), ("DN-2", "H1", "D1")]
    consignees = [(c["customer"]["code"], c["quantity"], c["shipments"], c["customer"]["region"],
                   c["customer"]["contact"], c["customer"]["email"]) for c in report["consignees"]]
    assert consignees == [("D1", 10, 1, "Jiangsu", "Zhao Lei", "zhao@north.example"),
                          ("H1", 4, 1, "Nanjing", "Dr. Sun", "sun@city.example")]
    assert (report["counts"]["product_lots"], report["counts"]["consignees"], report["counts"]["quantity_shipped"]) \
        == (1, 2, 10)  # the onward shipment is not shipped twice
    assert report["backward"] is None


def test_trace_of_a_scanned_udi_goes_back_to_materials_and_suppliers(client, auth, plant):
    report = _get(client, auth, f"/trace?q=(01){GTIN}(17)280110(10)L1")
    assert report["code"] == {"text": f"(01){GTIN}(17)280110(10)L1", "gtin": GTIN, "lot": "L1", "serial": None,
                              "expiry": "2028-01-10", "production": None, "is_gs1": True}
    assert [lot["lot_number"] for lot in report["matched"]["product_lots"]] == ["L1"]
    backward = report["backward"]
    assert [(m["lot_number"], m["supplier_code"]) for m in backward["material_lots"]] == [("M1", "S1")]
    assert [s["code"] for s in backward["suppliers"]] == ["S1"]
    assert backward["sterilization_batches"] == ["ST-1"]
    assert [c["customer"]["code"] for c in report["consignees"]] == ["D1", "H1"]


@pytest.mark.parametrize("query", ["", "?q=", "?q=%20", f"?q=(01){BAD_CHECK_DIGIT}(10)L1"],
                         ids=["missing", "empty", "blank", "bad-check-digit"])
def test_trace_without_a_query_or_with_a_bad_gs1_code_answers_400(client, auth, plant, query):
    response = client.get(f"{API}/trace{query}", headers=auth("qa"))
    assert response.status_code == 400
    assert response.get_json()["message"]


def test_trace_export_xlsx_opens_with_one_sheet_per_table(client, auth, plant):
    response = client.get(f"{API}/trace/export?q=M1&format=xlsx", headers=auth("auditor"))
    assert response.status_code == 200
    assert response.mimetype.endswith("spreadsheetml.sheet")
    assert 'filename=trace-M1.xlsx' in response.headers["Content-Disposition"]
    workbook = load_workbook(io.BytesIO(response.data), read_only=True)
    assert {"Summary", "Product lots", "Shipments", "Consignees"} <= set(workbook.sheetnames)
    consignees = list(workbook["Consignees"].iter_rows(values_only=True))
    assert [row[0] for row in consignees] == ["code", "D1", "H1"]


def test_trace_export_csv_carries_each_table(client, auth, plant):
    response = client.get(f"{API}/trace/export?q=L1&format=csv", headers=auth("auditor"))
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(response.data.decode("utf-8-sig"))))
    assert {row[0] for row in rows} >= {"section", "Summary", "Shipments", "Consignees", "Material lots"}
    assert ["Material lots", "resin", "M1", "S1", "quarantine", ""] in rows


@pytest.mark.parametrize("query, code", [("?q=L1&format=pdf", 422), ("?format=csv", 400)])
def test_trace_export_refuses_unknown_formats_and_empty_queries(client, auth, plant, query, code):
    assert client.get(f"{API}/trace/export{query}", headers=auth("qa")).status_code == code


# --- imports -------------------------------------------------------------------------------------

def _upload(client, headers, kind: str | None, rows: list[list] | None, filename: str = "lots.csv"):
    data = {} if kind is None else {"kind": kind}
    if rows is not None:
        buffer = io.StringIO()
        csv.writer(buffer).writerows(rows)
        data["file"] = (io.BytesIO(buffer.getvalue().encode()), filename)
    return client.post(f"{API}/imports", headers=headers, data=data, content_type="multipart/form-data")


HEADER = ["gtin", "lot_number", "quantity", "manufactured_on", "expiry_on"]


def test_an_import_runs_to_the_end_and_answers_its_job(client, auth, plant):
    response = _upload(client, auth("qa"), "product-lots", [HEADER, [GTIN, "L10", "5", "2026-03-01", "2028-03-01"],
                                                            [GTIN, "L11", "6", "2026-03-02", "2028-03-02"]])
    assert response.status_code == 201
    job = response.get_json()
    assert (job["kind"], job["status"], job["imported_rows"], job["errors"]) == ("product_lots", "succeeded", 2, [])
    assert _get(client, auth, f"/imports/{job['id']}") == job
    assert _get(client, auth, "/product-lots?q=L1")["total"] == 3  # L1, L10, L11


def test_a_refused_import_lists_every_bad_row_and_imports_nothing(client, auth, plant):
    response = _upload(client, auth("qa"), "product_lots", [
        HEADER, [GTIN, "L10", "5", "2026-03-01", "2028-03-01"], [GTIN_NEW, "L11", "6", "", ""],
        [GTIN, "L12", "-1", "2026-03-01", "2028-03-01"], [GTIN, "L13", "7", "2026-03-01", "2026-02-01"]])
    assert response.status_code == 422
    body = response.get_json()
    assert body["message"] and body["total_errors"] == 3
    assert [(e["line"], e["column"], e["code"]) for e in body["errors"]] == [
        (3, "gtin", "unknown_product"), (4, "quantity", "negative"), (5, "expiry_on", "date_order")]
    assert all(set(e) == {"line", "column", "code", "reason"} and e["reason"] for e in body["errors"])
    assert _get(client, auth, "/product-lots")["total"] == 3


@pytest.mark.parametrize("username, kind, rows, filename, code", [
    ("qa", None, [HEADER], "lots.csv", 422),
    ("qa", "lots", [HEADER], "lots.csv", 422),
    ("qa", "product-lots", None, "lots.csv", 422),
    ("qa", "product-lots", [HEADER], "lots.txt", 400),
    ("qa", "product-lots", [["gtin", "lot", "quantity"]], "lots.csv", 422),  # unknown and missing columns
    ("auditor", "product-lots", [HEADER, [GTIN, "L10", "5", "", ""]], "lots.csv", 403),
], ids=["no-kind", "unknown-kind", "no-file", "txt-file", "bad-header", "auditor"])
def test_bad_imports_are_refused(client, auth, plant, username, kind, rows, filename, code):
    response = _upload(client, auth(username), kind, rows, filename)
    assert response.status_code == code
    assert response.get_json()["message"]
    assert _get(client, auth, "/product-lots")["total"] == 3

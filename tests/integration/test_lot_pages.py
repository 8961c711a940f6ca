"""The lot pages through Flask's test client: lists, entry forms, lot pages with status changes, imports, trace."""
from __future__ import annotations

import io
import re
import time
from datetime import date, timedelta

import pytest
from openpyxl import load_workbook

from app.extensions import db
from app.models import ProductLot
from app.services.lots import import_rules, imports, lots
from tests.conftest import login

GTIN = "06901234567892"
BAD_CHECK_DIGIT = "06901234567893"
TODAY = date.today()  # the pages judge expiry against the real clock
SOON = TODAY + timedelta(days=30)
LATER = TODAY + timedelta(days=700)
EXPECTED_ON_LIST = {"products": "Catheter", "suppliers": "Resin Co", "material_lots": "M-100", "product_lots": "L-100",
                    "customers": "City Hospital", "shipments": "DN-1", "inspections": "Inspector Li",
                    "stock": "WH-A"}


@pytest.fixture
def plant(seeded, user):
    """Product lot L-100 (released, expiring in 30 days) made from material lot M-100 of supplier S1, shipped to
    H1 (DN-1), in stock at WH-A, finally inspected; product lot L-200 in quarantine expiring much later."""
    admin = user("admin")

    def create(record_kind: str, **data) -> int:
        return imports.create_record(record_kind, {k: str(v) for k, v in data.items()}, admin)

    create("products", gtin=GTIN, name="Catheter", model="CV-1")
    create("suppliers", code="S1", name="Resin Co")
    material_id = create("material_lots", supplier_code="S1", material="resin", lot_number="M-100")
    lot_id = create("product_lots", gtin=GTIN, lot_number="L-100", quantity=500, expiry_on=SOON, status="released",
                    manufactured_on=TODAY - timedelta(days=60), batch_record_complete="yes", labels_checked="yes")
    other_id = create("product_lots", gtin=GTIN, lot_number="L-200", quantity=80, expiry_on=LATER)
    create("genealogy", product_lot="L-100", material_lot="M-100", quantity=2)
    create("customers", code="H1", name="City Hospital", kind="hospital", region="Shanghai", contact="Dr Wu",
           email="wu@hospital.example")
    create("shipments", product_lot="L-100", customer_code="H1", quantity=40, shipped_on=TODAY - timedelta(days=10),
           document_no="DN-1")
    create("stock", product_lot="L-100", location="WH-A", quantity=460)
    create("inspections", stage="final", product_lot="L-100", result="pass", inspected_on=TODAY - timedelta(days=50),
           inspector="Inspector Li")
    return {"lot": lot_id, "other": other_id, "material": material_id}


def _text(response) -> str:
    return response.get_data(as_text=True)


def _lot_status(lot_id: int) -> str:
    db.session.expire_all()
    return db.session.get(ProductLot, lot_id).status


@pytest.mark.parametrize("path", ["/lots/", "/lots/product_lots/", "/lots/import", "/trace", "/lots/products/new"])
def test_lot_pages_need_sign_in(client, seeded, path):
    response = client.get(path)
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_hub_links_every_kind_and_warns_of_near_expiry(client, plant):
    login(client, "qa")
    page = _text(client.get("/lots/?lang=en"))
    for kind in import_rules.KINDS.values():
        assert kind.label in page
    near = page.split('data-testid="near-expiry-table"')[1]
    assert "L-100" in near and "L-200" not in near
    assert "L-100" in _text(client.get("/lots/near-expiry"))


@pytest.mark.parametrize("kind", list(lots.LIST_MODELS))
def test_each_list_page_shows_its_records(client, plant, kind):
    login(client, "qa")
    response = client.get(f"/lots/{kind}/?lang=en")
    assert response.status_code == 200
    page = _text(response)
    assert EXPECTED_ON_LIST[kind] in page
    assert f"/lots/{kind}/new" in page and f"/lots/{kind}/template.csv" in page and f"kind={kind}" in page


@pytest.mark.parametrize("kind", list(lots.LIST_MODELS))
def test_an_empty_list_says_so(client, seeded, kind):
    login(client, "qa")
    response = client.get(f"/lots/{kind}/?lang=en")
    assert response.status_code == 200
    assert "No records yet" in _text(response)


def test_list_search_and_status_filter(client, plant):
    login(client, "qa")
    found = _text(client.get("/lots/product_lots/?lang=en&q=L-1"))
    assert "L-100" in found and "L-200" not in found
    quarantined = _text(client.get("/lots/product_lots/?status=quarantine"))
    assert "L-200" in quarantined and "L-100" not in quarantined
    assert "Nothing matches this search" in _text(client.get("/lots/product_lots/?q=no-such-lot"))
    assert 'data-testid="near-expiry"' in _text(client.get("/lots/product_lots/?q=L-100"))


def test_list_pages_through_many_records(app, client, plant):
    app.config["PAGE_SIZE"] = 1
    login(client, "qa")
    client.get("/lots/?lang=en")
    first = _text(client.get("/lots/product_lots/?q=L-"))
    assert "Page 1 of 2" in first and "/lots/product_lots/?q=L-&amp;page=2" in first
    assert "L-200" in _text(client.get("/lots/product_lots/?q=L-&page=2"))


def test_unknown_kind_is_not_found(client, seeded):
    login(client, "qa")
    assert client.get("/lots/widgets/").status_code == 404
    assert client.get("/lots/genealogy/").status_code == 404  # entered, never listed on its own


@pytest.mark.parametrize("kind", list(import_rules.KINDS))
def test_every_kind_has_an_entry_form(client, seeded, kind):
    login(client, "qa")
    response = client.get(f"/lots/{kind}/new?lang=en")
    assert response.status_code == 200
    page = _text(response)
    for column in import_rules.KINDS[kind].columns:
        assert f'name="{column.name}"' in page and column.label in page


def test_entry_form_controls_follow_the_columns(client, seeded):
    login(client, "qa")
    page = _text(client.get("/lots/product_lots/new?lang=zh_CN"))
    assert 'type="date" id="field-expiry_on"' in page
    assert '<select class="form-select" id="field-status"' in page and '<option value="quarantine" selected>' in page
    assert 'type="checkbox" id="field-labels_checked"' in page
    assert "批号" in page  # column labels in the page language


def test_new_records_are_saved_and_shown(client, seeded):
    login(client, "qa")
    response = client.post("/lots/products/new", data={"gtin": GTIN, "name": "Catheter", "sterile": "true"})
    assert response.status_code == 302 and response.headers["Location"].endswith("/lots/products/")
    assert "Catheter" in _text(client.get("/lots/products/?lang=en"))
    response = client.post("/lots/product_lots/new", data={"gtin": GTIN, "lot_number": "L-9", "quantity": "10",
                                                           "status": "quarantine", "expiry_on": ""})
    assert response.status_code == 302
    page = _text(client.get(response.headers["Location"]))
    assert "Lot L-9" in page and "the record was saved" in page


def test_a_bad_gtin_check_digit_is_shown_at_its_field(client, seeded):
    login(client, "qa")
    response = client.post("/lots/products/new?lang=en", data={"gtin": BAD_CHECK_DIGIT, "name": "Catheter"})
    assert response.status_code == 422
    page = _text(response)
    assert "nothing was saved" in page
    assert re.search(r'id="field-gtin"[^>]*aria-invalid="true"', page)
    assert "check digit" in page.split('id="field-gtin-error"')[1].split("</div>")[0]
    assert 'value="Catheter"' in page  # what was typed stays
    assert "No records yet" in _text(client.get("/lots/products/"))


def test_a_material_lot_received_after_the_lot_was_made_is_refused_at_its_field(client, seeded):
    login(client, "qa")
    for kind, data in (("products", {"gtin": GTIN, "name": "Catheter"}),
                       ("suppliers", {"code": "S1", "name": "Resin Co", "status": "approved"}),
                       ("material_lots", {"supplier_code": "S1", "material": "resin", "lot_number": "M-LATE",
                                          "received_on": "2026-03-01", "status": "released"}),
                       ("product_lots", {"gtin": GTIN, "lot_number": "L-EARLY", "quantity": "10",
                                         "manufactured_on": "2026-02-01", "status": "quarantine"})):
        assert client.post(f"/lots/{kind}/new", data=data).status_code == 302, kind
    response = client.post("/lots/genealogy/new?lang=en", data={"product_lot": "L-EARLY", "material_lot": "M-LATE"})
    assert response.status_code == 422
    page = _text(response)
    assert re.search(r'id="field-material_lot"[^>]*aria-invalid="true"', page)
    assert "received on 2026-03-01, after lot L-EARLY was made on 2026-02-01" in page.split(
        'id="field-material_lot-error"')[1].split("</div>")[0]


def test_auditor_cannot_enter_records(client, seeded):
    login(client, "auditor")
    response = client.post("/lots/suppliers/new", data={"code": "S1", "name": "Resin Co"})
    assert response.status_code == 403
    assert "read-only" in _text(response)


def test_product_lot_page_shows_everything_about_the_lot(client, plant):
    login(client, "qa")
    page = _text(client.get(f"/lots/product-lots/{plant['lot']}?lang=en"))
    for expected in ("Release checks", "Final inspection passed", "Inspector Li", "WH-A", "City Hospital", "DN-1",
                     "M-100", "near expiry", "/trace?q=L-100", "No status changes yet"):
        assert expected in page, expected
    assert "Not releasable" not in page  # released lot with a passed final inspection and checked labels
    other = _text(client.get(f"/lots/product-lots/{plant['other']}?lang=en"))
    assert "Not releasable" in other and "batch record is not complete" in other


def test_status_change_with_reason_is_shown_in_the_history(client, plant):
    login(client, "qa")
    response = client.post(f"/lots/product-lots/{plant['lot']}/status?lang=en",
                           data={"status": "hold", "reason": "Burr found on the hub"})
    assert response.status_code == 302
    assert _lot_status(plant["lot"]) == "hold"
    page = _text(client.get(response.headers["Location"]))
    history = page.split('data-testid="lot-history"')[1]
    assert "Burr found on the hub" in history and "released → hold" in history and "Li Na" in history
    assert "Status changed to hold" in page


def test_status_change_without_reason_is_refused(client, plant):
    login(client, "qa")
    response = client.post(f"/lots/product-lots/{plant['lot']}/status?lang=en", data={"status": "hold", "reason": " "})
    assert response.status_code == 400
    assert "Give a reason" in _text(response).split('data-testid="status-error"')[1]
    assert _lot_status(plant["lot"]) == "released"


@pytest.mark.parametrize("username,status,allowed", [("auditor", "hold", False), ("qa", "released", False),
                                                     ("releaser", "released", True)])
def test_status_change_needs_authority(client, plant, username, status, allowed):
    login(client, username)
    response = client.post(f"/lots/product-lots/{plant['other']}/status", data={"status": status, "reason": "check"})
    assert response.status_code == (302 if allowed else 403)
    assert (_lot_status(plant["other"]) == status) is allowed
    if not allowed:
        assert 'data-testid="status-error"' in _text(response)


def test_auditor_sees_no_status_form(client, plant):
    login(client, "auditor")
    page = _text(client.get(f"/lots/product-lots/{plant['lot']}?lang=en"))
    assert "Release checks" in page and 'name="reason"' not in page


def test_material_lot_page_and_status_change(client, plant):
    login(client, "qa")
    url = f"/lots/material-lots/{plant['material']}"
    page = _text(client.get(url + "?lang=en"))
    assert "Material lot M-100" in page and "Resin Co" in page and "/trace?q=M-100" in page
    response = client.post(url + "/status", data={"status": "hold", "reason": "Supplier notice"})
    assert response.status_code == 302
    assert "Supplier notice" in _text(client.get(url))
    assert client.get("/lots/material-lots/999").status_code == 404


def _upload(client, kind: str, rows: list[list[str]]):
    content = "\n".join(",".join(row) for row in rows).encode()
    return client.post("/lots/import", data={"kind": kind, "file": (io.BytesIO(content), f"{kind}.csv")},
                       content_type="multipart/form-data")


def _wait_for_import(client, job_url: str, timeout: float = 10) -> dict:
    """Poll the job's JSON like the page's script does, until the background import is done."""
    deadline = time.monotonic() + timeout
    while True:
        # The test's app context shares one session with the requests: end its transaction, or the
        # importing thread waits for SQLite's write lock (a real request ends its session itself).
        db.session.rollback()
        status = client.get(job_url + ".json").get_json()
        db.session.rollback()
        if status["status"] != "running" or time.monotonic() > deadline:
            return status
        time.sleep(0.1)


def test_import_runs_in_the_background_and_reports_success(client, seeded):
    login(client, "qa")
    assert "Download CSV template" in _text(client.get("/lots/import?kind=customers&lang=en"))
    response = _upload(client, "customers", [["code", "name", "kind"], ["H1", "City Hospital", "hospital"],
                                             ["D1", "North Trade", "distributor"]])
    assert response.status_code == 302
    job_url = response.headers["Location"]
    status = _wait_for_import(client, job_url)
    assert (status["status"], status["imported_rows"], status["errors"]) == ("succeeded", 2, [])
    page = _text(client.get(job_url + "?lang=en"))
    assert "Imported:" in page and "import_progress.js" in page
    assert "City Hospital" in _text(client.get("/lots/customers/"))
    assert "customers.csv" in _text(client.get("/lots/imports/"))


def test_import_with_a_bad_row_imports_nothing_and_says_why(client, seeded):
    login(client, "qa")
    response = _upload(client, "products", [["gtin", "name"], [GTIN, "Catheter"], [BAD_CHECK_DIGIT, "Needle"]])
    job_url = response.headers["Location"]
    status = _wait_for_import(client, job_url)
    assert status["status"] == "failed" and status["imported_rows"] == 0
    [error] = status["errors"]
    assert (error["line"], error["column"]) == (3, "gtin") and "check digit" in error["reason"]
    page = _text(client.get(job_url + "?lang=en"))
    assert "Nothing was imported" in page and "check digit" in page
    assert "No records yet" in _text(client.get("/lots/products/?lang=en"))
    chinese = client.get(job_url + ".json?lang=zh_CN").get_json()
    assert chinese["errors"][0]["reason"].startswith("GTIN 无效") and chinese["errors"][0]["column_label"]


def test_a_running_import_page_refreshes_itself_without_javascript(app, client, seeded, user, tmp_path):
    app.instance_path = str(tmp_path)  # the job never runs, so nothing would remove its stored file
    job = imports.start_import("customers", "customers.csv", b"code,name,kind\n", user("qa"))
    login(client, "qa")
    page = _text(client.get(f"/lots/imports/{job.id}?lang=en"))
    assert '<noscript><meta http-equiv="refresh"' in page and "rows read" in page
    assert client.get(f"/lots/imports/{job.id}.json").get_json()["status"] == "running"
    assert client.get("/lots/imports/999.json").status_code == 404


@pytest.mark.parametrize("data,message", [
    ({"kind": "products"}, "Choose a .csv or .xlsx file"),
    ({"kind": "products", "file": (io.BytesIO(b"gtin,name\n"), "products.txt")}, "Upload a .csv or .xlsx file"),
])
def test_import_form_refuses_a_missing_or_wrong_file(client, seeded, data, message):
    login(client, "qa")
    response = client.post("/lots/import?lang=en", data=data, content_type="multipart/form-data")
    assert response.status_code == 400
    assert message in _text(response)


def test_trace_page_shows_both_directions(client, plant):
    login(client, "qa")
    response = client.get("/trace?q=L-100&lang=en")
    assert response.status_code == 200
    page = _text(response)
    counts = dict(re.findall(r'data-count="(\w+)">(\d+)<', page))
    assert counts == {"product_lots": "1", "shipments": "1", "consignees": "1", "quantity_shipped": "40",
                      "component_lots": "0", "material_lots": "1", "suppliers": "1", "inspections": "1"}
    forward, backward = page.split('data-testid="trace-forward"')[1].split('data-testid="trace-backward"')
    assert "City Hospital" in forward and "Shanghai" in forward and "wu@hospital.example" in forward
    assert "M-100" in backward and "Resin Co" in backward
    assert "/trace/export.xlsx?q=L-100" in page and "/trace/export.csv?q=L-100" in page


def test_trace_reads_a_gs1_code(client, plant):
    login(client, "qa")
    page = _text(client.get(f"/trace?q=(01){GTIN}(17)271231(10)L-100&lang=en"))
    code = page.split('data-testid="trace-code"')[1]
    assert GTIN in code and "L-100" in code and "2027-12-31" in code
    assert 'data-count="product_lots">1<' in page


def test_trace_of_an_unknown_code_says_nothing_matches(client, plant):
    login(client, "qa")
    response = client.get("/trace?q=NOPE-1&lang=en")
    assert response.status_code == 200
    assert "Nothing matches" in _text(response)


def test_trace_refuses_a_bad_gs1_code_with_a_clear_message(client, plant):
    login(client, "qa")
    response = client.get("/trace?q=(01)09506000134353&lang=en")
    assert response.status_code == 400
    page = _text(response)
    assert "check digit" in page.split('data-testid="trace-error"')[1]
    assert 'value="(01)09506000134353"' in page  # the search box keeps the input to correct it


def test_trace_exports_xlsx_and_csv(client, plant):
    login(client, "qa")
    response = client.get("/trace/export.xlsx?q=L-100")
    assert response.status_code == 200
    assert "trace-L-100.xlsx" in response.headers["Content-Disposition"]
    workbook = load_workbook(io.BytesIO(response.data), read_only=True)
    cells = {value for sheet in workbook.worksheets for row in sheet.iter_rows(values_only=True) for value in row}
    assert {"L-100", "DN-1", "M-100"} <= cells
    response = client.get("/trace/export.csv?q=(01)" + GTIN + "(10)L-100")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert "trace-01-06901234567892-10-L-100.csv" in response.headers["Content-Disposition"]
    text = response.data.decode("utf-8-sig")
    assert "L-100" in text and "City Hospital" in text
    assert client.get("/trace/export.csv?q=").status_code == 400


def test_a_lot_file_may_be_larger_than_other_uploads_up_to_its_own_limit(app, client, seeded):
    login(client, "qa")
    padding = "x" * (app.config["MAX_CONTENT_LENGTH"] + 1024)  # bigger than any other upload may be
    response = _upload(client, "products", [["gtin", "name", "notes"], [GTIN, padding, ""]])
    assert response.status_code == 302  # accepted: the job then refuses the unknown column, not the size
    assert _wait_for_import(client, response.headers["Location"])["status"] == "failed"
    app.config["IMPORT_MAX_BYTES"] = 1024
    assert _upload(client, "products", [["gtin", "name"], [GTIN, padding]]).status_code == 413

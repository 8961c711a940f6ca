"""Values no database column holds never give a server error: integers outside the integer column's range (ids in
URLs, `page`, quantities), NUL characters and unpaired UTF-16 surrogates, non-finite JSON numbers. The API answers
them with its JSON error body ({error, message[, errors]}), pages with the error page; and every page of the app
is swept with them (int URL parts, paging arguments, form fields)."""
from __future__ import annotations

import io
import re

import pytest

from app.edge import INT_MAX
from app.extensions import db
from app.models import OutboxMessage
from app.models.types import utcnow
from app.services.procedures import capa, recalls
from tests.conftest import login
from tests.integration import recall_steps as steps

API = "/api/v1"
HUGE = 2**63
NUL = "\x00"
SURROGATE = "\ud800"


@pytest.fixture
def admin(client, auth):
    return auth("admin")


def _error(response, status: int) -> dict:
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True)[:500])
    body = response.get_json()
    assert isinstance(body.get("error"), str) and isinstance(body.get("message"), str), body
    return body


# --- the API ----------------------------------------------------------------------------------------------------------

def test_ids_beyond_the_integer_column_are_not_found(client, admin):
    for path in (f"{API}/instances/{HUGE}", f"{API}/instances/{INT_MAX + 1}", f"{API}/tasks/{HUGE}",
                 f"{API}/product-lots/{HUGE}", f"{API}/recalls/{HUGE}", f"{API}/supplier-returns/{HUGE}",
                 f"{API}/documents/{10**30}", f"{API}/studio/drafts/{HUGE}", f"{API}/imports/{HUGE}",
                 f"{API}/instances/{INT_MAX}"):  # the largest id a column holds is looked up: not found either
        _error(client.get(path, headers=admin), 404)


def test_paging_beyond_the_integer_range_is_refused_with_the_field(client, admin):
    for path in (f"{API}/tasks", f"{API}/products", f"{API}/product-lots"):
        for query in (f"page={10**20}", f"per_page={10**20}", f"page={HUGE}&per_page=1", f"page={-HUGE}"):
            body = _error(client.get(f"{path}?{query}", headers=admin), 422)
            assert set(body["errors"]["query"]) <= {"page", "per_page"}, (path, query)


def test_integers_in_json_bodies_beyond_the_range_are_refused_with_the_field(client, admin):
    for path, body, field in (
            (f"{API}/recalls/start", {"lot_id": HUGE}, "lot_id"),
            (f"{API}/supplier-returns/start", {"material_lot_id": -HUGE}, "material_lot_id"),
            (f"{API}/studio/instances/1/migrate", {"version": HUGE, "reason": "x"}, "version"),
            (f"{API}/recalls/1/returns", {"customer": "D1", "lot": "L1", "returned": HUGE}, "returned"),
            (f"{API}/recalls/1/checks", {"consignee_id": 10**30, "method": "phone", "effective": True},
             "consignee_id")):
        assert field in _error(client.post(path, headers=admin, json=body), 422)["errors"]["json"], path


def test_json_text_no_column_holds_is_refused(client, admin):
    for raw in ('{"process": "capa", "title": "a\\u0000b"}',
                '{"process": "capa", "title": "\\ud800"}',
                '{"process": "capa", "data": {"description": "\\udfff x"}}',
                '{"process": "capa", "data": {"a\\u0000": 1}}',
                '{"process": "capa", "data": {"probability": NaN}}',
                '{"process": "capa", "data": {"n": [1, Infinity]}}'):
        response = client.post(f"{API}/instances", headers=admin, data=raw, content_type="application/json")
        assert list(_error(response, 400)["errors"]["json"]), raw
    _error(client.post(f"{API}/instances", headers=admin, json={"process": "capa", "title": f"x{SURROGATE}"}), 400)
    assert client.get(f"{API}/tasks", headers=admin).get_json()["total"] == 0  # nothing was started


def test_json_nested_too_deep_is_refused(client, admin):
    raw = '{"process": "capa", "data": {"x": ' + "[" * 100_000 + "]" * 100_000 + "}}"
    _error(client.post(f"{API}/instances", headers=admin, data=raw, content_type="application/json"), 400)


def test_nul_in_the_path_is_not_found_and_in_the_query_refused(client, admin):
    for path in (f"{API}/processes/a%00b", f"{API}/acknowledgments/%00", f"{API}/scar-responses/x%00",
                 f"{API}/studio/versions/%00/1.bpmn"):
        _error(client.get(path, headers=admin), 404)
    for path in (f"{API}/trace?q=L1%00", f"{API}/products?q=%00", f"{API}/tasks?process=%00",
                 f"{API}/trace/export?q=a&format=csv%00", f"{API}/studio/diff?key=%00&from=1"):
        assert list(_error(client.get(path, headers=admin), 400)["errors"]["query"]), path


def test_nul_in_a_multipart_upload_is_refused(client, admin):
    data = {"file": (io.BytesIO(b"<definitions/>"), "x.bpmn"), "change_note": f"note{NUL}"}
    body = _error(client.post(f"{API}/processes/deploy", headers=admin, data=data,
                              content_type="multipart/form-data"), 400)
    assert body["errors"] == {"form": {"change_note": [body["errors"]["form"]["change_note"][0]]}}
    data = {"file": (io.BytesIO(b"a,b\n"), f"lots{NUL}.csv"), "kind": "products"}
    _error(client.post(f"{API}/imports", headers=admin, data=data, content_type="multipart/form-data"), 400)


def test_control_characters_in_a_trace_export_do_not_break_the_workbook(client, admin):
    response = client.get(f"{API}/trace/export?q=%C2%AB%08%7C&format=xlsx", headers=admin)
    assert response.status_code in (200, 400), response.get_data(as_text=True)[:300]


# --- the pages --------------------------------------------------------------------------------------------------------

@pytest.fixture
def signed_in(client, seeded):
    login(client, "admin")
    return client


def _get_rules(app) -> list[str]:
    return sorted({rule.rule for rule in app.url_map.iter_rules()
                   if "GET" in rule.methods and not rule.rule.startswith(("/api/", "/static/"))
                   and rule.endpoint != "auth.logout"})


def _page(rule: str, response) -> bool:
    """Say whether the answer is the error page (the studio's JSON endpoints answer JSON)."""
    if rule.startswith("/studio/api/"):
        return "application/json" in response.content_type
    return "text/html" in response.content_type or (rule.endswith(".json") and response.is_json)


def _fill(rule: str, number: str, text: str) -> str:
    return re.sub(r"<([a-z]+):?([a-z_]*)>", lambda m: number if m.group(1) == "int" else text, rule)


def test_every_page_with_an_id_beyond_the_range_is_not_found(app, signed_in):
    for rule in _get_rules(app):
        if "<int:" not in rule:
            continue
        response = signed_in.get(_fill(rule, str(HUGE), "capa"))
        assert response.status_code == 404, (rule, response.status_code)
        assert _page(rule, response), rule


def test_no_page_fails_on_paging_and_numbers_beyond_the_range(app, signed_in):
    query = "&".join(f"{name}={value}" for name in ("page", "per_page", "year", "from", "to", "draft", "base",
                                                     "version", "days", "instance", "lot_id", "next")
                     for value in (10**20,))
    for rule in _get_rules(app):
        path = _fill(rule, "1", "capa")
        response = signed_in.get(f"{path}?{query}")
        assert response.status_code < 500, (path, response.status_code)


def test_no_page_fails_on_nul_in_the_path_or_the_query(app, signed_in):
    for rule in _get_rules(app):
        response = signed_in.get(_fill(rule, "1", "a%00b") + "?q=%00&status=%00&kind=%00")
        assert response.status_code in (400, 404), (rule, response.status_code)
        assert _page(rule, response), rule


# Every field a page form reads (app/web), with values no column holds.
FORM_FIELDS = ("add all_failed base capa_instance_id change_note customer day days draft effective forwarded from id "
               "jurisdiction key kind lane lot lot_id material_lot_id method name next note overdue page password "
               "process q reason received remove replace scope status title to version year returned destroyed "
               "on_hand contact comment quantity location").split()


def test_no_page_form_fails_on_values_no_column_holds(app, signed_in):
    posts = sorted({rule.rule for rule in app.url_map.iter_rules()
                    if "POST" in rule.methods and not rule.rule.startswith("/api/")
                    and rule.endpoint not in ("auth.logout", "auth.login")})
    for value in (str(HUGE), str(-HUGE), "1" * 40, "²", f"x{NUL}y"):
        for rule in posts:
            path = _fill(rule, "1", "capa")
            response = signed_in.post(path, data={name: value for name in FORM_FIELDS})
            assert response.status_code < 500, (path, value, response.status_code)


def test_a_page_form_with_nul_is_refused_and_saves_nothing(client, signed_in, admin):
    response = signed_in.post("/lots/products/new", data={"gtin": "06901234567892", "name": f"Infusion{NUL}set"})
    assert response.status_code == 400
    assert "text/html" in response.content_type
    assert client.get(f"{API}/products", headers=admin).get_json()["total"] == 0


def test_the_sign_in_page_refuses_nul_with_a_page(client, seeded):
    response = client.post("/login", data={"username": f"admin{NUL}", "password": "x"})
    assert response.status_code == 400
    assert "text/html" in response.content_type


def test_surrogates_in_page_json_are_refused(signed_in):
    response = signed_in.post("/studio/api/validate", data='{"xml": "\\ud800"}', content_type="application/json")
    assert response.status_code == 400


def test_the_browser_json_endpoints_take_bodies_of_any_shape(signed_in):
    for body in (HUGE, [1], "x", None, {"change_note": HUGE, "reason": [1], "version": HUGE, "schema": {"a": 1},
                                        "values": [[1, 2], ["a"], "ab"], "lang": {"x": 1}}):
        for method, path in (("POST", "/studio/api/drafts/1/deploy"), ("POST", "/studio/api/instances/1/migrate"),
                             ("PUT", "/studio/forms/capa"), ("POST", "/studio/forms/capa/preview")):
            response = signed_in.open(path, method=method, json=body)
            assert response.status_code < 500, (method, path, body, response.status_code)


# --- services reading numbers from text -------------------------------------------------------------------------------

@pytest.fixture
def notified(plant, user) -> int:
    """A decided class I recall of L1 and L2 with its notices queued."""
    instance_id = steps.decide(user, utcnow()).id
    steps.step(instance_id, "prepare_notices", steps.NOTICES, user, utcnow())
    return instance_id


def test_numbers_no_column_holds_are_refused_where_text_is_read(client, admin, notified):
    consignee = next(c for c in recalls.recall_view(notified).consignees if c.customer.code == "US1")
    token = db.session.get(OutboxMessage, consignee.outbox_message_id).body.split("/ack/")[1].split()[0]
    line = consignee.lines[0]
    answer = client.post(f"/ack/{token}", data={"received": "yes", "on_hand": str(HUGE), "contact": "Pat",
                                                f"returned_{line.id}": str(HUGE), f"destroyed_{line.id}": "²"})
    assert answer.status_code == 422 and "2147483647" in answer.get_data(as_text=True)
    rows = f"customer,lot,returned,destroyed\nUS1,L2,{HUGE},0\nUS1,L2,²,0\n".encode()
    refused = client.post(f"{API}/recalls/{notified}/returns/import", headers=admin,
                          data={"file": (io.BytesIO(rows), "returns.csv")}, content_type="multipart/form-data")
    assert [error["column"] for error in _error(refused, 422)["errors"]] == ["returned", "returned"]
    lot = client.post(f"{API}/product-lots", headers=admin, json={"gtin": "06901234567892", "lot_number": "L9",
                                                                  "quantity": str(INT_MAX + 1)})
    assert "quantity" in _error(lot, 422)["errors"]


def test_unicode_digits_and_huge_references_find_nothing(signed_in):
    assert signed_in.get("/audit/?q=%C2%B2").status_code == 200  # "²" is a digit to str.isdigit, not to int()
    assert signed_in.get(f"/audit/?q=%23{HUGE}").status_code == 200
    for reference in ("²", str(HUGE), f"#{INT_MAX + 1}"):
        for source in ("inspection", "recall"):  # the CAPA form's check of its source record
            errors = capa.check_source(None, {"source": source, "source_reference": reference}, "en")
            assert list(errors) == ["source_reference"], (reference, source)

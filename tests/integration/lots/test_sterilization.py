"""Sterilization batch records: the release check matrix, a failed batch holding its lots for one CAPA, QA's e-signed
release (wrong password refused), file imports refused whole, hostile API values, and the pages."""
from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from app.exceptions import Conflict, FormInvalid, ImportRefused, PermissionDenied, SignatureRejected
from app.extensions import db
from app.models import AuditEvent, InstanceLot, ProcessDefinition, ProcessInstance, ProcessVersion, Product, ProductLot
from app.models.sterilization import SterilizationBatch, SterilizationLoad
from app.services import demo
from app.services.lots import import_rules, imports, lots, sterilization
from tests.conftest import T0, login

TODAY = T0.date()
GTIN = "06901234567892"
EO = {"method": "eo", "processed_on": "2026-11-20", "sterilizer": "EO-1", "temperature_c": "54",
      "humidity_rh": "60", "gas_mg_l": "600", "exposure_minutes": "360"}
GAMMA = {"method": "gamma", "processed_on": "2026-11-20", "sterilizer": "Irradiator 2", "dose_min_kgy": "27.5",
         "dose_max_kgy": "36"}
API = "/api/v1"


@pytest.fixture
def plant(seeded):
    """A sterile syringe with lots A (quarantine), B (released) and C (quarantine), 1,000 units each."""
    product = Product(name="Syringe 5 ml", model="S5", gtin=GTIN, sterile=True)
    db.session.add(product)
    db.session.add_all(ProductLot(product=product, lot_number=name, quantity=1000, status=status,
                                  manufactured_on=date(2026, 11, 1), expiry_on=date(2029, 10, 31),
                                  batch_record_complete=True, labels_checked=True)
                       for name, status in (("A", "quarantine"), ("B", "released"), ("C", "quarantine")))
    db.session.commit()
    return seeded


def _lot(number: str) -> ProductLot:
    db.session.expire_all()
    return db.session.scalar(select(ProductLot).where(ProductLot.lot_number == number))


def _record(user, number="EO-1", load="A:600; B", username="qa", **values) -> SterilizationBatch:
    record_id = imports.create_record("sterilization_batches", {"batch_number": number, **EO, "load": load,
                                                                **values}, user(username), now=T0)
    db.session.expire_all()
    return db.session.get(SterilizationBatch, record_id)


def _capas() -> list[ProcessInstance]:
    return list(db.session.scalars(select(ProcessInstance).join(ProcessVersion).join(ProcessDefinition).where(
        ProcessDefinition.key == "capa").order_by(ProcessInstance.id)))


def _released(user, number="EO-1", load="A; B") -> SterilizationBatch:
    batch = _record(user, number, load, bi_result="pass")
    return sterilization.decide(batch.id, "release", "Cycle and BI in order.", user("releaser"),
                                demo.DEMO_PASSWORD, now=T0)


# --- the release check ---------------------------------------------------------------------------------------------

def _check(number: str) -> dict:
    lot = _lot(number)
    report = lots.release_checks(lot, TODAY).as_dict()
    return next(check for check in report["checks"] if check["code"] == "sterilization_record")


@pytest.mark.parametrize(("setup", "passed", "english", "chinese"), [
    pytest.param("none", False, "sterile product without a sterilization batch", "无菌产品缺少灭菌批号", id="no batch"),
    pytest.param("unknown", False, "sterilization batch EO-404 has no sterilization record",
                 "灭菌批 EO-404 没有灭菌记录", id="batch unknown"),
    pytest.param("bi_pending", False, "sterilization batch EO-1 is pending: biological indicator result not in yet",
                 "灭菌批 EO-1 待定：生物指示物结果尚未出来", id="BI pending"),
    pytest.param("not_released", False, "sterilization batch EO-1 is pending: not yet released by QA",
                 "灭菌批 EO-1 待定：质量部尚未放行", id="awaiting QA release"),
    pytest.param("failed", False, "sterilization batch EO-1 failed", "灭菌批 EO-1 不合格", id="batch failed"),
    pytest.param("released", True, "", "", id="batch released"),
])
def test_a_sterile_lot_passes_its_release_check_only_with_a_released_batch(plant, user, setup, passed, english,
                                                                           chinese):
    if setup == "unknown":
        _lot("A").sterilization_batch = "EO-404"
        db.session.commit()
    elif setup == "bi_pending":
        _record(user)
    elif setup == "not_released":
        _record(user, bi_result="pass")
    elif setup == "failed":
        _record(user, bi_result="fail")
    elif setup == "released":
        _released(user)
    check = _check("A")
    assert (check["passed"], check["detail"], check["detail_zh"]) == (passed, english, chinese)


def test_a_non_sterile_product_needs_no_sterilization_record(plant):
    _lot("A").product.sterile = False
    db.session.commit()
    assert _check("A")["passed"] is True


def test_the_lot_page_shows_the_check_in_chinese_and_links_the_batch(plant, user, client):
    batch = _record(user)
    login(client, "qa")
    lot = _lot("A")
    page = client.get(f"/lots/product-lots/{lot.id}?lang=zh-CN", headers={"Accept-Language": "zh-CN"})
    text = page.get_data(as_text=True)
    assert "灭菌批 EO-1 待定：生物指示物结果尚未出来" in text
    assert f'href="/sterilization/{batch.id}"' in text


# --- recording a batch ---------------------------------------------------------------------------------------------

def test_a_recorded_batch_keeps_its_load_limits_and_sets_the_lots_batch(plant, user):
    batch = _record(user)
    assert (batch.status, batch.bi_result, batch.failure_reasons) == ("pending", "pending", [])
    assert batch.parameters == {"temperature_c": 54, "humidity_rh": 60, "gas_mg_l": 600, "exposure_minutes": 360}
    assert batch.limits["temperature_c"] == [45, 60]
    assert [(row.product_lot.lot_number, row.quantity) for row in batch.load] == [("A", 600), ("B", 1000)]
    assert (_lot("A").sterilization_batch, _lot("B").sterilization_batch) == ("EO-1", "EO-1")
    actions = list(db.session.scalars(select(AuditEvent.action).where(AuditEvent.action.like("%sterilization%"))))
    assert actions.count("lot.sterilization_batch_set") == 2 and "sterilization.recorded" in actions


def test_radiation_records_dosimeters_and_no_biological_indicator(plant, user):
    record_id = imports.create_record("sterilization_batches", {"batch_number": "G-1", **GAMMA, "load": "C"},
                                      user("qa"), now=T0)
    batch = db.session.get(SterilizationBatch, record_id)
    assert (batch.bi_result, batch.parameters) == (None, {"dose_min_kgy": 27.5, "dose_max_kgy": 36})
    assert sterilization.release_problems(batch) == []
    with pytest.raises(Conflict, match="dosimeters"):
        sterilization.record_bi_result(batch.id, "pass", user("qa"), now=T0)


@pytest.mark.parametrize(("values", "column", "code"), [
    pytest.param({"temperature_c": ""}, "temperature_c", "parameter_required", id="EO without temperature"),
    pytest.param({"dose_min_kgy": "25"}, "dose_min_kgy", "parameter_not_used", id="a dose for EO"),
    pytest.param({"temperature_c": "900"}, "temperature_c", "out_of_bounds", id="impossible temperature"),
    pytest.param({"temperature_c": "nan"}, "temperature_c", "bad_number", id="NaN"),
    pytest.param({"method": "plasma"}, "method", "bad_choice", id="unknown method"),
    pytest.param({"load": "Z9"}, "load", "unknown_lot", id="unknown lot"),
    pytest.param({"load": "A:5000"}, "load", "load_quantity", id="more than the lot holds"),
    pytest.param({"load": "A:-3"}, "load", "bad_load", id="negative quantity"),
    pytest.param({"load": "A; A"}, "load", "repeated_lot", id="a lot twice"),
    pytest.param({"load": ""}, "load", "empty_load", id="no lots"),
    pytest.param({"bi_result": "maybe"}, "bi_result", "bad_choice", id="unknown BI result"),
])
def test_a_bad_record_is_refused_with_the_reason_on_its_field(plant, user, values, column, code):
    with pytest.raises(FormInvalid) as refused:
        imports.create_record("sterilization_batches", {"batch_number": "EO-1", **EO, "load": "A", **values},
                              user("qa"), now=T0)
    assert column in refused.value.errors
    assert db.session.scalar(select(func.count(SterilizationBatch.id))) == 0
    assert _lot("A").sterilization_batch is None
    state = import_rules.ImportState(db.session, user("qa"), T0)
    with pytest.raises(ImportRefused) as rows:
        import_rules.import_rows(sterilization.BATCH_KIND, [(2, {"batch_number": "EO-1", **EO, "load": "A",
                                                                 **values})], state)
    db.session.rollback()
    assert [(e["column"], e["code"]) for e in rows.value.errors] == [(column, code)]


def test_a_lot_of_a_batch_that_has_not_failed_cannot_join_another(plant, user):
    _record(user)
    with pytest.raises(FormInvalid) as refused:
        _record(user, "EO-2", load="A")
    assert refused.value.errors["load"] == ["lot A belongs to sterilization batch EO-1, which has not failed"]


# --- failure: holds and one CAPA -----------------------------------------------------------------------------------

def test_a_positive_bi_fails_the_batch_holds_its_lots_and_opens_one_capa(plant, user):
    batch = _record(user)
    sterilization.record_bi_result(batch.id, "fail", user("qa"), now=T0, note="Growth after 48 h")
    db.session.expire_all()
    batch = db.session.get(SterilizationBatch, batch.id)
    assert batch.status == "failed"
    assert [sterilization.failure_text(r) for r in batch.failure_reasons] == [
        "biological indicator positive (growth after incubation)"]
    capas = _capas()
    assert len(capas) == 1 and capas[0].id == batch.capa_instance_id
    assert capas[0].title == "CAPA: sterilization batch EO-1 failed"
    assert capas[0].data["containment_lots"] == "A, B" and capas[0].data["severity"] == "critical"
    assert (_lot("A").status, _lot("B").status, _lot("C").status) == ("hold", "hold", "quarantine")
    holds = {(link.product_lot_id, link.previous_status) for link in db.session.scalars(
        select(InstanceLot).where(InstanceLot.instance_id == capas[0].id, InstanceLot.role == "containment"))}
    assert holds == {(_lot("A").id, "quarantine"), (_lot("B").id, "released")}
    # Failing again changes nothing: no second CAPA, and the closed record refuses more results and decisions.
    sterilization._fail(batch, batch.failure_reasons, user("qa"), T0)
    db.session.commit()
    assert len(_capas()) == 1
    with pytest.raises(Conflict, match="closed"):
        sterilization.record_bi_result(batch.id, "pass", user("qa"), now=T0)
    with pytest.raises(Conflict, match="already failed"):
        sterilization.decide(batch.id, "fail", "again", user("releaser"), demo.DEMO_PASSWORD, now=T0)
    assert len(_capas()) == 1


def test_parameters_out_of_their_limits_fail_the_batch_when_it_is_recorded(plant, user):
    batch = _record(user, temperature_c="38.5", exposure_minutes="200")
    assert batch.status == "failed"
    assert [sterilization.failure_text(r) for r in batch.failure_reasons] == [
        "Temperature 38.5 °C is below the validated minimum 45 °C",
        "Exposure time 200 min is below the validated minimum 240 min"]
    assert [sterilization.failure_text(r, "zh-CN") for r in batch.failure_reasons][0] == \
        "温度 38.5 °C 低于确认的下限 45 °C"
    assert len(_capas()) == 1 and _lot("A").status == "hold"


def test_a_plant_sets_its_own_validated_limits_and_a_batch_keeps_those_it_was_judged_by(plant, user, app):
    app.config["STERILIZATION_LIMITS"] = {"eo": {"temperature_c": [50, 55]}}
    inside = _record(user, "EO-1", load="A", temperature_c="54.5")
    outside = _record(user, "EO-2", load="B", temperature_c="55.5")
    assert (inside.status, inside.limits["temperature_c"], inside.limits["exposure_minutes"]) == (
        "pending", [50, 55], [240, None])
    assert outside.status == "failed"
    assert sterilization.failure_text(outside.failure_reasons[0]) == \
        "Temperature 55.5 °C is above the validated maximum 55 °C"
    app.config["STERILIZATION_LIMITS"] = {}
    assert db.session.get(SterilizationBatch, inside.id).limits["temperature_c"] == [50, 55]


def test_qa_fails_a_batch_explicitly_with_a_signed_reason(plant, user):
    batch = _record(user, bi_result="pass")
    with pytest.raises(FormInvalid):
        sterilization.decide(batch.id, "fail", "  ", user("releaser"), demo.DEMO_PASSWORD, now=T0)
    sterilization.decide(batch.id, "fail", "Load pattern not as validated", user("releaser"), demo.DEMO_PASSWORD,
                         now=T0)
    db.session.expire_all()
    batch = db.session.get(SterilizationBatch, batch.id)
    assert (batch.status, batch.signed_meaning, batch.signed_name) == ("failed", "failed", "Rita Releaser")
    assert sterilization.failure_text(batch.failure_reasons[-1]) == "failed by QA: Load pattern not as validated"
    assert len(_capas()) == 1 and _lot("B").status == "hold"


def test_a_resterilized_lot_leaves_the_failed_batch_for_a_new_one(plant, user):
    failed = _record(user, bi_result="fail")
    again = _record(user, "EO-2", load="A")
    assert _lot("A").sterilization_batch == "EO-2"
    page = sterilization.batch_page(failed.id)
    assert [(row.lot.lot_number, row.current) for row in page.lots] == [("A", False), ("B", True)]
    assert again.status == "pending"


def test_without_the_capa_procedure_a_failed_batch_is_refused(plant, user, monkeypatch):
    monkeypatch.setattr(sterilization, "CAPA_PROCESS", "no_such_procedure")
    with pytest.raises(Conflict, match="CAPA procedure is not deployed"):
        _record(user, bi_result="fail")
    assert db.session.scalar(select(func.count(SterilizationBatch.id))) == 0
    assert _lot("A").status == "quarantine"


# --- QA's signed release -------------------------------------------------------------------------------------------

def test_release_is_e_signed_by_a_qa_releaser_with_the_right_password(plant, user):
    batch = _record(user)
    with pytest.raises(Conflict, match="biological indicator result is still pending"):
        sterilization.decide(batch.id, "release", "", user("releaser"), demo.DEMO_PASSWORD, now=T0)
    sterilization.record_bi_result(batch.id, "pass", user("qa"), now=T0)
    with pytest.raises(PermissionDenied):
        sterilization.decide(batch.id, "release", "", user("qa"), demo.DEMO_PASSWORD, now=T0)
    with pytest.raises(SignatureRejected, match="password is wrong"):
        sterilization.decide(batch.id, "release", "", user("releaser"), "not-my-password", now=T0)
    db.session.expire_all()
    assert db.session.get(SterilizationBatch, batch.id).status == "pending"
    assert db.session.scalar(select(func.count(AuditEvent.id)).where(AuditEvent.action == "signature.failed")) == 1
    sterilization.decide(batch.id, "release", "Cycle, BI and load in order.", user("releaser"), demo.DEMO_PASSWORD,
                         now=T0 + timedelta(hours=1))
    db.session.expire_all()
    batch = db.session.get(SterilizationBatch, batch.id)
    assert (batch.status, batch.signed_meaning, batch.signed_name, len(batch.signed_hash)) == (
        "released", "released", "Rita Releaser", 64)
    assert batch.decided_at == T0 + timedelta(hours=1)
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "sterilization.released"))
    assert event.new["hash"] == batch.signed_hash and event.new["lots"] == ["A", "B"]
    assert _check("A")["passed"] and _check("B")["passed"]
    with pytest.raises(Conflict, match="already released"):
        sterilization.decide(batch.id, "fail", "late", user("releaser"), demo.DEMO_PASSWORD, now=T0)


# --- file import ---------------------------------------------------------------------------------------------------

HEADER = ["batch_number", "method", "processed_on", "temperature_c", "humidity_rh", "gas_mg_l", "exposure_minutes",
          "dose_min_kgy", "dose_max_kgy", "bi_result", "load"]


def _csv(rows: list[list]) -> bytes:
    return "\n".join(",".join(str(cell) for cell in row) for row in rows).encode()


def test_a_file_with_a_bad_row_imports_no_batch(plant, user, app, tmp_path, monkeypatch):
    monkeypatch.setattr(app, "instance_path", str(tmp_path))
    rows = [HEADER, ["EO-1", "eo", "2026-11-20", "54", "60", "600", "360", "", "", "pass", "A:500"],
            ["G-1", "gamma", "2026-11-21", "", "", "", "", "26", "35", "", "B"],
            ["G-2", "gamma", "2026-11-21", "", "", "", "", "38", "35", "", "C"]]  # min above max
    job = imports.run_import(imports.start_import("sterilization_batches", "batches.csv", _csv(rows), user("qa"),
                                                  now=T0).id, now=T0)
    assert job.status == "failed"
    assert [(e["line"], e["column"], e["code"]) for e in job.errors] == [(4, "dose_max_kgy", "min_above_max")]
    db.session.expire_all()
    assert db.session.scalar(select(func.count(SterilizationBatch.id))) == 0
    assert db.session.scalar(select(func.count(SterilizationLoad.id))) == 0
    assert [_lot(n).sterilization_batch for n in "ABC"] == [None, None, None]
    rows[3][7] = "30"
    job = imports.run_import(imports.start_import("sterilization_batches", "batches.csv", _csv(rows), user("qa"),
                                                  now=T0).id, now=T0)
    assert (job.status, job.imported_rows) == ("succeeded", 3)
    assert [_lot(n).sterilization_batch for n in "ABC"] == ["EO-1", "G-1", "G-2"]


def test_a_file_failing_a_batch_holds_its_lots_in_the_same_import(plant, user, app, tmp_path, monkeypatch):
    monkeypatch.setattr(app, "instance_path", str(tmp_path))
    rows = [HEADER, ["EO-9", "eo", "2026-11-20", "54", "60", "1500", "360", "", "", "pending", "A; C"]]
    job = imports.run_import(imports.start_import("sterilization_batches", "b.csv", _csv(rows), user("qa"),
                                                  now=T0).id, now=T0)
    assert job.status == "succeeded"
    assert (_lot("A").status, _lot("C").status) == ("hold", "hold") and len(_capas()) == 1


def test_import_state_keeps_file_order_for_lots_moving_between_batches(plant, user):
    """Two rows of one file may not both load the same lot."""
    state = import_rules.ImportState(db.session, user("qa"), T0)
    rows = [(2, {"batch_number": "EO-1", **EO, "load": "A"}), (3, {"batch_number": "EO-2", **EO, "load": "A"})]
    with pytest.raises(ImportRefused) as refused:
        import_rules.import_rows(sterilization.BATCH_KIND, rows, state)
    db.session.rollback()
    assert [(e["line"], e["code"]) for e in refused.value.errors] == [(3, "lot_in_other_batch")]


# --- the API -------------------------------------------------------------------------------------------------------

@pytest.fixture
def auth(plant):
    from app.services import users
    tokens: dict[str, str] = {}

    def headers(username: str) -> dict[str, str]:
        if username not in tokens:
            tokens[username] = users.issue_token(username)
        return {"Authorization": f"Bearer {tokens[username]}"}
    return headers


def test_the_api_records_reads_and_releases_a_batch(client, auth):
    created = client.post(f"{API}/sterilization-batches", headers=auth("qa"),
                          json={"batch_number": "G-1", **GAMMA, "load": [{"lot": "A", "quantity": 400}, {"lot": "B"}]})
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    assert body["batch"]["status"] == "pending" and body["batch"]["bi_result"] is None
    assert [(row["lot_number"], row["quantity"]) for row in body["lots"]] == [("A", 400), ("B", 1000)]
    batch_id = body["batch"]["id"]
    wrong = client.post(f"{API}/sterilization-batches/{batch_id}/decision", headers=auth("releaser"),
                        json={"decision": "release", "password": "wrong"})
    assert wrong.status_code == 401 and "password" in wrong.get_json()["message"]
    signed = client.post(f"{API}/sterilization-batches/{batch_id}/decision", headers=auth("releaser"),
                         json={"decision": "release", "reason": "Doses within limits", "password": demo.DEMO_PASSWORD})
    assert signed.status_code == 200 and signed.get_json()["batch"]["signed_name"] == "Rita Releaser"
    assert "password" not in signed.get_json()
    listed = client.get(f"{API}/sterilization-batches?status=released", headers=auth("auditor")).get_json()
    assert [item["batch_number"] for item in listed["items"]] == ["G-1"]
    lot_id = client.get(f"{API}/product-lots?q=A", headers=auth("qa")).get_json()["items"][0]["id"]
    checks = client.get(f"{API}/product-lots/{lot_id}/release-checks", headers=auth("qa")).get_json()
    assert {c["code"]: c["passed"] for c in checks["checks"]}["sterilization_record"] is True


@pytest.mark.parametrize(("method", "path", "body", "status"), [
    ("post", "/sterilization-batches", {"batch_number": "X" * 61, **GAMMA, "load": "A"}, 422),
    ("post", "/sterilization-batches", {"batch_number": "G-1", **GAMMA, "dose_min_kgy": "Infinity", "load": "A"}, 422),
    ("post", "/sterilization-batches", {"batch_number": "G-1", **GAMMA, "dose_min_kgy": True, "load": "A"}, 422),
    ("post", "/sterilization-batches", {"batch_number": "G-1", **GAMMA, "load": [{"lot": ["A"]}]}, 422),
    ("post", "/sterilization-batches", {"batch_number": "G-1", **GAMMA, "load": f"A:{2**63}"}, 422),
    ("post", "/sterilization-batches", {"batch_number": "G-1", **GAMMA, "load": "A", "extra": "x"}, 422),
    ("post", "/sterilization-batches", {"batch_number": "G-1", **GAMMA, "processed_on": "2026-13-45", "load": "A"},
     422),
    ("post", "/sterilization-batches", ["not", "an", "object"], 422),
    ("post", "/sterilization-batches/1/decision", {"decision": "maybe", "password": "x"}, 422),
    ("post", "/sterilization-batches/1/decision", {"decision": "release"}, 422),
    ("post", "/sterilization-batches/1/bi-result", {"result": "unsure"}, 422),
    ("post", f"/sterilization-batches/{2**40}/decision", {"decision": "release", "password": "x"}, 404),
    ("get", "/sterilization-batches/999", None, 404),
    ("get", "/sterilization-batches?per_page=1000", None, 422),
    ("get", "/sterilization-batches?status=lost", None, 422),
])
def test_hostile_api_values_answer_4xx_and_save_nothing(client, auth, method, path, body, status):
    response = getattr(client, method)(API + path, headers=auth("qa"), json=body)
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.get_json()["message"]
    assert db.session.scalar(select(func.count(SterilizationBatch.id))) == 0


def test_the_api_refuses_anonymous_callers(client, plant):
    assert client.get(f"{API}/sterilization-batches").status_code == 401


def test_the_api_imports_a_file_of_batches_all_or_nothing(client, auth, app, tmp_path, monkeypatch):
    import io
    monkeypatch.setattr(app, "instance_path", str(tmp_path))
    rows = [HEADER, ["G-1", "gamma", "2026-11-21", "", "", "", "", "26", "35", "", "A"],
            ["G-2", "gamma", "2026-11-21", "", "", "", "", "26", "35", "", "Z9"]]
    refused = client.post(f"{API}/imports", headers=auth("qa"), content_type="multipart/form-data",
                          data={"kind": "sterilization-batches", "file": (io.BytesIO(_csv(rows)), "b.csv")})
    assert refused.status_code == 422
    assert [(e["line"], e["column"]) for e in refused.get_json()["errors"]] == [(3, "load")]
    rows[2][-1] = "B"
    done = client.post(f"{API}/imports", headers=auth("qa"), content_type="multipart/form-data",
                       data={"kind": "sterilization-batches", "file": (io.BytesIO(_csv(rows)), "b.csv")})
    assert done.status_code == 201 and done.get_json()["imported_rows"] == 2


def test_an_auditor_cannot_record_or_sign(client, auth):
    response = client.post(f"{API}/sterilization-batches", headers=auth("auditor"),
                           json={"batch_number": "G-1", **GAMMA, "load": "A"})
    assert response.status_code == 403


# --- the pages -----------------------------------------------------------------------------------------------------

def test_the_list_filters_paginates_and_says_when_it_is_empty(plant, user, client, app):
    login(client, "qa")
    empty = client.get("/sterilization/?lang=en").get_data(as_text=True)
    assert 'data-testid="empty"' in empty and "No sterilization batch recorded yet" in empty
    for n in range(3):
        imports.create_record("sterilization_batches", {"batch_number": f"G-{n}", **GAMMA,
                                                        "load": "ABC"[n]}, user("qa"), now=T0)
    app.config["PAGE_SIZE"] = 2
    first = client.get("/sterilization/").get_data(as_text=True)
    assert first.count('href="/sterilization/') >= 2 and "Page 1 of 2" in first
    filtered = client.get("/sterilization/?q=C&method=gamma").get_data(as_text=True)
    assert "G-2" in filtered and "G-0" not in filtered
    none = client.get("/sterilization/?method=steam").get_data(as_text=True)
    assert "No sterilization batch matches these filters." in none
    assert client.get("/sterilization/?status=bogus&page=-4").status_code == 200


def test_the_new_batch_form_records_a_batch_and_shows_its_record(plant, client):
    login(client, "prod")
    form = client.get("/lots/sterilization_batches/new?lang=en").get_data(as_text=True)
    assert 'name="load"' in form and "Ethylene oxide (EO)" in form
    refused = client.post("/lots/sterilization_batches/new", data={"batch_number": "EO-1", **EO, "load": "A:9999"})
    assert refused.status_code == 422 and "more than the lot&#39;s 1000 units" in refused.get_data(as_text=True)
    saved = client.post("/lots/sterilization_batches/new", data={"batch_number": "EO-1", **EO, "load": "A:500"})
    assert saved.status_code == 302 and saved.headers["Location"].startswith("/sterilization/")
    page = client.get(saved.headers["Location"]).get_data(as_text=True)
    assert 'data-testid="bi-form"' in page and ">500<" in page


def test_the_detail_page_signs_a_release_and_refuses_a_wrong_password(plant, user, client):
    batch = _record(user, bi_result="pass")
    login(client, "releaser")
    page = client.get(f"/sterilization/{batch.id}?lang=en").get_data(as_text=True)
    assert "Exposure time" in page and "240" in page and 'data-testid="decision-form"' in page
    wrong = client.post(f"/sterilization/{batch.id}/decision", data={"decision": "release", "password": "nope"})
    assert wrong.status_code == 401 and "password is wrong" in wrong.get_data(as_text=True)
    done = client.post(f"/sterilization/{batch.id}/decision", data={"decision": "release", "password":
                                                                    demo.DEMO_PASSWORD}, follow_redirects=True)
    text = done.get_data(as_text=True)
    assert done.status_code == 200 and 'data-testid="signature"' in text and "Rita Releaser" in text
    assert client.get("/sterilization/by-number/EO-1").status_code == 302
    assert client.get("/sterilization/by-number/EO-404").status_code == 404
    assert client.get("/sterilization/999").status_code == 404


def test_the_detail_page_of_a_failed_batch_links_its_capa_in_chinese(plant, user, client):
    batch = _record(user, bi_result="fail")
    login(client, "qa")
    text = client.get(f"/sterilization/{batch.id}?lang=zh-CN").get_data(as_text=True)
    assert "生物指示物阳性" in text and f'href="/instances/{batch.capa_instance_id}"' in text
    capa_page = client.get(f"/instances/{batch.capa_instance_id}").get_data(as_text=True)
    assert f'href="/sterilization/{batch.id}" data-testid="capa-sterilization-batch">EO-1</a>' in capa_page


# --- the demo plant ------------------------------------------------------------------------------------------------

def test_the_demo_plant_records_a_cycle_per_production_day_and_qa_released_the_older_ones(runner, app):
    assert runner.invoke(args=["demo", "load"]).exit_code == 0
    statuses = dict(db.session.execute(select(SterilizationBatch.batch_number, SterilizationBatch.status)).all())
    assert statuses and set(statuses.values()) == {"released", "pending"}
    sterile_lots = db.session.scalars(select(ProductLot).join(Product).where(Product.sterile.is_(True))).all()
    assert all(lot.sterilization_batch in statuses for lot in sterile_lots)
    shipped = [lot for lot in sterile_lots if lot.status == "released"]
    assert shipped and all(statuses[lot.sterilization_batch] == "released" for lot in shipped)
    signed = db.session.scalars(select(SterilizationBatch).where(SterilizationBatch.status == "released")).all()
    assert {batch.signed_name for batch in signed} == {"Rita Releaser"} and all(b.signed_hash for b in signed)
    assert db.session.scalar(select(func.count(ProcessInstance.id))) == 2  # the demo CAPA and recall, no other

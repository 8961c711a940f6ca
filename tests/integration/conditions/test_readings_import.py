"""Reading imports (logger files, CSV and XLSX, and the gateways' JSON batches): units, time zones, clock order,
duplicates, unknown sensors and physical bounds; one bad row refuses the file with its line, nothing is stored."""
from __future__ import annotations

import io
from datetime import datetime, timedelta

import pytest
from openpyxl import Workbook

from app.exceptions import FormInvalid
from app.extensions import db
from app.models import Excursion, ImportJob, Reading, Sensor
from app.services.lots import conditions, imports
from app.services.users import issue_token
from tests.integration.conditions.conftest import START, run_file

HEADER = "timestamp,sensor,value,unit\n"


def stored() -> list[tuple[str, int, int]]:
    return [(code, at, value) for code, at, value in db.session.execute(
        db.select(Sensor.code, Reading.at, Reading.value).join(Sensor).order_by(Sensor.code, Reading.at))]


def seconds(text: str) -> int:
    return conditions.to_seconds(datetime.fromisoformat(text))


def test_units_zones_and_identical_duplicates(cold_room, user):
    content = (HEADER + "2026-11-20T08:00:00+08:00,T1,41,F\n"  # 41 °F = 5 °C, 00:00 UTC
               "2026-11-20 00:05,T1,5.25,°C\n"  # plant time (UTC in the tests)
               "2026-11-20T00:05:00Z,T1,5.25,C\n"  # the same reading again: skipped
               "2026/11/20 00:10:00,T1,46.4,°F\n"  # 8 °C
               "2026-11-20T00:00:00Z,H1,45.5,%RH\n").encode()
    job = run_file(content, user)
    assert (job.status, job.imported_rows) == ("succeeded", 4), job.errors
    assert job.message == "1 row(s) already stored with the same value were skipped."
    base = seconds("2026-11-20T00:00:00+00:00")
    assert stored() == [("H1", base, 4550), ("T1", base, 500), ("T1", base + 300, 525), ("T1", base + 600, 800)]
    again = run_file(content, user, filename="again.csv")
    assert (again.status, again.imported_rows) == ("succeeded", 0)
    assert again.message == "5 row(s) already stored with the same value were skipped."


def test_an_xlsx_export_with_date_cells(cold_room, user):
    book = Workbook()
    sheet = book.active
    sheet.append(["Timestamp", "Sensor", "Value", "Unit"])
    for minute in range(0, 30, 5):
        sheet.append([datetime(2026, 11, 20, 0, minute), "T1", 4.5, "C"])
    buffer = io.BytesIO()
    book.save(buffer)
    job = run_file(buffer.getvalue(), user, filename="logger.xlsx")
    assert (job.status, job.imported_rows) == ("succeeded", 6), job.errors


GOOD = "2026-11-20T00:00:00Z,T1,5.0,C\n"


@pytest.mark.parametrize(("rows", "line", "column", "code"), [
    ("2026-11-20T00:05:00Z,T9,5.0,C\n", 3, "sensor", "unknown_sensor"),
    ("yesterday at noon,T1,5.0,C\n", 3, "timestamp", "bad_timestamp"),
    ("1999-12-31T23:55:00Z,T1,5.0,C\n", 3, "timestamp", "bad_timestamp"),
    ("2026-02-30T00:05:00Z,T1,5.0,C\n", 3, "timestamp", "bad_timestamp"),
    ("2026-11-20T00:05:00Z,T1,5.0,K\n", 3, "unit", "bad_unit"),
    ("2026-11-20T00:05:00Z,T1,45,%RH\n", 3, "unit", "unit_mismatch"),
    ("2026-11-20T00:05:00Z,H1,5.0,C\n", 3, "unit", "unit_mismatch"),
    ("2026-11-20T00:05:00Z,T1,250,C\n", 3, "value", "physical_bounds"),
    ("2026-11-20T00:05:00Z,T1,500,F\n", 3, "value", "physical_bounds"),
    ("2026-11-20T00:05:00Z,H1,120,%RH\n", 3, "value", "physical_bounds"),
    ("2026-11-20T00:05:00Z,T1,warm,C\n", 3, "value", "bad_number"),
    ("2026-11-20T00:05:00Z,T1,nan,C\n", 3, "value", "bad_number"),
    ("2026-11-20T00:05:00Z,T1,,C\n", 3, "value", "required"),
    ("2026-11-19T23:55:00Z,T1,5.0,C\n", 3, "timestamp", "clock_order"),
    ("2026-11-20T00:00:00Z,T1,5.5,C\n", 3, "value", "conflicting_duplicate"),
    ("2026-11-20T08:00:00+08:00,T1,6,C\n", 3, "value", "conflicting_duplicate"),
])
def test_a_bad_row_refuses_the_file_with_its_line(cold_room, user, rows, line, column, code):
    job = run_file((HEADER + GOOD + rows + "2026-11-20T00:10:00Z,T1,5.0,C\n").encode(), user)
    assert job.status == "failed" and job.imported_rows == 0
    assert [(e["line"], e["column"], e["code"]) for e in job.errors] == [(line, column, code)]
    assert stored() == []


def test_a_reading_different_from_the_stored_one_is_refused(cold_room, user):
    run_file((HEADER + GOOD).encode(), user)
    job = run_file((HEADER + "2026-11-20T00:00:00Z,T1,7.0,C\n").encode(), user, filename="other.csv")
    assert job.status == "failed"
    assert job.errors[0]["code"] == "conflicting_duplicate" and "stored" in job.errors[0]["reason"]


def test_a_missing_column_refuses_the_file(cold_room, user):
    job = run_file(b"timestamp,sensor,value\n2026-11-20T00:00:00Z,T1,5\n", user)
    assert job.status == "failed" and [e["code"] for e in job.errors] == ["missing_column"]


def test_sensors_are_master_data_with_their_place(cold_room, user):
    record = imports.create_record("sensors", {"code": "V1", "place": "vehicle", "location": "Truck SU-E123",
                                               "interval_seconds": "60"}, user("qa"))
    assert db.session.get(Sensor, record).interval_seconds == 60
    for data, field in (({"code": "V2", "place": "vehicle"}, "location"),
                        ({"code": "S1", "place": "shipment"}, "shipment_document_no"),
                        ({"code": "S2", "place": "shipment", "shipment_document_no": "NOPE"}, "shipment_document_no"),
                        ({"code": "T1", "location": "x"}, "code")):
        with pytest.raises(FormInvalid) as refused:
            imports.create_record("sensors", data, user("qa"))
        assert list(refused.value.errors) == [field]


def test_a_gateway_batch_through_the_api(cold_room, user, client):
    headers = {"Authorization": f"Bearer {issue_token('qa')}"}
    start = START
    batch = [{"timestamp": (start + timedelta(minutes=5 * i)).isoformat(), "sensor": "T1",
              "value": 9.5 if 12 <= i < 21 else 5.0, "unit": "C"} for i in range(36)]
    answer = client.post("/api/v1/readings", json={"readings": batch}, headers=headers)
    assert answer.status_code == 201, answer.get_json()
    body = answer.get_json()
    assert body["imported"] == 36 and body["skipped"] == 0 and len(body["excursions"]) == 1
    excursion = client.get(f"/api/v1/excursions/{body['excursions'][0]}", headers=headers).get_json()
    assert excursion["minutes_out"] == 45 and excursion["lots"] == ["C1", "C2"] and excursion["max_value"] == 9.5
    # the batch again: all skipped, nothing new
    again = client.post("/api/v1/readings", json={"readings": batch}, headers=headers).get_json()
    assert (again["imported"], again["skipped"]) == (0, 36)
    assert db.session.scalar(db.select(db.func.count()).select_from(Excursion)) == 1
    # a bad reading refuses the batch and names its position
    bad = [{"timestamp": "2026-11-21T00:00:00Z", "sensor": "T1", "value": 5, "unit": "C"},
           {"timestamp": "2026-11-21T00:05:00Z", "sensor": "T1", "value": 5, "unit": "K", "extra": 1}]
    refused = client.post("/api/v1/readings", json={"readings": bad}, headers=headers)
    assert refused.status_code == 422
    assert {(e["line"], e["column"]) for e in refused.get_json()["errors"]} == {(2, "unit"), (2, "extra")}
    assert client.post("/api/v1/readings", json={"readings": []}, headers=headers).status_code == 422
    assert client.post("/api/v1/readings", json={"readings": bad}).status_code == 401
    sensor_id = db.session.scalar(db.select(Sensor.id).where(Sensor.code == "T1"))
    readings = client.get(f"/api/v1/sensors/{sensor_id}/readings?start=2026-11-20T01:00:00Z",
                          headers=headers).get_json()
    assert len(readings["readings"]) == 36 - 12 and readings["unit"] == "°C"  # from 01:00 to the latest
    assert readings["readings"][0] == {"at": "2026-11-20T01:00:00+00:00", "value": 9.5}
    assert db.session.scalar(db.select(db.func.count()).select_from(ImportJob)) == 0
    created = client.post("/api/v1/sensors", json={"code": "T2", "location": "Cold room B"}, headers=headers)
    assert created.status_code == 201, created.get_json()
    refused_sensor = client.post("/api/v1/sensors", json={"code": "T3", "place": "vehicle"}, headers=headers)
    assert refused_sensor.status_code == 422 and "location" in refused_sensor.get_json()["errors"]


def test_humidity_and_shipment_sensors(cold_room, user):
    """A humidity excursion has no MKT; a shipment's logger holds the shipped lot, not the stock elsewhere."""
    from app.models import Customer, Shipment
    customer = Customer(code="H9", name="City Hospital", kind="hospital")
    db.session.add(customer)
    db.session.flush()
    db.session.add(Shipment(product_lot_id=cold_room["C3"].id, customer_id=customer.id, quantity=20,
                            shipped_on=START.date(), document_no="DN-7"))
    db.session.commit()
    imports.create_record("sensors", {"code": "TR1", "place": "shipment", "shipment_document_no": "DN-7",
                                      "interval_seconds": "600"}, user("qa"))

    def batch(sensor: str, values: list[float], unit: str, step: int) -> list[dict]:
        return [{"timestamp": (START + timedelta(minutes=step * i)).isoformat(), "sensor": sensor, "value": v,
                 "unit": unit} for i, v in enumerate(values)]

    humid = conditions.receive_batch(batch("H1", [50] * 6 + [85] * 7 + [50] * 6, "%RH", 5), user("qa"))
    [excursion] = [db.session.get(Excursion, i) for i in humid["excursions"]]
    assert (excursion.quantity, excursion.minutes_out, excursion.max_value, excursion.mkt) == (
        "humidity", 35, 8500, None)
    # in transit: 46.4 °F = 8 °C is at the limit (inside), 50 °F = 10 °C for 40 minutes is out
    transit = conditions.receive_batch(batch("TR1", [41, 46.4, 46.4, 50, 50, 50, 50, 41], "F", 10), user("qa"))
    [shipped] = [db.session.get(Excursion, i) for i in transit["excursions"]]
    assert shipped.minutes_out == 40 and shipped.lots == ["C3"] and shipped.max_value == 1000
    assert cold_room["C3"].status == "hold"


def test_the_job_page_says_the_skipped_rows_in_the_page_language(cold_room, user, client):
    from tests.conftest import login
    run_file((HEADER + GOOD).encode(), user)
    job = run_file((HEADER + GOOD).encode(), user, filename="again.csv")
    login(client, "qa")  # qa reads Chinese
    page = client.get(f"/lots/imports/{job.id}").get_data(as_text=True)
    assert "已跳过 1 行" in page
    client.get("/language/en")
    assert client.get(f"/lots/imports/{job.id}.json").get_json()["message"] == (
        "1 row(s) already stored with the same value were skipped.")

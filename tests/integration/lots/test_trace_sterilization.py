"""The trace and the lot page show the sterilization batch records a sterile lot was in - its failed batch and the one
it was resterilized in - with method and status and a link to the batch page; the trace API and exports carry them;
the batches of every lot of a trace are read in one query, however many lots it reaches."""
from __future__ import annotations

import csv
import io
from datetime import date

import pytest
from sqlalchemy import event, select

from app.extensions import db
from app.models import GenealogyEdge, Product, ProductLot
from app.models.sterilization import SterilizationBatch
from app.services import users
from app.services.lots import imports, trace
from tests.conftest import T0, login

EO = {"method": "eo", "processed_on": "2026-11-20", "sterilizer": "EO-1", "temperature_c": "54",
      "humidity_rh": "60", "gas_mg_l": "600", "exposure_minutes": "360"}
GAMMA = {"method": "gamma", "processed_on": "2026-11-22", "sterilizer": "Irradiator 2", "dose_min_kgy": "27.5",
         "dose_max_kgy": "36"}


def _lot(number: str) -> ProductLot:
    return db.session.scalar(select(ProductLot).where(ProductLot.lot_number == number))


def _batch(user, number: str, load: str, values: dict, **extra) -> SterilizationBatch:
    batch_id = imports.create_record("sterilization_batches", {"batch_number": number, **values, "load": load,
                                                               **extra}, user("qa"), now=T0)
    db.session.expire_all()
    return db.session.get(SterilizationBatch, batch_id)


@pytest.fixture
def plant(seeded, user):
    """Sterile lots A and B in EO-1, which failed (positive BI); A resterilized in G-2 (gamma, pending); lot N
    names a batch without a record; kit K was made from A."""
    product = Product(name="Syringe 5 ml", gtin="06901234567892", sterile=True)
    db.session.add(product)
    db.session.add_all(ProductLot(product=product, lot_number=name, quantity=1000, manufactured_on=date(2026, 11, 1),
                                  sterilization_batch="ST-NONE" if name == "N" else None)
                       for name in ("A", "B", "N", "K"))
    db.session.commit()
    failed = _batch(user, "EO-1", "A; B", EO, bi_result="fail")
    again = _batch(user, "G-2", "A", GAMMA)
    db.session.add(GenealogyEdge(product_lot_id=_lot("K").id, component_lot_id=_lot("A").id, quantity=1))
    db.session.commit()
    return failed, again


def test_the_trace_report_and_api_carry_every_batch_a_lot_was_in(plant, client):
    failed, again = plant
    report = trace.trace_report("A")
    records = {(row["lot_number"], row["batch_number"]): row for row in report.sterilization_records}
    assert set(records) == {("A", "EO-1"), ("A", "G-2")}  # K was made from A: the trace from A reaches it, unsterilized
    assert records[("A", "EO-1")] | {"batch_id": 0} == {
        "lot_id": _lot("A").id, "lot_number": "A", "batch_id": 0, "batch_number": "EO-1", "method": "eo",
        "processed_on": "2026-11-20", "sterilizer": "EO-1", "bi_result": "fail", "status": "failed", "current": False}
    assert records[("A", "G-2")]["current"] is True and records[("A", "G-2")]["status"] == "pending"
    assert [row["batch_number"] for row in report.sterilization_records] == ["EO-1", "G-2"]  # oldest cycle first

    headers = {"Authorization": f"Bearer {users.issue_token('qa')}"}
    body = client.get("/api/v1/trace?q=K", headers=headers).get_json()
    assert [(r["lot_number"], r["batch_number"], r["batch_id"], r["method"], r["status"], r["current"])
            for r in body["sterilization_records"]] == [("A", "EO-1", failed.id, "eo", "failed", False),
                                                        ("A", "G-2", again.id, "gamma", "pending", True)]
    exported = client.get("/api/v1/trace/export?q=A&format=csv", headers=headers).get_data().decode("utf-8-sig")
    rows = [row for row in csv.reader(io.StringIO(exported)) if row[0] == "Sterilization"]
    assert [row[1:4] for row in rows] == [["A", "EO-1", "eo"], ["A", "G-2", "gamma"]]


def test_the_trace_page_and_the_lot_page_link_the_batches(plant, client):
    failed, again = plant
    login(client, "head")  # English
    page = client.get("/trace?q=K").get_data(as_text=True)
    backward = page[page.index('data-testid="trace-backward"'):]
    assert f'href="/sterilization/{failed.id}"' in backward and f'href="/sterilization/{again.id}"' in backward
    assert "Ethylene oxide" in backward or "ethylene oxide" in backward
    forward = client.get("/trace?q=A").get_data(as_text=True)
    lots_table = forward[forward.index('data-testid="trace-lots"'):forward.index("</tbody>",
                                                                              forward.index('data-testid="trace-lots"'))]
    assert f'href="/sterilization/{failed.id}">EO-1</a>' in lots_table and "resterilized in G-2" in lots_table
    assert "failed" in lots_table and "pending" in lots_table
    unrecorded = client.get("/trace?q=N").get_data(as_text=True)
    assert "ST-NONE" in unrecorded and "no sterilization record" in unrecorded

    lot_page = client.get(f"/lots/product-lots/{_lot('A').id}").get_data(as_text=True)
    section = lot_page[lot_page.index('data-testid="sterilization-records"'):]
    section = section[:section.index("</table>")]
    assert section.index("EO-1") < section.index("G-2")
    assert f'href="/sterilization/{failed.id}"' in section and "resterilized in G-2" in section
    assert "Irradiator 2" in section and "not used (dosimeters)" in section
    missing = client.get(f"/lots/product-lots/{_lot('B').id}").get_data(as_text=True)
    assert 'data-testid="sterilization-records"' in missing  # B stays in its failed batch
    none = client.get(f"/lots/product-lots/{_lot('K').id}").get_data(as_text=True)
    assert "No sterilization record: enter the batch" in none

    zh = client.get(f"/lots/product-lots/{_lot('A').id}?lang=zh-CN").get_data(as_text=True)
    assert "灭菌记录" in zh and f'href="/sterilization/{failed.id}"' in zh


def _statements(run) -> int:
    seen: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    engine = db.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        run()
    finally:
        event.remove(engine, "before_cursor_execute", count)
    return len(seen)


def _load(user, number: str, size: int) -> None:
    product = db.session.scalar(select(Product))
    names = [f"{number}-L{i:03d}" for i in range(size)]
    db.session.add_all(ProductLot(product=product, lot_number=name, quantity=10) for name in names)
    db.session.commit()
    _batch(user, number, "; ".join(names), EO)


def test_the_batches_of_a_trace_are_one_query_however_many_lots_it_reaches(plant, user):
    _load(user, "EO-S", 3)
    _load(user, "EO-L", 60)

    def traced(query: str) -> None:
        db.session.expire_all()
        report = trace.trace_report(query)
        assert len(report.sterilization_records) == len(report.forward.product_lots)
        report.as_dict()

    small, large = _statements(lambda: traced("EO-S")), _statements(lambda: traced("EO-L"))
    assert small == large
    assert len(trace.trace_report("EO-L").sterilization_records) == 60

"""End to end: a logger file with a 45-minute excursion above 8 °C holds the cold room's lots and starts the
deviation assessment; the signed decision releases one lot from hold and scraps the other."""
from __future__ import annotations

from datetime import timedelta

import pytest

from app.extensions import db
from app.models import Document, Excursion, ImportJob, ProcessInstance, Reading
from tests.conftest import T0
from tests.integration.conditions.conftest import holds, logger_csv, ready, run_file, step

ASSESS = {"stability_reference": "STAB-2025-07: 25 °C for 14 days without change",
          "mkt_assessment": "Maximum 9.6 °C for 45 min, MKT of the excursion 9.5 °C: well inside the stability data.",
          "impact": "No impact on sterility or the adhesive; the kit tolerates 25 °C for 14 days.",
          "root_cause": "Door left open during a delivery.",
          "decisions": [{"lot_number": "C1", "decision": "release", "justification": "Covered by stability data"},
                        {"lot_number": "C2", "decision": "scrap", "justification": "Kept by the customer's wish"}]}


def excursion_file() -> bytes:
    # 24 readings at 5 °C, 9 at 9.6 °C (45 minutes), 24 at 5 °C
    return logger_csv([5.0] * 24 + [9.6] * 9 + [5.0] * 24)


def test_logger_file_with_an_excursion_holds_the_lots_and_the_signed_decision_disposes_of_them(cold_room, user):
    job = run_file(excursion_file(), user)
    assert (job.status, job.imported_rows) == ("succeeded", 57), job.errors
    excursion = db.session.scalar(db.select(Excursion))
    assert excursion.minutes_out == 45 and excursion.max_value == 960 and excursion.min_value == 960
    assert excursion.mkt == 960 and excursion.lots == ["C1", "C2"]
    assert {lot: cold_room[lot].status for lot in ("C1", "C2", "C3")} == {
        "C1": "hold", "C2": "hold", "C3": "released"}
    instance = db.session.get(ProcessInstance, excursion.instance_id)
    assert instance.version.definition.key == "deviation" and instance.status == "running"
    assert instance.title == f"Excursion #{excursion.id}: T1 Cold room A, Insulin pen needle kit"
    from app.services.workflow import titles
    assert titles.localized(instance.title, "zh-CN") == f"偏离 #{excursion.id}：T1 Cold room A，Insulin pen needle kit"
    assert ready(instance.id, "assess") is not None

    step(instance.id, "assess", ASSESS, user, "qa")
    step(instance.id, "approve", {"approval": "approve"}, user, "head", now=T0 + timedelta(hours=2), signed=True)

    db.session.expire_all()
    assert db.session.get(ProcessInstance, instance.id).status == "completed"
    assert (cold_room["C1"].status, cold_room["C2"].status) == ("released", "scrapped")
    assert all(link.lifted_at is not None for lot in ("C1", "C2") for link in holds(cold_room[lot]))
    excursion = db.session.get(Excursion, excursion.id)
    assert excursion.status == "closed"
    assert excursion.decisions == [{"lot_number": "C1", "decision": "release"},
                                   {"lot_number": "C2", "decision": "scrap"}]
    report = db.session.scalar(db.select(Document).where(Document.instance_id == instance.id))
    assert report.kind == "deviation_report"


def test_the_same_file_again_is_skipped_and_starts_nothing(cold_room, user):
    run_file(excursion_file(), user)
    again = run_file(excursion_file(), user, filename="again.csv")
    assert again.status == "succeeded" and again.imported_rows == 0
    assert db.session.scalar(db.select(db.func.count()).select_from(Reading)) == 57
    assert db.session.scalar(db.select(db.func.count()).select_from(Excursion)) == 1
    assert db.session.scalar(db.select(db.func.count()).select_from(ImportJob)) == 2


def test_pages_show_the_chart_with_its_band_the_excursion_and_the_lots_holds(cold_room, user, client):
    from tests.conftest import login
    run_file(excursion_file(), user)
    excursion = db.session.scalar(db.select(Excursion))
    login(client, "head")
    sensor_page = client.get(f"/conditions/sensors/{excursion.sensor_id}?days=1")
    assert sensor_page.status_code == 200
    html = sensor_page.get_data(as_text=True)
    assert 'data-testid="allowed-band"' in html and 'data-testid="readings-line"' in html
    assert 'data-testid="excursion-mark"' in html and "57 readings" in html and "C1" in html
    detail = client.get(f"/conditions/excursions/{excursion.id}").get_data(as_text=True)
    assert 'data-testid="minutes-out">45.0' in detail and "9.6 °C" in detail
    assert 'data-testid="deviation-link"' in detail
    lot_page = client.get(f"/lots/product-lots/{cold_room['C1'].id}").get_data(as_text=True)
    assert 'data-testid="lot-excursions"' in lot_page and f"#{excursion.id}" in lot_page
    assert 'data-testid="lot-holds"' in lot_page
    assert 'data-testid="lot-conditions-link"' in lot_page
    conditions_page = client.get(f"/conditions/lots/{cold_room['C1'].id}").get_data(as_text=True)
    assert f'data-testid="chart-{excursion.sensor_id}"' in conditions_page
    assert 'data-testid="allowed-band"' in conditions_page
    assert 'data-testid="no-sensors"' in client.get(f"/conditions/lots/{cold_room['C3'].id}").get_data(as_text=True)
    assert client.get("/conditions/lots/9999").status_code == 404
    task = ready(excursion.instance_id, "assess")
    task_page = client.get(f"/tasks/{task.id}").get_data(as_text=True)
    assert 'data-testid="instance-excursion"' in task_page and "9.6 °C" in task_page
    instance_page = client.get(f"/instances/{excursion.instance_id}").get_data(as_text=True)
    assert 'data-testid="instance-excursion"' in instance_page
    assert 'data-testid="open-excursions"' in client.get("/conditions/").get_data(as_text=True)
    assert client.get("/conditions/excursions?status=open").status_code == 200
    assert client.get("/conditions/sensors/999").status_code == 404
    client.get("/language/zh_CN")
    chinese = client.get(f"/conditions/excursions/{excursion.id}").get_data(as_text=True)
    assert "平均动力学温度" in chinese


def test_holds_stack_with_another_procedures_hold(cold_room, user):
    """C1 is held by a CAPA too: releasing it from the excursion's hold leaves it on hold until the CAPA lifts."""
    from app.services.lots import lots as lot_service
    from app.services.workflow import instances
    capa = instances.start_instance("capa", user("qa"), {"title": "Cold chain"}, title="Cold chain", now=T0)
    lot_service.hold_lot(capa.id, cold_room["C1"], "CAPA containment", "containment", T0)
    db.session.commit()
    run_file(excursion_file(), user)
    excursion = db.session.scalar(db.select(Excursion))
    step(excursion.instance_id, "assess", ASSESS, user, "qa")
    step(excursion.instance_id, "approve", {"approval": "approve"}, user, "head", signed=True)
    db.session.expire_all()
    assert cold_room["C1"].status == "hold"  # still held by the CAPA
    lot_service.lift_hold(capa.id, cold_room["C1"], "contained", "containment", T0 + timedelta(days=1))
    assert cold_room["C1"].status == "released"  # the status it had before either hold


def test_sent_back_and_incomplete_decisions_are_refused(cold_room, user):
    from app.exceptions import FormInvalid
    run_file(excursion_file(), user)
    instance_id = db.session.scalar(db.select(Excursion.instance_id))
    partial = {**ASSESS, "decisions": [{"lot_number": "C1", "decision": "release"},
                                       {"lot_number": "C3", "decision": "scrap"}]}
    try:
        step(instance_id, "assess", partial, user, "qa")
    except FormInvalid as refused:
        assert refused.errors["decisions"] == ["Lot C3 is not held by this deviation.",
                                               "Decide on every held lot; missing: C2"]
    else:
        raise AssertionError("an incomplete decision table was accepted")
    step(instance_id, "assess", ASSESS, user, "qa")
    step(instance_id, "approve", {"approval": "reject", "approval_comment": "Quote the stability report."}, user,
         "head", signed=True)
    assert ready(instance_id, "assess") is not None
    assert (cold_room["C1"].status, cold_room["C2"].status) == ("hold", "hold")


def test_a_second_batch_extends_the_open_excursion_and_a_capa_is_opened(cold_room, user):
    """The cold room warms up across two files: one excursion, extended; the decision opens a CAPA."""
    from tests.integration.conditions.conftest import START
    run_file(logger_csv([5.0] * 24 + [9.6] * 8), user)  # 40 minutes so far
    first = db.session.scalar(db.select(Excursion))
    assert first.minutes_out == 40
    later = START + timedelta(minutes=5 * 32)
    run_file(logger_csv([10.2] * 4 + [5.0] * 12, start=later), user, filename="later.csv")
    excursions = list(db.session.scalars(db.select(Excursion)))
    assert len(excursions) == 1 and excursions[0].minutes_out == 60 and excursions[0].max_value == 1020
    step(first.instance_id, "assess", {**ASSESS, "open_capa": True,
                                       "capa_description": "Cold room A door alarm did not sound."}, user, "qa")
    step(first.instance_id, "approve", {"approval": "approve"}, user, "head", signed=True)
    started = db.session.scalars(db.select(ProcessInstance).where(ProcessInstance.id != first.instance_id)
                                 .order_by(ProcessInstance.id))
    # The CAPA about the excursion, and the destruction of the scrapped lot's stock (C2 in the cold room).
    assert sorted(instance.version.definition.key for instance in started) == ["capa", "scrap"]


@pytest.mark.parametrize("language", ["en", "zh-CN"])
def test_the_report_has_no_empty_field_and_no_raw_code(cold_room, user, language):
    from app.models import User
    from tests.integration.document_checks import empty_fields, raw_codes
    db.session.get(User, user("qa").id).language = language
    db.session.commit()
    run_file(excursion_file(), user)
    instance_id = db.session.scalar(db.select(Excursion.instance_id))
    step(instance_id, "assess", ASSESS, user, "qa")
    step(instance_id, "approve", {"approval": "approve"}, user, "head", signed=True)
    report = db.session.scalar(db.select(Document).where(Document.instance_id == instance_id))
    assert report.template_name == f"deviation_report.{language}.docx"
    assert empty_fields(report) == [] and raw_codes(report) == []

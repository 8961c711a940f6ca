"""A recall on the plant's clock: the inbox shows the rule's due time, working days are counted on the plant's local
dates and on the jurisdiction's calendar (NMPA: CN, FDA: US); its documents say what, by whom and when."""
from __future__ import annotations

from datetime import UTC, datetime
from io import BytesIO

import docx
import pytest

from app.extensions import db
from app.models import Document
from app.services import demo
from app.services.procedures import recalls
from tests.conftest import T0
from tests.integration import recall_steps as steps


@pytest.fixture
def shanghai(app):
    app.config["PLANT_TIME_ZONE"] = "Asia/Shanghai"
    demo.seed_calendars()


def _due(instance_id: int) -> dict:
    return {d.key: d.due_at for d in recalls.recall_view(instance_id).deadlines}


def test_a_task_tied_to_a_deadline_is_due_when_the_deadline_is(plant, user, shanghai):
    instance = steps.decide(user, T0)
    steps.step(instance.id, "prepare_notices", steps.NOTICES, user, T0)
    due = _due(instance.id)
    for element, key in (("submit_event_report", "regulator_report"), ("recall_plan", "recall_plan"),
                         ("fda_806_report", "fda_806")):
        task = steps.ready(instance.id, element)
        assert task is not None, element
        assert task.due_at == due[key], element


def test_nmpa_counts_cn_working_days_and_fda_us_ones_to_the_plants_end_of_day(plant, user, shanghai):
    instance = steps.decide(user, T0)  # Monday 2026-11-23 17:00 in Shanghai
    due = _due(instance.id)
    # 5 CN working days: Monday 30 November, 23:59:59 in Shanghai.
    assert due["recall_plan"] == datetime(2026, 11, 30, 15, 59, 59, tzinfo=UTC)
    # 10 US working days skip Thanksgiving (26 November), a working day in China: Tuesday 8 December.
    assert due["fda_806"] == datetime(2026, 12, 8, 15, 59, 59, tzinfo=UTC)


def test_a_stored_document_carries_its_title_author_and_creation_time(plant, user):
    instance = steps.decide(user, T0)
    document = db.session.scalars(db.select(Document).where(Document.instance_id == instance.id)).first()
    properties = docx.Document(BytesIO(document.content)).core_properties
    assert properties.title == f"Leaking infusion sets - {document.kind}"
    assert properties.author == "Qualiflow Demo Medical Co., Ltd."
    assert properties.created == T0

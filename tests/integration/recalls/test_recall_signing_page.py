"""A recall's e-signed decision page: what is signed, in words and figures, with no earlier decision selected."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest

from app.extensions import db
from app.models import Task
from app.models.types import utcnow
from tests.conftest import login
from tests.integration import recall_steps as steps


@pytest.fixture
def at_decision(plant, user) -> int:
    """A recall whose assessment is signed (decision: approve, comment "Agreed."), waiting for the decision."""
    now = utcnow()
    instance = steps.start(user, now)
    steps.step(instance.id, "assessment", steps.ASSESSMENT, user, now)
    steps.step(instance.id, "sign_assessment", steps.APPROVE, user, now)
    return steps.ready(instance.id, "decision").id


def _summary(page: str) -> str:
    return page.split('data-testid="signing-summary"', 1)[1].split("</section>", 1)[0]


@pytest.mark.parametrize(("lang", "shown"), [
    ("en", ["What you are signing", "Recall figures", "RC-", "Affected lots", "L1, L2", "Units shipped",
            "Consignees acknowledged", "Health hazard", "Air embolism if the set leaks during infusion",
            "Class I - may cause or has caused serious harm", "Authored by Li Na"]),
    ("zh_CN", ["签署内容", "召回数据", "受影响批次", "L1, L2", "发货数量", "已确认的收货方", "健康危害",
               "一级 - 可能或已经造成严重健康危害", "编制：由 Li Na 于"]),
])
def test_decision_page_says_what_is_signed_in_the_page_language(client, at_decision, lang, shown):
    login(client, "rp")
    page = client.get(f"/tasks/{at_decision}?lang={lang}").get_data(as_text=True)
    summary = _summary(page)
    for text in shown:
        assert text in summary, text
    assert "<dl" in summary and "recall_class" not in summary and "{&#34;" not in page and '{"' not in summary


def test_decision_page_shows_no_earlier_decision(client, at_decision):
    login(client, "rp")
    page = client.get(f"/tasks/{at_decision}?lang=en").get_data(as_text=True)
    assert 'data-testid="instance-data"' not in page  # the raw data held the assessment's "decision: approve"
    assert "Agreed." not in page
    radios = re.findall(r'<input[^>]*type="radio"[^>]*name="decision"[^>]*>', page)
    assert len(radios) == 2 and not any("checked" in radio for radio in radios)



def test_a_signed_step_shows_what_was_known_when_it_was_signed(client, at_decision, user):
    instance_id = db.session.get(Task, at_decision).instance_id
    later = utcnow() + timedelta(minutes=5)
    steps.step(instance_id, "decision", steps.APPROVE, user, later)
    steps.step(instance_id, "prepare_notices", steps.NOTICES, user, later)
    signed = db.session.scalar(db.select(Task).where(Task.instance_id == instance_id,
                                                     Task.element_id == "sign_assessment"))
    login(client, "qa")
    summary = _summary(client.get(f"/tasks/{signed.id}?lang=en").get_data(as_text=True))
    assert "What was signed" in summary and "Health hazard" in summary
    assert steps.NOTICES["notice_contact_en"] not in summary  # answered after this step was signed
    assert "Recall figures" not in summary  # live counts, not what the signer saw

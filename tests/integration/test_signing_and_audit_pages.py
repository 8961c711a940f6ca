"""What signers and inspectors read: a signing page's summary in words, and an audit trail in plain text."""
from __future__ import annotations

import re

import pytest

from app.extensions import db
from app.models import AuditEvent
from app.services.workflow import instances, tasks
from tests.conftest import login
from tests.integration.capa_steps import ready_task, run_capa_to_approval


def _between(page: str, testid: str, end: str) -> str:
    return page.split(f'data-testid="{testid}"', 1)[1].split(end, 1)[0]


@pytest.mark.parametrize(("lang", "shown"), [
    ("en", ["What you are signing", "Describe the problem", "Problem title", "Burr on hub", "Severity", "Major",
            "Root cause", "Worn deburring tool at station 3", "Actions", "Replace tool"]),
    ("zh_CN", ["签署内容", "问题描述", "问题标题", "Burr on hub", "严重程度", "严重", "措施", "Replace tool"]),
])
def test_capa_approval_page_summarises_the_capa_in_the_page_language(client, seeded, user, lang, shown):
    approval = ready_task(run_capa_to_approval(user).id, "qa_approval")
    login(client, "head")
    page = client.get(f"/tasks/{approval.id}?lang={lang}").get_data(as_text=True)
    summary = _between(page, "signing-summary", "</section>")
    for text in shown:
        assert text in summary, text
    assert "root_cause" not in summary and "severity" not in summary  # labels, not the data's keys
    assert 'data-testid="instance-data"' not in page and "{&#34;" not in page
    decision_inputs = re.findall(r'<input[^>]*name="decision"[^>]*>', page)
    assert decision_inputs and not any("checked" in tag for tag in decision_inputs)


@pytest.fixture
def chinese_capa(seeded, user) -> int:
    """A CAPA whose problem was described in Chinese."""
    instance = instances.start_instance("capa", user("qa"), title="针头毛刺")
    tasks.complete_task(ready_task(instance.id, "describe_problem").id, {
        "title": "针头毛刺", "source": "complaint", "source_reference": "CMP-1", "severity": "major",
        "description": "医院反馈输液器针头有毛刺", "reported_on": "2026-11-20"}, user("qa"))
    return instance.id


def test_audit_trail_reads_as_written_in_the_page_language(client, chinese_capa):
    login(client, "auditor")
    page = client.get(f"/instances/{chinese_capa}?lang=zh_CN").get_data(as_text=True)
    trail = _between(page, "audit-table", "</table>")
    assert "医院反馈输液器针头有毛刺" in trail and "\\u" not in trail
    assert "步骤已完成" in trail and "实例已启动" in trail
    assert ">task.completed<" not in trail and 'data-action="task.completed"' in trail


def test_audit_trail_hashes_wrap(client, chinese_capa):
    last = db.session.scalars(db.select(AuditEvent).order_by(AuditEvent.id.desc())).first()
    login(client, "auditor")
    page = client.get(f"/instances/{chinese_capa}?lang=en").get_data(as_text=True)
    trail = _between(page, "audit-table", "</table>")
    assert "Step completed" in trail
    full = re.search(rf'<span class="([^"]*)"[^>]*>{last.hash}</span>', trail)
    assert full and "text-break" in full[1].split()  # the full hash breaks anywhere instead of widening the page
    assert "<details" in trail and f'title="{last.hash}"' in trail

"""Internal e-mails in each recipient's language, titles included: an instance's title is stored in English (made
from a registered format, or the procedure's name when started without one); the escalation and closure e-mails a
diagram builds from it read in Chinese for Chinese readers and in English for the others, over a real SMTP server
(aiosmtpd)."""
from __future__ import annotations

from datetime import timedelta
from email.header import decode_header, make_header

import pytest

from app.extensions import db
from app.models import User
from app.services.lots.lots import INSPECTION_CAPA_TITLE
from app.services.studio import diagrams
from app.services.workflow import instances, notifications, tasks, timers, titles
from tests.conftest import T0, login
from tests.integration.capa_steps import MEASURED, PROBLEM, STEPS, VERIFICATION_PERIOD, ready_task
from tests.integration.services.scenarios import approve
from tests.integration.services.test_outbox_smtp import SmtpServer, _free_port

ENGLISH_TITLE = INSPECTION_CAPA_TITLE.format(lot="L7")
CHINESE_TITLE = "CAPA：批次 L7 成品检验不合格"


@pytest.fixture
def smtp(app):
    server = SmtpServer(_free_port())
    app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=server.port)
    server.start()
    yield server
    server.stop()


def _subject(message) -> str:
    return str(make_header(decode_header(message["Subject"])))


def _body(message) -> str:
    return message.get_payload(decode=True).decode(message.get_content_charset() or "utf-8")


def _by_recipient(smtp) -> dict[str, object]:
    return {address: message for message in smtp.mailbox.messages() for address in message["To"].split(",")}


def _start(user, title: str, now=T0):
    instance = instances.start_instance("capa", user("qa"), {"title": title}, title=title, now=now)
    return instance


def test_an_escalation_e_mail_reads_the_title_in_each_recipients_language(smtp, seeded, user):
    db.session.execute(db.update(User).where(User.username == "head").values(language="zh-CN"))
    db.session.commit()
    instance = _start(user, ENGLISH_TITLE)
    for element, username, data in STEPS[:3]:
        tasks.complete_task(ready_task(instance.id, element).id, {**data, "title": ENGLISH_TITLE} if
                            element == "describe_problem" else data, user(username), now=T0)
    timers.fire_due_timers(T0 + timedelta(days=5, minutes=1))  # the action plan is overdue: QA management is told
    notifications.send_due(T0 + timedelta(days=5, minutes=2))

    mails = _by_recipient(smtp)
    chinese, english = mails["head@qualiflow.example"], mails["admin@qualiflow.example"]
    assert _subject(chinese) == f"CAPA 措施计划逾期：{CHINESE_TITLE}"
    assert f"CAPA“{CHINESE_TITLE}”的措施计划已逾期" in _body(chinese) and ENGLISH_TITLE not in _body(chinese)
    assert _subject(english) == f"CAPA action plan overdue: {ENGLISH_TITLE}"
    assert CHINESE_TITLE not in _body(english)


def test_a_closure_e_mail_reads_the_title_in_each_recipients_language(smtp, seeded, user):
    started = T0 - VERIFICATION_PERIOD - timedelta(minutes=1)
    instance = _start(user, ENGLISH_TITLE, started)
    for element, username, data in STEPS:
        tasks.complete_task(ready_task(instance.id, element).id, {**data, "title": ENGLISH_TITLE} if
                            data is PROBLEM else data, user(username), now=started)
    timers.fire_due_timers(T0)
    tasks.complete_task(ready_task(instance.id, "effectiveness").id, MEASURED, user("qa"), now=T0)
    approve(instance.id, user, T0)
    notifications.send_due(T0)

    mails = _by_recipient(smtp)
    chinese, english = mails["qa@qualiflow.example"], mails["head@qualiflow.example"]  # Li Na reads Chinese
    assert _subject(chinese) == f"CAPA 已关闭：{CHINESE_TITLE}"
    assert _body(chinese).startswith(f"CAPA“{CHINESE_TITLE}”已批准并关闭。")
    assert _subject(english) == f"CAPA closed: {ENGLISH_TITLE}"


def test_an_instance_started_without_a_title_reads_the_procedures_name_in_chinese(client, seeded, user):
    instance = instances.start_instance("capa", user("qa"))
    name = instance.version.definition.name
    chinese = diagrams.procedure_names_zh()["capa"]
    assert instance.title == name and chinese != name
    assert titles.localized(name, "zh-CN", diagrams.procedure_titles_zh()) == chinese
    assert titles.in_language(f"CAPA closed: {name}", name, "zh-CN", diagrams.procedure_titles_zh()) == \
        f"CAPA closed: {chinese}"
    assert titles.localized("Burr on hub", "zh-CN", diagrams.procedure_titles_zh()) == "Burr on hub"  # typed
    login(client, "qa")
    page = client.get(f"/instances/{instance.id}?lang=zh_CN").get_data(as_text=True)
    assert f"#{instance.id} {chinese} <span" in page and f"#{instance.id} {name}" not in page

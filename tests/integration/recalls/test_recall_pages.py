"""The recall pages through Flask's test client: the dashboard, a recall's workspace and its forms, the public
acknowledgment page and the buttons that start a recall."""
from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
from openpyxl import Workbook

from app.extensions import db
from app.models import AuditEvent, OutboxMessage, ProcessInstance, ProductLot, RecallConsignee, RecallLine
from app.models.types import utcnow
from app.services.procedures import recalls
from app.services.workflow import instances
from tests.conftest import login
from tests.integration import recall_steps as steps


def _text(response) -> str:
    return response.get_data(as_text=True)


def _section(page: str, testid: str) -> str:
    """Return the page from the element with data-testid=testid on (to assert inside one table)."""
    return page.split(f'data-testid="{testid}"', 1)[1]


def _consignee(instance_id: int, code: str) -> RecallConsignee:
    db.session.expire_all()
    return next(c for c in recalls.recall_view(instance_id).consignees if c.customer.code == code)


def _token(consignee: RecallConsignee) -> str:
    """Read the acknowledgment link out of the queued e-mail, as the consignee would."""
    return db.session.get(OutboxMessage, consignee.outbox_message_id).body.split("/ack/")[1].split()[0]


def _affected(instance_id: int) -> list[str]:
    db.session.expire_all()
    return [row.lot.lot_number for row in recalls.recall_view(instance_id).lots]


def _returns(instance_id: int) -> dict[tuple[str, str], tuple[int, int]]:
    db.session.expire_all()
    lines = db.session.scalars(db.select(RecallLine).where(RecallLine.instance_id == instance_id))
    return {(line.consignee.customer.code, line.product_lot.lot_number): (line.quantity_returned,
                                                                         line.quantity_destroyed) for line in lines}


# The pages judge deadlines and links against the real clock, so the recalls run at it too.

@pytest.fixture
def started(plant, user) -> int:
    """A recall of L1 and L2 (via material lot M1) past its trigger, not yet decided."""
    return steps.start(user, utcnow()).id


@pytest.fixture
def decided(plant, user) -> int:
    """A class I recall of L1 and L2 (via material lot M1), decided: lots recalled, deadlines running."""
    return steps.decide(user, utcnow()).id


@pytest.fixture
def notified(decided, user) -> int:
    """The decided recall with its notices queued (H2 has no e-mail address)."""
    steps.step(decided, "prepare_notices", steps.NOTICES, user, utcnow())
    return decided


@pytest.fixture
def sampled(notified, user) -> int:
    """The notified recall with its reports and plan done: the level A sample is every consignee."""
    now = utcnow()
    for element in ("submit_event_report", "fda_806_report"):
        steps.step(notified, element, steps.SUBMISSION, user, now)
    steps.step(notified, "recall_plan", steps.PLAN, user, now)
    steps.step(notified, "approve_plan", steps.APPROVE, user, now)
    steps.step(notified, "monitor", steps.MONITOR, user, now)
    return notified


# --- dashboard -------------------------------------------------------------------------------------------------------

def test_dashboard_without_recalls_says_so(client, plant):
    login(client, "qa")
    page = _text(client.get("/recalls/?lang=en"))
    assert 'data-testid="no-recalls"' in page and 'data-testid="recall-list"' not in page
    assert re.search(r'data-testid="open-total">0<', page)
    assert 'href="/recalls/"' in page  # the menu item


@pytest.mark.parametrize("stage,notification,countdown,ack_rate", [("decided", "pending", True, "—"),
                                                                   ("notified", "pending", True, "0.0%")])
def test_dashboard_counts_and_lists_an_open_recall(client, request, stage, notification, countdown, ack_rate):
    instance_id = request.getfixturevalue(stage)
    login(client, "qa")
    page = _text(client.get("/recalls/?lang=en"))
    assert 'data-testid="no-recalls"' not in page
    assert re.search(r'data-testid="open-total">1<', page)
    assert re.search(r'data-class="I">1<', page) and re.search(r'data-class="unassessed">0<', page)
    assert re.search(rf'data-state="{notification}">1<', page)
    row = _section(page, "recall-row").split("</tr>")[0]
    assert f'href="/recalls/{instance_id}"' in row and "Leaking infusion sets" in row
    assert bool(re.search(r'data-due="[^"]+">in 2\d h', row)) is countdown  # due a day after the decision
    assert f'data-testid="ack-rate">{ack_rate}<' in page
    regions = _section(page, "regions")
    assert "Jiangsu" in regions and "Zhejiang" in regions and "Massachusetts" in regions


@pytest.mark.parametrize("path", ["/recalls/", "/recalls/1"])
def test_recall_pages_need_sign_in(client, seeded, path):
    response = client.get(path)
    assert response.status_code == 302 and "/login" in response.headers["Location"]


# --- workspace -------------------------------------------------------------------------------------------------------

def test_workspace_shows_deadlines_lots_and_consignees(client, notified):
    login(client, "qa")
    page = _text(client.get(f"/recalls/{notified}?lang=en"))
    deadlines = _section(page, "deadlines")
    assert "Notify consignees" in deadlines and "FDA 21 CFR 806 report" in deadlines
    assert 'data-testid="deadline-consignee_notice" data-status="pending"' in deadlines  # queued, not delivered
    assert 'data-testid="deadline-recall_plan" data-status="pending"' in deadlines
    assert re.search(r'data-due="\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ">in \d+ d', deadlines)  # the plan: 5 working days
    assert "js/countdown.js" in page
    lots = _section(page, "affected-lots").split("</table>")[0]
    assert "L1" in lots and "L2" in lots and "L3" not in lots
    consignees = _section(page, "consignees").split("</table>")[0]
    for code in ("D1", "H1", "H2", "US1"):
        assert f'data-testid="consignee-{code}"' in consignees
    d1 = _section(consignees, "consignee-D1").split("</tr>")[0]
    assert "/instances/documents/" in d1 and "recall_notice" in d1 and "queued" in d1 and "d1@example.com" in d1
    assert "no e-mail address" in _section(consignees, "consignee-H2").split("</tr>")[0]
    assert re.search(r'data-testid="total-shipped">180<', page)
    assert f'href="/instances/{notified}"' in page
    assert 'data-testid="affected-frozen"' in page and 'data-testid="affected-form"' not in page


def test_workspace_shows_a_failed_notice_e_mail_with_its_error(client, notified):
    message = db.session.get(OutboxMessage, _consignee(notified, "US1").outbox_message_id)
    message.status, message.attempts, message.last_error = "failed", 8, "SMTPRecipientsRefused: 550 no such user"
    db.session.commit()
    login(client, "qa")
    status = _section(_text(client.get(f"/recalls/{notified}?lang=en")), "consignee-US1").split("</tr>")[0]
    assert "failed" in status and "8 attempt(s)" in status and "550 no such user" in status


def test_workspace_speaks_the_page_language(client, notified):
    login(client, "qa")  # Li Na works in Chinese
    page = _text(client.get(f"/recalls/{notified}"))
    assert '<html lang="zh-CN">' in page and "通知收货方" in page  # the diagram's Chinese deadline label


def test_workspace_of_an_unknown_or_non_recall_instance_is_not_found(client, plant, user):
    capa = instances.start_instance("capa", user("qa"), title="Not a recall")
    login(client, "qa")
    assert client.get("/recalls/999").status_code == 404
    assert client.get(f"/recalls/{capa.id}").status_code == 404


@pytest.mark.parametrize("stage,form,status,lots", [
    ("decided", {"add": "L3", "reason": "H1 received L3 from the same resin"}, 302, ["L1", "L2", "L3"]),
    ("decided", {"remove": "L2", "reason": "L2 was made from another resin"}, 302, ["L1"]),
    ("decided", {"add": "L3", "reason": " "}, 422, ["L1", "L2"]),
    ("decided", {"add": "NOPE", "reason": "typo"}, 422, ["L1", "L2"]),
    ("decided", {"remove": ["L1", "L2"], "reason": "nothing left"}, 422, ["L1", "L2"]),
    ("notified", {"add": "L3", "reason": "too late"}, 409, ["L1", "L2"]),
])
def test_edit_the_affected_list(client, request, stage, form, status, lots):
    instance_id = request.getfixturevalue(stage)
    login(client, "qa")
    response = client.post(f"/recalls/{instance_id}/affected?lang=en", data=form)
    assert response.status_code == status
    assert _affected(instance_id) == lots
    if status != 302:
        assert 'data-testid="recall-message"' in _text(response)


@pytest.mark.parametrize("stage,status", [("started", "released"), ("decided", "recalled")])
def test_a_lot_added_after_the_decision_is_recalled_too(client, request, stage, status):
    instance_id = request.getfixturevalue(stage)
    login(client, "qa")
    response = client.post(f"/recalls/{instance_id}/affected", data={"add": "L3", "reason": "H1 received L3 too"})
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.scalar(db.select(ProductLot.status).where(ProductLot.lot_number == "L3")) == status


def test_refused_affected_edit_shows_the_field_message_and_keeps_the_input(client, decided):
    login(client, "qa")
    response = client.post(f"/recalls/{decided}/affected?lang=en", data={"add": "L3, NOPE", "reason": "x"})
    page = _text(response)
    assert response.status_code == 422
    form = _section(page, "affected-form")
    assert "Unknown product lot(s): NOPE" in form and 'value="L3, NOPE"' in form and "is-invalid" in form


@pytest.mark.parametrize("path,form,message", [
    ("affected", {"add": "NOPE", "reason": "x"}, "未知的产品批号：NOPE。"),
    ("affected", {"remove": "L9", "reason": " "}, "请填写修改受影响清单的原因。"),
    ("returns", {"customer": "D1", "lot": "L1", "returned": "90", "destroyed": "20"},
     "退回与销毁数量合计（110）超过了批次 L1 发往 D1 的数量 100。"),
    ("returns", {"customer": "D1", "lot": "L2", "returned": "1", "destroyed": "0"}, "本次召回中批次 L2 未发往 D1。"),
])
def test_workspace_refusals_speak_the_page_language(client, decided, path, form, message):
    login(client, "qa")  # Li Na works in Chinese
    response = client.post(f"/recalls/{decided}/{path}", data=form)
    assert response.status_code == 422
    assert message in _text(response)


@pytest.mark.parametrize("form,status,message", [
    ({"customer": "D1", "lot": "L1", "returned": "90", "destroyed": "20"}, 422, "exceed the 100 shipped"),
    ({"customer": "D1", "lot": "L2", "returned": "1", "destroyed": "0"}, 422, "was not shipped to D1"),
    ({"customer": "D1", "lot": "L1", "returned": "ten", "destroyed": "0"}, 422, "Enter a whole number"),
    ({"customer": "D1", "lot": "L1", "returned": "-1", "destroyed": "0"}, 422, "Enter a whole number"),
    ({"customer": "D1", "lot": "L1", "returned": "5", "destroyed": ""}, 422, "Enter a whole number"),
])
def test_a_wrong_return_changes_nothing(client, notified, form, status, message):
    before = _returns(notified)
    login(client, "qa")
    response = client.post(f"/recalls/{notified}/returns?lang=en", data=form)
    assert response.status_code == status
    assert message in _section(_text(response), "returns-form")
    assert _returns(notified) == before


def test_a_return_is_recorded_and_shown(client, notified):
    login(client, "qa")
    response = client.post(f"/recalls/{notified}/returns?lang=en",
                           data={"customer": "D1", "lot": "L1", "returned": "60", "destroyed": "15"})
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/recalls/{notified}#returns-h")
    assert _returns(notified)[("D1", "L1")] == (60, 15)
    page = _text(client.get(response.headers["Location"]))
    assert "The return was recorded" in page and re.search(r'data-testid="total-returned">60<', page)


def _upload(client, instance_id: int, content: str | bytes, filename: str = "returns.csv"):
    data = content.encode() if isinstance(content, str) else content
    return client.post(f"/recalls/{instance_id}/returns/import?lang=en", content_type="multipart/form-data",
                       data={"file": (io.BytesIO(data), filename)})


def test_import_with_a_bad_row_lists_it_and_changes_nothing(client, notified):
    login(client, "qa")
    response = _upload(client, notified, "customer,lot,returned,destroyed\nD1,L1,50,0\nUS1,L2,31,0\nH2,L9,1,0\n")
    assert response.status_code == 422
    errors = _section(_text(response), "import-errors").split("</table>")[0]
    rows = re.findall(r"<tr><td class=\"text-end\">(\d+)</td><td><code>(\w+)</code></td><td>([^<]*)</td></tr>", errors)
    assert [(line, column) for line, column, _ in rows] == [("3", "returned"), ("4", "lot")]
    assert "exceed the 30 shipped" in rows[0][2]
    assert _returns(notified)[("D1", "L1")] == (0, 0)  # the good first row was not kept either


def _xlsx(rows: list[list]) -> bytes:
    workbook = Workbook()
    for row in rows:
        workbook.active.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


RETURNS = [["customer", "lot", "returned", "destroyed"], ["D1", "L1", 50, 10], ["US1", "L2", 30, 0]]


@pytest.mark.parametrize("content,filename,audited_as", [
    ("".join(",".join(map(str, row)) + "\n" for row in RETURNS), "returns.csv", "returns.csv"),
    (_xlsx(RETURNS), "退货 returns.xlsx", "returns.xlsx"),  # the audit trail cites a safe form of the name
])
def test_import_records_every_row(client, notified, content, filename, audited_as):
    login(client, "qa")
    response = _upload(client, notified, content, filename)
    assert response.status_code == 302
    assert "Returns imported: 2 row(s)" in _text(client.get(response.headers["Location"]))
    returns = _returns(notified)
    assert (returns[("D1", "L1")], returns[("US1", "L2")]) == ((50, 10), (30, 0))
    reasons = db.session.scalars(db.select(AuditEvent.reason).where(AuditEvent.action == "recall.return_recorded"))
    assert set(reasons) == {f"import {audited_as}"}


@pytest.mark.parametrize("content,filename,status,message", [
    ("customer,lot,returned\n", "returns.txt", 400, "Upload a .csv or .xlsx file"),
    ("customer,returned\nD1,5\n", "returns.csv", 400, "Missing column(s): lot"),
    ("customer,lot,returned,destroyed\n", "returns.csv", 400, "The file has no rows"),
    ("customer,lot,returned\n赣州医院,L1,1\n".encode("gbk"), "returns.csv", 400, "CSV file saved as UTF-8"),
    (b"not a workbook", "returns.xlsx", 400, "The file cannot be read (BadZipFile)"),
])
def test_import_refuses_a_wrong_file(client, notified, content, filename, status, message):
    login(client, "qa")
    response = _upload(client, notified, content, filename)
    assert response.status_code == status
    assert message in _section(_text(response), "recall-message")


def test_effectiveness_checks_are_recorded_per_sampled_consignee(client, sampled):
    us1 = _consignee(sampled, "US1")
    login(client, "qa")
    page = _text(client.get(f"/recalls/{sampled}?lang=en"))
    assert page.count('data-testid="check-form"') == 4  # level A: every consignee
    response = client.post(f"/recalls/{sampled}/consignees/{us1.id}/check?lang=en",
                           data={"method": "phone", "effective": "yes", "note": "Stock quarantined"})
    assert response.status_code == 302
    page = _text(client.get(response.headers["Location"]))
    assert re.search(r'data-testid="checked">1<', page) and re.search(r'data-testid="effective">1<', page)
    row = _section(page, "sample-US1").split("</tr>")[0]
    assert "phone" in row and "Stock quarantined" in row and "Li Na" in row


@pytest.mark.parametrize("form,message", [
    ({"method": "phone", "effective": "no", "note": ""}, "Say what the consignee has not done"),
    ({"method": "carrier pigeon", "effective": "yes", "note": ""}, "Choose one of"),
    ({"method": "phone", "note": ""}, "Say whether the consignee acted"),
])
def test_a_wrong_check_changes_nothing(client, sampled, form, message):
    d1 = _consignee(sampled, "D1")
    login(client, "qa")
    response = client.post(f"/recalls/{sampled}/consignees/{d1.id}/check?lang=en", data=form)
    assert response.status_code == 422
    assert message in _section(_text(response), "sample-D1")
    assert _consignee(sampled, "D1").checked_at is None


def test_a_check_of_a_consignee_of_another_recall_is_not_found(client, sampled):
    login(client, "qa")
    response = client.post(f"/recalls/{sampled}/consignees/9999/check?lang=en", data={"method": "phone",
                                                                                      "effective": "yes"})
    assert response.status_code == 404 and 'data-testid="recall-message"' in _text(response)


@pytest.mark.parametrize("username", ["auditor", "prod"])
def test_readers_see_everything_but_no_forms(client, notified, username):
    login(client, username)
    page = _text(client.get(f"/recalls/{notified}?lang=en"))
    assert 'data-testid="consignees"' in page and 'data-testid="deadlines"' in page
    assert "<form" not in page.split('id="main"')[1]  # not even the sign-out form is inside the page body
    assert 'data-testid="read-only"' in page


@pytest.mark.parametrize("path,form", [
    ("affected", {"add": "L3", "reason": "auditor"}),
    ("returns", {"customer": "D1", "lot": "L1", "returned": "1", "destroyed": "0"}),
])
@pytest.mark.parametrize("username", ["auditor", "prod"])
def test_readers_cannot_post(client, decided, username, path, form):
    login(client, username)
    response = client.post(f"/recalls/{decided}/{path}?lang=en", data=form)
    assert response.status_code == 403
    assert _affected(decided) == ["L1", "L2"] and _returns(decided)[("D1", "L1")] == (0, 0)


# --- the public acknowledgment page --------------------------------------------------------------------------------

def test_acknowledgment_page_happy_path(client, notified):
    us1 = _consignee(notified, "US1")
    token, [line] = _token(us1), us1.lines
    page = _text(client.get(f"/ack/{token}"))  # nobody is signed in
    assert '<html lang="en">' in page and "Boston Medical Supply" in page and f'name="returned_{line.id}"' in page
    assert 'name="forwarded"' in page  # a distributor
    assert 'href="/instances/"' not in page and 'name="csrf_token"' in page  # no menu; the form keeps its token
    response = client.post(f"/ack/{token}", data={"received": "yes", "on_hand": "0", f"returned_{line.id}": "25",
                                                  f"destroyed_{line.id}": "5", "forwarded": "no",
                                                  "contact": "Pat Doe 555-0100", "comment": "All units back."})
    assert response.status_code == 200
    assert 'data-testid="ack-done"' in _text(response) and 'name="received"' not in _text(response)
    assert response.headers["Cache-Control"] == "no-store" and response.headers["Referrer-Policy"] == "no-referrer"
    us1 = _consignee(notified, "US1")
    assert (us1.ack_received, us1.ack_on_hand, us1.ack_forwarded, us1.ack_contact) == (True, 0, False,
                                                                                       "Pat Doe 555-0100")
    assert (us1.lines[0].quantity_returned, us1.lines[0].quantity_destroyed) == (25, 5)

    again = client.get(f"/ack/{token}")
    assert again.status_code == 409 and 'data-testid="ack-closed"' in _text(again) and "<form" not in _text(again)
    assert client.post(f"/ack/{token}", data={"received": "yes", "contact": "x"}).status_code == 409


def test_a_used_link_answers_in_the_consignees_language(client, notified):
    h1 = _consignee(notified, "H1")
    token, [line] = _token(h1), h1.lines
    client.post(f"/ack/{token}", data={"received": "yes", f"returned_{line.id}": "1", "contact": "Dr Wu"},
                headers={"Accept-Language": "en"})
    again = client.get(f"/ack/{token}", headers={"Accept-Language": "en"})
    assert again.status_code == 409 and '<html lang="zh' in _text(again) and "召回确认回执" in _text(again)


def test_the_public_form_works_with_csrf_protection_on(app, client, notified):
    app.config["WTF_CSRF_ENABLED"] = True
    h1 = _consignee(notified, "H1")
    token, [line] = _token(h1), h1.lines
    answers = {"received": "yes", "contact": "Dr Wu", f"returned_{line.id}": "20"}
    assert client.post(f"/ack/{token}", data=answers).status_code == 400  # no token: refused
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', _text(client.get(f"/ack/{token}")))[1]
    assert client.post(f"/ack/{token}", data={**answers, "csrf_token": csrf}).status_code == 200
    assert _consignee(notified, "H1").acknowledged_at is not None


def test_a_hospital_page_asks_nothing_about_forwarding(client, notified):
    page = _text(client.get(f"/ack/{_token(_consignee(notified, 'H1'))}"))
    assert 'name="received"' in page and 'name="forwarded"' not in page


def test_a_chinese_consignee_gets_the_page_in_chinese(client, notified):
    d1 = _consignee(notified, "D1")
    page = _text(client.get(f"/ack/{_token(d1)}", headers={"Accept-Language": "en"}))
    assert '<html lang="zh-CN">' in page and "发货数量" in page and "批号" in page


def test_a_forged_link_is_not_found(client, notified):
    response = client.get("/ack/forged-token")
    assert response.status_code == 404 and 'data-testid="ack-closed"' in _text(response)
    assert "<form" not in _text(response)
    assert client.post("/ack/forged-token", data={"received": "yes", "contact": "x"}).status_code == 404


def test_an_expired_link_is_gone(client, notified):
    h1 = _consignee(notified, "H1")
    token = _token(h1)
    h1.token_expires_at = utcnow() - timedelta(minutes=1)
    db.session.commit()
    for response in (client.get(f"/ack/{token}"), client.post(f"/ack/{token}", data={"received": "yes",
                                                                                      "contact": "Dr Wu"})):
        assert response.status_code == 410 and 'data-testid="ack-closed"' in _text(response)
        assert "<form" not in _text(response)
    assert _consignee(notified, "H1").acknowledged_at is None


@pytest.mark.parametrize("answers,field,message", [
    ({"received": "yes", "contact": "Chen", "returned": "20", "destroyed": "20"}, "returned", "exceed the 30"),
    ({"received": "yes", "contact": "Chen", "returned": "many"}, "returned", "Enter a whole number"),
    ({"received": "yes", "contact": "Chen", "on_hand": "-3"}, "on_hand", "at least 0"),
    ({"received": "", "contact": "Chen"}, "received", "Tell whether you received"),
    ({"received": "yes", "contact": "  "}, "contact", "Give a contact"),
])
def test_a_wrong_acknowledgment_saves_nothing(client, notified, answers, field, message):
    d1 = _consignee(notified, "US1")  # an English-speaking consignee: messages follow its language
    token, [line] = _token(d1), d1.lines
    form = {{"returned": f"returned_{line.id}", "destroyed": f"destroyed_{line.id}"}.get(k, k): v
            for k, v in answers.items()}
    response = client.post(f"/ack/{token}", data=form)
    assert response.status_code == 422
    page = _text(response)
    name = {"returned": f"returned_{line.id}"}.get(field, field)
    assert message in page.split(f'id="{name}-error"', 1)[1].split("</div>")[0]
    assert 'data-testid="ack-form"' in page
    assert ('value="Chen"' in page) is (field != "contact")  # what was typed stays
    d1 = _consignee(notified, "US1")
    assert d1.acknowledged_at is None and d1.lines[0].quantity_returned == 0
    assert client.get(f"/ack/{token}").status_code == 200  # the link still works


def test_a_chinese_consignee_reads_the_errors_in_chinese(client, notified):
    d1 = _consignee(notified, "D1")
    response = client.post(f"/ack/{_token(d1)}", data={"received": "yes", "contact": " "})
    assert response.status_code == 422 and "请填写联系人姓名及电话或电子邮件。" in _text(response)


# --- starting a recall -----------------------------------------------------------------------------------------------

def _recall_count() -> int:
    return len(recalls.open_recalls())


def test_start_a_recall_from_a_product_lot(client, plant):
    login(client, "qa")
    page = _text(client.get(f"/lots/product-lots/{plant['L1'].id}?lang=en"))
    assert 'data-testid="start-recall"' in page
    response = client.post("/recalls/start", data={"lot_id": plant["L1"].id})
    assert response.status_code == 302 and "/tasks/" in response.headers["Location"]
    [instance] = recalls.open_recalls()
    assert instance.data["product_lots"] == "L1"


def test_start_a_recall_from_a_capa(client, plant, user):
    capa = instances.start_instance("capa", user("qa"), title="Leaking sets")
    login(client, "qa")
    page = _text(client.get(f"/instances/{capa.id}?lang=en"))
    assert 'data-testid="start-recall"' in page and 'data-testid="recall-workspace-link"' not in page
    response = client.post("/recalls/start", data={"capa_instance_id": capa.id})
    assert response.status_code == 302 and "/tasks/" in response.headers["Location"]
    [instance] = recalls.open_recalls()
    assert instance.data["capa_instance_id"] == capa.id


def test_the_recall_instance_page_links_the_workspace_and_shows_deadlines(client, decided):
    login(client, "qa")
    page = _text(client.get(f"/instances/{decided}?lang=en"))
    assert f'href="/recalls/{decided}" data-testid="recall-workspace-link"' in page
    assert 'data-testid="deadline-consignee_notice" data-status="pending"' in page and "js/countdown.js" in page
    assert 'data-testid="start-recall"' not in page


def test_auditor_gets_no_start_buttons_and_cannot_start(client, plant, user):
    capa = instances.start_instance("capa", user("qa"), title="Leaking sets")
    login(client, "auditor")
    assert 'data-testid="start-recall"' not in _text(client.get(f"/lots/product-lots/{plant['L1'].id}"))
    assert 'data-testid="start-recall"' not in _text(client.get(f"/instances/{capa.id}"))
    assert client.post("/recalls/start", data={"lot_id": plant["L1"].id}).status_code == 403
    assert _recall_count() == 0


def test_start_without_a_lot_or_capa_is_refused(client, plant):
    login(client, "qa")
    assert client.post("/recalls/start", data={}).status_code == 400
    assert client.post("/recalls/start", data={"lot_id": 9999}).status_code == 404
    assert db.session.scalar(db.select(db.func.count(ProcessInstance.id))) == 0

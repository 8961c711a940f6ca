"""Controlled procedures (ISO 13485 4.2.4, 21 CFR 820.40): a new version is pending until QA approves it with an
e-signature (not its author), takes effect on its effective date, and can be rejected or withdrawn; the version
history shows who wrote and approved what, why, and the differences."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from app.exceptions import Conflict, FormInvalid, PermissionDenied, SignatureRejected
from app.extensions import db
from app.models import AuditEvent
from app.services import demo, users
from app.services.studio import studio
from app.services.workflow import instances, procedure_control, processes
from tests.conftest import T0, login
from tests.integration.diagrams import CALLER, LONGER_DUE_IN, callee, capa_variant
from tests.integration.releases import approve, deploy_effective

API = "/api/v1"
V2 = capa_variant(LONGER_DUE_IN)
V3 = capa_variant([('<spiffworkflow:property name="dueIn" value="P2D"/>',
                    '<spiffworkflow:property name="dueIn" value="P5D"/>')])


def _deploy_v2(author: str = "owner", note: str = "Describe the problem within 9 days"):
    return processes.deploy_file(V2.encode(), "capa.bpmn", users.get_by_username(author), note).version


def _started_version(user, now=T0) -> int:
    return instances.start_instance("capa", user("qa"), title="Burr on hub", now=now).version.version


def _audit(action: str) -> list[AuditEvent]:
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)))


def test_a_new_version_is_pending_and_not_used_until_qa_approves_it_with_an_e_signature(seeded, user):
    v2 = _deploy_v2()
    assert v2.status == "pending" and _started_version(user) == 1

    approved = procedure_control.approve(user("head"), "capa", 2, demo.DEMO_PASSWORD, now=T0)

    assert (approved.status, approved.signed_name, approved.signed_meaning) == ("approved", "Helen Head", "approved")
    assert approved.decided_by.username == "head" and approved.decided_at == T0
    assert approved.effective_on == T0.date() and approved.effective_at == T0 and len(approved.signed_hash) == 64
    assert _started_version(user) == 2
    [event] = _audit("process.approved")
    assert event.actor_id == users.get_by_username("head").id and event.new["printed_name"] == "Helen Head"
    assert event.new["meaning"] == "approved" and event.new["content_hash"] == v2.content_hash
    running_on_1 = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "instance.started")).first()
    assert running_on_1.new["version"] == 1  # the instance started before stays on its version


def test_the_author_cannot_approve_their_own_version_and_only_qa_approves(seeded, user):
    _deploy_v2(author="admin")  # the admin is in the QA management group too
    with pytest.raises(PermissionDenied, match="You are the author of version 2: another person from QA"):
        procedure_control.approve(user("admin"), "capa", 2, demo.DEMO_PASSWORD, now=T0)
    with pytest.raises(PermissionDenied, match="Only QA approves procedures"):
        procedure_control.approve(user("owner"), "capa", 2, demo.DEMO_PASSWORD, now=T0)
    with pytest.raises(PermissionDenied, match="Only QA approves procedures"):
        procedure_control.reject(user("qa"), "capa", 2, "no", now=T0)
    assert processes.get_version("capa", 2).status == "pending" and not _audit("process.approved")


def test_a_wrong_password_does_not_approve_and_is_counted(seeded, user):
    _deploy_v2()
    with pytest.raises(SignatureRejected, match="the version was not approved"):
        procedure_control.approve(user("head"), "capa", 2, "not the password", now=T0)
    with pytest.raises(SignatureRejected):
        procedure_control.approve(user("head"), "capa", 2, None, now=T0)
    db.session.expire_all()
    assert processes.get_version("capa", 2).status == "pending"
    assert users.get_by_username("head").failed_logins == 2
    assert len(_audit("signature.failed")) == 2 and not _audit("process.approved")


def test_a_future_effective_date_waits_for_that_day(seeded, user):
    _deploy_v2()
    friday = (T0 + timedelta(days=4)).replace(hour=0)  # the start of the day on the plant's clock (UTC in tests)
    approve(processes.get_version("capa", 2), effective_on=friday.date())
    assert processes.get_version("capa", 2).effective_at == friday

    assert _started_version(user, now=friday - timedelta(seconds=1)) == 1
    assert procedure_control.history("capa", friday - timedelta(seconds=1))[1][0].shown == "scheduled"
    assert _started_version(user, now=friday) == 2
    effective, rows = procedure_control.history("capa", friday)
    assert effective.version == 2 and [r.shown for r in rows] == ["effective", "superseded"]


def test_an_effective_date_in_the_past_is_refused(seeded, user):
    _deploy_v2()
    with pytest.raises(FormInvalid) as caught:
        procedure_control.approve(user("head"), "capa", 2, demo.DEMO_PASSWORD, (T0 - timedelta(days=1)).date(),
                                  now=T0)
    assert caught.value.errors == {"effective_date": ["The effective date is today or later."]}
    assert users.get_by_username("head").failed_logins == 0  # refused before the password is checked


def test_a_rejected_version_is_never_used_and_a_corrected_one_is_deployed_anew(seeded, user):
    _deploy_v2()
    with pytest.raises(FormInvalid):
        procedure_control.reject(user("head"), "capa", 2, "  ", now=T0)
    procedure_control.reject(user("head"), "capa", 2, "9 days is too long for a major problem", now=T0)

    assert _started_version(user) == 1
    with pytest.raises(Conflict, match="only a pending version can be approved"):
        procedure_control.approve(user("releaser"), "capa", 2, demo.DEMO_PASSWORD, now=T0)
    [event] = _audit("process.rejected")
    assert event.reason == "9 days is too long for a major problem" and event.actor_id == user("head").id
    # The same content again is a new version (3), not the rejected one.
    v3 = _deploy_v2(note="9 days, agreed with QA")
    assert (v3.version, v3.status) == (3, "pending")
    assert [r.shown for r in procedure_control.history("capa", T0)[1]] == ["pending", "rejected", "effective"]


def test_only_the_author_withdraws_a_pending_version(seeded, user):
    _deploy_v2()
    with pytest.raises(PermissionDenied, match="Only the author of version 2 may withdraw it"):
        procedure_control.withdraw(user("head"), "capa", 2, "not mine", now=T0)
    procedure_control.withdraw(user("owner"), "capa", 2, "wrong duration", now=T0)
    assert processes.get_version("capa", 2).status == "withdrawn" and _started_version(user) == 1
    assert _audit("process.withdrawn")[0].reason == "wrong duration"


def test_an_older_pending_version_cannot_be_approved_after_a_newer_one(seeded, user):
    _deploy_v2()
    v3 = processes.deploy_file(V3.encode(), "capa.bpmn",
                               user("owner"), "5 days").version
    approve(v3)
    with pytest.raises(Conflict, match="Version 3 is already approved, so version 2 would never be used"):
        approve(processes.get_version("capa", 2))


def test_a_caller_is_approved_only_after_the_version_it_calls(seeded, user):
    processes.deploy_file(callee("v1"), "checklist.bpmn", user("owner"), "checklist")
    processes.deploy_file(CALLER, "inspection_round.bpmn", user("owner"), "round")
    with pytest.raises(Conflict, match="calls checklist v1, which is pending approval: approve that version first"):
        approve(processes.get_version("inspection_round", 1))
    with pytest.raises(Conflict, match="inspection_round has no effective version yet.*awaits approval by QA"):
        instances.start_instance("inspection_round", user("qa"), now=T0)
    approve(processes.get_version("checklist", 1))
    approve(processes.get_version("inspection_round", 1))
    assert instances.start_instance("inspection_round", user("qa"), now=T0).version.version == 1


def test_instances_move_only_onto_an_approved_version(seeded, user):
    instance = instances.start_instance("capa", user("qa"), title="Burr on hub", now=T0)
    _deploy_v2()
    with pytest.raises(Conflict, match="Version 2 is pending"):
        studio.migrate_instance(user("owner"), instance.id, 2, "new due time", now=T0)


def test_a_deploy_needs_a_reason_and_users_cannot_release_at_installation(seeded, user):
    with pytest.raises(FormInvalid, match="A reason for the change is required"):
        processes.deploy_file(V2.encode(), "capa.bpmn", user("owner"), "  ")
    with pytest.raises(PermissionDenied, match="Only the system releases procedures at installation"):
        processes.deploy_file(V2.encode(), "capa.bpmn", user("admin"), "now", release="urgent")
    assert [v.version for v in processes.get_definition("capa").versions] == [1]


def test_the_initial_release_at_installation_is_for_first_versions_only(seeded, runner, tmp_path):
    directory = tmp_path / "processes"
    directory.mkdir()
    (directory / "capa.bpmn").write_text(V2, encoding="utf-8")
    (directory / "checklist.bpmn").write_bytes(callee("v1"))

    result = runner.invoke(args=["processes", "deploy", str(directory), "--initial-release",
                                 "Validated release 2.0 installed on site"])

    assert result.exit_code == 0, result.output
    assert "checklist: deployed as version 1 (effective, released at installation)" in result.output
    assert "capa: deployed as version 2 (pending QA approval)" in result.output  # capa is in use: QA approves
    assert processes.effective_version("checklist").version == 1
    [released] = [e for e in _audit("process.released") if e.new["process"] in ("checklist", "capa")
                  and e.new["reason"] != "Initial release of the shipped procedures at installation (test setup)"]
    assert released.actor_id is None and released.new == {"process": "checklist", "version": 1,
                                                      "by": "system at installation",
                                                      "reason": "Validated release 2.0 installed on site"}
    assert runner.invoke(args=["processes", "deploy", str(directory), "--initial-release", " "]).exit_code != 0


# --- API -------------------------------------------------------------------------------------------------------

def _token(username: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {users.issue_token(username)}"}


def test_the_api_approves_rejects_and_withdraws(client, seeded, user):
    owner, head = _token("owner"), _token("head")
    _deploy_v2()
    record = client.get(f"{API}/processes/capa/versions/2", headers=head).get_json()
    assert (record["status"], record["author"], record["reason_for_change"]) == (
        "pending", "owner", "Describe the problem within 9 days")

    by_author = client.post(f"{API}/processes/capa/versions/2/approve", headers=owner,
                            json={"password": demo.DEMO_PASSWORD})
    assert by_author.status_code == 403 and by_author.get_json()["error"] == "PermissionDenied"
    wrong = client.post(f"{API}/processes/capa/versions/2/approve", headers=head, json={"password": "nope"})
    assert wrong.status_code == 401 and "not approved" in wrong.get_json()["message"]
    past = client.post(f"{API}/processes/capa/versions/2/approve", headers=head,
                       json={"password": demo.DEMO_PASSWORD, "effective_date": "2020-01-01"})
    assert past.status_code == 422
    assert client.post(f"{API}/processes/capa/versions/2/approve", headers=head, json={}).status_code == 422
    assert client.post(f"{API}/processes/capa/versions/9/approve", headers=head,
                       json={"password": demo.DEMO_PASSWORD}).status_code == 404

    approved = client.post(f"{API}/processes/capa/versions/2/approve", headers=head,
                           json={"password": demo.DEMO_PASSWORD})
    assert approved.status_code == 200, approved.get_json()
    body = approved.get_json()
    assert body["status"] == "effective" and body["approved_by"] == "head"
    assert body["signature"]["printed_name"] == "Helen Head" and body["signature"]["meaning"] == "approved"
    assert client.post(f"{API}/processes/capa/versions/2/reject", headers=head,
                       json={"reason": "late"}).status_code == 409
    versions = client.get(f"{API}/processes/capa", headers=head).get_json()["versions"]
    assert [(v["version"], v["status"]) for v in versions] == [(2, "effective"), (1, "superseded")]

    processes.deploy_file(V3.encode(), "capa.bpmn", user("owner"), "5d")
    assert client.post(f"{API}/processes/capa/versions/3/withdraw", headers=owner, json={}).status_code == 422
    withdrawn = client.post(f"{API}/processes/capa/versions/3/withdraw", headers=owner, json={"reason": "typo"})
    assert withdrawn.status_code == 200 and withdrawn.get_json()["status"] == "withdrawn"
    assert withdrawn.get_json()["decision_reason"] == "typo"


# --- pages -----------------------------------------------------------------------------------------------------

def test_qa_approves_on_the_review_page_and_the_history_shows_it(client, seeded, user):
    _deploy_v2()
    login(client, "owner")
    page = client.get("/processes/capa/2/review").get_data(as_text=True)
    assert "Withdraw this version" in page and "Sign and approve" not in page
    client.post("/logout")

    login(client, "head")
    client.get("/language/en")
    page = client.get("/processes/capa/2/review").get_data(as_text=True)
    assert "Sign and approve" in page and 'with the meaning "Approved"' in page and "Helen Head" in page
    wrong = client.post("/processes/capa/2/approve", data={"password": "nope"})
    assert wrong.status_code == 401 and "The password is wrong; the version was not approved." in wrong.get_data(
        as_text=True)
    bad_date = client.post("/processes/capa/2/approve", data={"password": demo.DEMO_PASSWORD,
                                                               "effective_date": "31.12.2026"})
    assert bad_date.status_code == 422
    done = client.post("/processes/capa/2/approve", data={"password": demo.DEMO_PASSWORD}, follow_redirects=True)
    assert done.status_code == 200 and "Version 2 approved with your electronic signature." in done.get_data(
        as_text=True)

    history = client.get("/processes/capa/history").get_data(as_text=True)
    assert "Oliver Owner" in history and "Describe the problem within 9 days" in history
    assert "Approved by Helen Head" in history and "In effect now: version 2." in history
    assert "/processes/capa/compare?from=1&amp;to=2" in history
    assert "Released by the system at installation" in history  # version 1, the seeded install
    assert instances.start_instance("capa", user("qa"), title="after approval").version.version == 2


def test_every_reader_compares_two_versions(client, seeded):
    _deploy_v2()
    login(client, "qa")
    page = client.get("/processes/capa/compare?from=1&to=2")
    assert page.status_code == 200 and 'data-diff-url="/processes/capa/compare.json?from=1&amp;to=2"' in page.get_data(
        as_text=True)
    changes = client.get("/processes/capa/compare.json?from=1&to=2").get_json()
    [changed] = changes["changed"]
    assert changed["id"] == "describe_problem"
    assert {"property": "dueIn", "old": "P2D", "new": "P9D"} in changed["changes"]
    assert client.get("/processes/capa/compare?from=1&to=7").status_code == 400
    # staff (not QA) read the review page without the decision forms
    page = client.get("/processes/capa/2/review").get_data(as_text=True)
    assert "Sign and approve" not in page and "Withdraw this version" not in page


def test_a_page_rejection_needs_a_reason(client, seeded):
    _deploy_v2()
    login(client, "head")
    client.get("/language/en")
    assert client.post("/processes/capa/2/reject", data={"reason": ""}).status_code == 422
    done = client.post("/processes/capa/2/reject", data={"reason": "Too long"}, follow_redirects=True)
    assert "Version 2 rejected; it will not be used." in done.get_data(as_text=True)
    history = client.get("/processes/capa/history").get_data(as_text=True)
    assert "Rejected by Helen Head" in history and "Too long" in history


def test_the_start_page_offers_the_effective_version(client, seeded, user):
    deploy_effective(V2.encode(), "capa.bpmn")
    _ = processes.deploy_file(V3.encode(), "capa.bpmn", user("owner"),
                              "5 days").version
    login(client, "qa")
    page = client.get("/instances/start").get_data(as_text=True)
    assert "(v2)" in page and "(v3)" not in page



def test_the_studio_lists_each_version_with_its_status(client, seeded):
    _deploy_v2()
    login(client, "owner")
    catalogue = client.get("/studio/api/processes").get_json()
    [capa] = [p for p in catalogue["processes"] if p["key"] == "capa"]
    assert [(v["version"], v["status"]) for v in capa["versions"]] == [(2, "pending"), (1, "effective")]
    page = client.get("/studio/").get_data(as_text=True)
    assert "/processes/__key__/__version__/review" in page  # each status links to the version's review page


def test_qa_is_asked_by_e_mail_to_approve_a_new_version(seeded, user):
    from app.models import OutboxMessage
    head = user("head")
    head.language = "zh-CN"
    db.session.commit()
    _deploy_v2()

    messages = {m.recipients: m for m in db.session.scalars(select(OutboxMessage))}
    # the QA management group but not the author (the owner); the released seed asked nobody
    assert set(messages) == {"admin@qualiflow.example", "head@qualiflow.example", "releaser@qualiflow.example"}
    english = messages["releaser@qualiflow.example"]
    assert english.subject == "CAPA (corrective and preventive action) v2 awaits your approval"
    assert "Oliver Owner deployed version 2" in english.body and "Describe the problem within 9 days" in english.body
    assert "/processes/capa/2/review" in english.body
    assert "等待您批准" in messages["head@qualiflow.example"].subject


def test_the_review_and_history_pages_speak_chinese(client, seeded):
    _deploy_v2()
    login(client, "head")
    client.get("/language/zh_CN")
    page = client.get("/processes/capa/2/review").get_data(as_text=True)
    assert "以您的电子签名批准" in page and "签名并批准" in page and "待批准" in page and "生效日期" in page
    wrong = client.post("/processes/capa/2/approve", data={"password": "nope"}).get_data(as_text=True)
    assert "密码错误；该版本未被批准。" in wrong
    history = client.get("/processes/capa/history").get_data(as_text=True)
    assert "版本历史" in history and "安装时由系统发布" in history and "与 v1 比较" in history

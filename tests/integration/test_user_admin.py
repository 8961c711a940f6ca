"""User administration at /admin/users: list and search, create, edit roles/groups/language, deactivate and
reactivate, reset a password, list and revoke a user's API tokens; every action audited; the refusals (policy,
self, last admin, non-admins)."""
from __future__ import annotations

import pytest

from app.extensions import db
from app.models import ApiToken, AuditEvent, User
from app.services import users
from tests.conftest import login

GOOD = "correct-horse-battery"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _actions(prefix: str = "user.") -> list[tuple[str, str, str]]:
    return [(e.action, e.object_id, e.actor_name) for e in db.session.scalars(
        db.select(AuditEvent).where(AuditEvent.action.like(f"{prefix}%"), AuditEvent.actor_name == "Ada Admin")
        .order_by(AuditEvent.id))]


def _new(client, **fields):
    data = {"username": "mei", "full_name": "Chen Mei", "email": "mei@example.com", "language": "zh-CN",
            "roles": ["staff"], "groups": ["qa", "production"], "password": GOOD}
    data.update(fields)
    return client.post("/admin/users/new", data=data)


def test_the_list_pages_and_searches(app, client, seeded):
    login(client, "admin")
    page = client.get("/admin/users").get_data(as_text=True)
    assert page.count('data-testid="user-row"') == 8 and "Ada Admin" in page and "Arthur Auditor" in page
    found = client.get("/admin/users?q=li na").get_data(as_text=True)
    assert found.count('data-testid="user-row"') == 1 and 'data-username="qa"' in found
    assert 'data-testid="no-users"' in client.get("/admin/users?q=50%25_off").get_data(as_text=True)
    app.config["PAGE_SIZE"] = 3
    second = client.get("/admin/users?page=2").get_data(as_text=True)
    assert second.count('data-testid="user-row"') == 3 and "Page 2 of 3" in second


def test_an_admin_creates_a_user_who_signs_in_with_the_groups_and_language(app, client, seeded):
    login(client, "admin")
    response = _new(client)
    assert response.status_code == 302
    mei = users.get_by_username("mei")
    assert (mei.full_name, mei.email, mei.language, mei.roles, mei.group_names) == \
        ("Chen Mei", "mei@example.com", "zh-CN", {"staff"}, {"qa", "production"})
    created = db.session.scalar(db.select(AuditEvent).where(AuditEvent.action == "user.created",
                                                            AuditEvent.object_id == str(mei.id)))
    assert created.actor_name == "Ada Admin" and GOOD not in str(created.new)
    assert created.new["groups"] == ["production", "qa"]
    other = app.test_client()
    assert login(other, "mei", GOOD).status_code == 302
    first = other.get("/")  # an initial password an admin set: she chooses her own first
    assert first.status_code == 303 and first.headers["Location"].startswith("/account/password")


@pytest.mark.parametrize(("fields", "field", "message"), [
    ({"password": "short"}, "password", "at least 12 characters"),
    ({"password": "mei-mei-mei-mei"}, "password", "must not contain the user name"),
    ({"password": "aaaaaaaaaaaaaaa"}, "password", "not one character repeated"),
    ({"username": "qa"}, "username", "is taken"),
    ({"username": "QA"}, "username", "is taken"),
    ({"username": "no spaces"}, "username", "letters, digits"),
    ({"full_name": "  "}, "full_name", "printed name"),
    ({"email": "not-an-address"}, "email", "e-mail address"),
    ({"language": "fr"}, "language", "English or Chinese"),
    ({"roles": []}, "roles", "at least one role"),
    ({"roles": ["staff", "root"]}, "roles", "Unknown role: root"),
    ({"groups": ["qa", "nobody"]}, "groups", "Unknown group: nobody"),
])
def test_a_new_user_the_form_refuses_is_not_created(client, seeded, fields, field, message):
    login(client, "admin")
    before = db.session.scalar(db.select(db.func.count()).select_from(User))
    response = _new(client, **fields)
    page = response.get_data(as_text=True)
    assert response.status_code == 422 and message in page
    assert f'id="{field}-error"' in page
    if field != "full_name":
        assert 'value="Chen Mei"' in page  # the form keeps what was typed
    assert db.session.scalar(db.select(db.func.count()).select_from(User)) == before
    assert _actions() == []


def test_an_admin_edits_roles_groups_and_language_audited_with_old_and_new(client, seeded, user):
    login(client, "admin")
    prod = user("prod")
    response = client.post(f"/admin/users/{prod.id}", data={
        "full_name": "Wang Wei", "email": "prod@example.com", "language": "en", "roles": ["staff", "qa_releaser"],
        "groups": ["production", "qa"]})
    assert response.status_code == 302
    db.session.expire_all()
    prod = user("prod")
    assert prod.language == "en" and prod.roles == {"staff", "qa_releaser"} and prod.group_names == {"production", "qa"}
    event = db.session.scalar(db.select(AuditEvent).where(AuditEvent.action == "user.updated"))
    assert event.old["language"] == "zh-CN" and event.old["roles"] == ["staff"]
    assert event.old["groups"] == ["production"] and "full_name" not in event.old
    assert event.new["roles"] == ["qa_releaser", "staff"] and event.new["language"] == "en"
    page = client.get(f"/admin/users/{prod.id}").get_data(as_text=True)
    assert 'id="role-qa_releaser" checked' in page and 'id="group-qa" checked' in page


def test_deactivating_ends_sign_in_sessions_and_tokens_and_reactivating_restores_tokens(app, client, seeded, user):
    qa_browser = app.test_client()
    login(qa_browser, "qa")
    token = users.issue_token("qa")
    assert client.get("/api/v1/processes", headers=_bearer(token)).status_code == 200
    login(client, "admin")
    qa = user("qa")
    refused = client.post(f"/admin/users/{qa.id}/deactivate", data={"reason": " "})
    assert refused.status_code == 422 and "Say why" in refused.get_data(as_text=True)
    assert client.post(f"/admin/users/{qa.id}/deactivate", data={"reason": "left the company"}).status_code == 302
    assert qa_browser.get("/").status_code == 302
    assert client.get("/api/v1/processes", headers=_bearer(token)).status_code == 401
    assert login(app.test_client(), "qa").status_code == 401
    page = client.get(f"/admin/users/{qa.id}").get_data(as_text=True)
    assert "deactivated" in page and "Open sessions: 0" in page

    assert client.post(f"/admin/users/{qa.id}/reactivate", data={"reason": ""}).status_code == 302
    assert client.get("/api/v1/processes", headers=_bearer(token)).status_code == 200
    assert qa_browser.get("/").status_code == 302  # the ended session stays ended
    assert login(app.test_client(), "qa").status_code == 302
    events = _actions()
    assert [a for a, _, _ in events] == ["user.deactivated", "user.reactivated"]
    deactivated = db.session.scalar(db.select(AuditEvent).where(AuditEvent.action == "user.deactivated"))
    assert deactivated.reason == "left the company" and deactivated.new["sessions_ended"] == 1


def test_an_admin_cannot_deactivate_themselves_or_take_their_own_admin_role(client, seeded, user):
    login(client, "admin")
    admin = user("admin")
    response = client.post(f"/admin/users/{admin.id}/deactivate", data={"reason": "testing"})
    assert response.status_code == 409 and "your own account" in response.get_data(as_text=True)
    response = client.post(f"/admin/users/{admin.id}", data={
        "full_name": "Ada Admin", "email": "", "language": "en", "roles": ["staff"], "groups": []})
    assert response.status_code == 409 and "from yourself" in response.get_data(as_text=True)
    db.session.expire_all()
    assert user("admin").active and user("admin").has_role("admin")
    assert _actions() == []


def test_the_last_admin_keeps_the_role_and_the_account(client, seeded, user):
    second = users.create_user(None, username="bo", full_name="Bo Admin", email="", language="en",
                               roles=["admin"], groups=[], password=GOOD)
    login(client, "bo", GOOD)
    admin = user("admin")
    assert client.post(f"/admin/users/{admin.id}", data={
        "full_name": "Ada Admin", "language": "en", "roles": ["staff"]}).status_code == 302  # bo is still admin
    db.session.expire_all()
    assert not user("admin").has_role("admin")
    # Bo is now the only admin: neither the role nor the account can go (not even from the command line).
    with pytest.raises(users.Conflict, match="last active administrator"):
        users.update_user(None, second.id, full_name="Bo Admin", email="", language="en", roles=["staff"], groups=[])
    with pytest.raises(users.Conflict, match="last active administrator"):
        users.set_active(None, second.id, False, reason="gone")
    db.session.expire_all()
    assert users.get_by_username("bo").active and users.get_by_username("bo").has_role("admin")


def test_a_password_reset_follows_the_policy_ends_sessions_and_lifts_the_lock(app, client, seeded, user):
    qa_browser = app.test_client()
    login(qa_browser, "qa")
    qa = user("qa")
    for _ in range(5):
        login(app.test_client(), "qa", "wrong")
    db.session.expire_all()
    assert users.locked_out(user("qa"))
    login(client, "admin")
    refused = client.post(f"/admin/users/{qa.id}/password", data={"password": "short"})
    assert refused.status_code == 422 and "at least 12 characters" in refused.get_data(as_text=True)
    assert client.post(f"/admin/users/{qa.id}/password", data={"password": GOOD}).status_code == 302
    assert qa_browser.get("/").status_code == 302
    assert login(app.test_client(), "qa").status_code == 401  # the old password no longer works
    assert login(app.test_client(), "qa", GOOD).status_code == 302
    db.session.expire_all()
    assert user("qa").password_change_required
    assert "Chooses a new password at the next sign-in" in client.get(f"/admin/users/{qa.id}").get_data(as_text=True)
    event = db.session.scalar(db.select(AuditEvent).where(AuditEvent.action == "user.password_reset"))
    assert event.actor_name == "Ada Admin" and GOOD not in str(event.new)


def test_an_admin_lists_and_revokes_a_users_tokens(client, seeded, user):
    token = users.issue_token("qa", name="ERP export")
    users.issue_token("prod", name="not hers")
    login(client, "admin")
    qa = user("qa")
    page = client.get(f"/admin/users/{qa.id}").get_data(as_text=True)
    assert "ERP export" in page and "not hers" not in page
    row = db.session.scalar(db.select(ApiToken).where(ApiToken.name == "ERP export"))
    assert client.post(f"/admin/users/{qa.id}/tokens/{row.id}/revoke").status_code == 302
    assert client.get("/api/v1/processes", headers=_bearer(token)).status_code == 401
    assert "revoked" in client.get(f"/admin/users/{qa.id}").get_data(as_text=True)
    assert _actions("token.") == [("token.revoked", str(row.id), "Ada Admin")]
    assert client.get(f"/admin/users/{qa.id}").status_code == 200


@pytest.mark.parametrize(("method", "path"), [
    ("get", "/admin/users"), ("get", "/admin/users/new"), ("post", "/admin/users/new"), ("get", "/admin/users/1"),
    ("post", "/admin/users/1"), ("post", "/admin/users/1/deactivate"), ("post", "/admin/users/1/reactivate"),
    ("post", "/admin/users/1/password"), ("post", "/admin/users/1/tokens/1/revoke")])
def test_non_admins_get_403(client, seeded, method, path):
    login(client, "head")
    response = getattr(client, method)(path, data={"username": "x1", "full_name": "X", "roles": ["admin"],
                                                   "password": GOOD, "reason": "x", "language": "en"})
    assert response.status_code == 403
    assert db.session.scalar(db.select(AuditEvent).where(AuditEvent.action.like("user.%"),
                                                         AuditEvent.actor_name == "Helen Head")) is None


def test_an_unknown_user_is_404_and_the_pages_read_in_chinese(client, seeded, user):
    login(client, "admin")
    assert client.get("/admin/users/999999").status_code == 404
    client.get("/language/zh_CN")
    page = client.get(f"/admin/users/{user('qa').id}").get_data(as_text=True)
    assert "重置密码" in page and "停用" in page and "管理员" in page
    assert "用户" in client.get("/admin/users").get_data(as_text=True)


def test_csrf_is_checked_like_the_other_forms(app, client, seeded, user):
    login(client, "admin")  # signed in with CSRF off (the testing config), then checked as in production
    app.config["WTF_CSRF_ENABLED"] = True
    qa = user("qa")
    response = client.post(f"/admin/users/{qa.id}/deactivate", data={"reason": "no token"})
    assert response.status_code == 400
    db.session.expire_all()
    assert user("qa").active


NEW = "my-own-choice-2026"


def test_a_user_whose_password_an_admin_set_chooses_their_own_first(app, client, seeded, user):
    users.create_user(None, username="mei", full_name="Chen Mei", email="", language="en", roles=["staff"],
                      groups=["qa"], password=GOOD)
    login(client, "admin")
    mei = user("mei")
    client.post(f"/admin/users/{mei.id}/password", data={"password": GOOD})
    token = users.issue_token("mei")
    browser, other = app.test_client(), app.test_client()
    login(browser, "mei", GOOD)
    login(other, "mei", GOOD)
    for path in ("/", "/instances/", "/dashboard/", "/account/tokens/"):
        response = browser.get(path)
        assert response.status_code == 303 and response.headers["Location"].startswith("/account/password"), path
    assert browser.post("/instances/start", data={"process": "capa"}).status_code == 303
    assert browser.get("/account/password").status_code == 200
    assert browser.get("/api/v1/processes", headers={"Authorization": f"Bearer {token}"}).status_code == 200

    wrong = browser.post("/account/password", data={"current": "not it", "new": NEW, "confirm": NEW})
    assert wrong.status_code == 422 and "The current password is wrong." in wrong.get_data(as_text=True)
    assert db.session.scalar(db.select(AuditEvent).where(AuditEvent.action == "password_change.failed"))
    weak = browser.post("/account/password", data={"current": GOOD, "new": "mei-is-me-123", "confirm": "x"})
    page = weak.get_data(as_text=True)
    assert weak.status_code == 422 and "must not contain the user name" in page
    assert "The two new passwords differ" in page
    same = browser.post("/account/password", data={"current": GOOD, "new": GOOD, "confirm": GOOD})
    assert same.status_code == 422 and "other than the current one" in same.get_data(as_text=True)
    db.session.expire_all()
    assert user("mei").password_change_required

    done = browser.post("/account/password?next=/instances/", data={"current": GOOD, "new": NEW, "confirm": NEW})
    assert done.status_code == 302 and done.headers["Location"] == "/instances/"
    assert browser.get("/instances/").status_code == 200
    assert other.get("/").status_code == 302  # the other browser is signed out
    db.session.expire_all()
    assert not user("mei").password_change_required
    assert login(app.test_client(), "mei", GOOD).status_code == 401
    assert login(app.test_client(), "mei", NEW).status_code == 302
    changed = db.session.scalar(db.select(AuditEvent).where(AuditEvent.action == "user.password_changed"))
    assert changed.actor_name == "Chen Mei" and NEW not in str(changed.new)


def test_everyone_changes_their_own_password_and_wrong_ones_lock_the_account(app, client, seeded, user):
    login(client, "prod")
    client.get("/language/en")
    assert client.get("/account/password").status_code == 200
    for _ in range(app.config["LOGIN_MAX_FAILURES"]):
        client.post("/account/password", data={"current": "wrong", "new": NEW, "confirm": NEW})
    db.session.expire_all()
    assert users.locked_out(user("prod"))
    locked = client.post("/account/password", data={"current": "qualiflow-demo", "new": NEW, "confirm": NEW})
    assert locked.status_code == 422 and "locked" in locked.get_data(as_text=True)

"""Sign-out ends the session on the server; API tokens expire, stop while their user is locked or deactivated, and
are listed and revoked by their owner (page and API) and by admins."""
from __future__ import annotations

import re
from datetime import timedelta

from app.extensions import db
from app.models import ApiToken, UserSession
from app.models.types import utcnow
from app.services import users
from tests.conftest import login


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_session_cookie_captured_before_sign_out_does_not_work_after_it(client, seeded):
    login(client, "qa")
    assert client.get("/").status_code == 200
    captured = client.get_cookie("session").value

    client.post("/logout")
    client.set_cookie("session", captured)  # the attacker replays the copy
    replayed = client.get("/")
    assert replayed.status_code == 302 and "/login" in replayed.headers["Location"]
    assert db.session.scalar(db.select(UserSession)).ended_at is not None


def test_a_background_request_after_sign_out_gets_401_and_leaves_the_sign_out_notice(client, seeded):
    login(client, "qa")
    client.post("/logout")  # the notice waits in the session for the next page

    late = client.get("/instances/1/diagram.json", headers={"Sec-Fetch-Dest": "empty"})  # a fetch still in flight
    assert late.status_code == 401
    assert late.get_json() == {"error": "Unauthorized", "message": "Your session has ended: sign in again."}
    # the sign-out's session cookie, holding the notice, stays as it is
    assert not [c for c in late.headers.getlist("Set-Cookie") if c.startswith("session=")]
    json_poll = client.get("/lots/imports/1.json", headers={"Accept": "application/json"})
    assert json_poll.status_code == 401

    shown = client.get("/login").get_data(as_text=True)
    assert "You are signed out." in shown
    navigated = client.get("/")  # a page the browser opens still goes to the sign-in page
    assert navigated.status_code == 302 and "/login?next=" in navigated.headers["Location"]


def test_signing_out_ends_only_that_browser(app, client, seeded):
    first, second = client, app.test_client()
    login(first, "qa")
    login(second, "qa")
    first.post("/logout")
    assert first.get("/").status_code == 302
    assert second.get("/").status_code == 200


def test_a_deactivated_user_is_signed_out_at_once(client, seeded, user):
    login(client, "qa")
    user("qa").active = False
    db.session.commit()
    assert client.get("/").status_code == 302


def test_tokens_stop_while_the_user_is_locked_or_deactivated(client, seeded, user):
    token = users.issue_token("qa")
    assert client.get("/api/v1/processes", headers=_bearer(token)).status_code == 200

    qa = user("qa")
    qa.locked_until = utcnow() + timedelta(minutes=15)  # five wrong passwords
    db.session.commit()
    assert client.get("/api/v1/processes", headers=_bearer(token)).status_code == 401
    qa.locked_until = utcnow() - timedelta(seconds=1)
    db.session.commit()
    assert client.get("/api/v1/processes", headers=_bearer(token)).status_code == 200

    qa.active = False
    db.session.commit()
    assert client.get("/api/v1/processes", headers=_bearer(token)).status_code == 401


def test_tokens_expire_and_record_their_last_use(app, client, seeded):
    token = users.issue_token("qa", days=1)
    row = db.session.scalar(db.select(ApiToken))
    assert row.expires_at - row.created_at == timedelta(days=1) and row.last_used_at is None
    assert client.get("/api/v1/processes", headers=_bearer(token)).status_code == 200
    db.session.expire_all()
    assert row.last_used_at is not None and row.state == "active"

    row.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    assert client.get("/api/v1/processes", headers=_bearer(token)).status_code == 401
    assert row.state == "expired"
    default = users.issue_token("head")
    assert db.session.scalar(db.select(ApiToken).where(ApiToken.id != row.id)).expires_at.date() == (
        utcnow() + timedelta(days=app.config["API_TOKEN_DAYS"])).date() and default


def test_owners_list_and_revoke_their_tokens_on_the_api(client, seeded):
    mine, theirs = users.issue_token("qa"), users.issue_token("head")
    listed = client.get("/api/v1/tokens", headers=_bearer(mine)).get_json()
    assert [(t["user"], t["state"]) for t in listed] == [("qa", "active")]
    assert {"created_at", "expires_at", "last_used_at", "revoked_at", "name"} <= set(listed[0])

    heads = db.session.scalar(db.select(ApiToken).join(ApiToken.user).where(ApiToken.user.has(username="head")))
    assert client.delete(f"/api/v1/tokens/{heads.id}", headers=_bearer(mine)).status_code == 404  # not theirs
    assert client.get("/api/v1/processes", headers=_bearer(theirs)).status_code == 200

    revoked = client.delete(f"/api/v1/tokens/{listed[0]['id']}", headers=_bearer(mine))
    assert revoked.status_code == 200 and revoked.get_json()["state"] == "revoked"
    assert client.get("/api/v1/tokens", headers=_bearer(mine)).status_code == 401


def test_admins_list_and_revoke_everyones_tokens(client, seeded):
    staff, admin = users.issue_token("qa"), users.issue_token("admin")
    listed = client.get("/api/v1/tokens", headers=_bearer(admin)).get_json()
    assert sorted(t["user"] for t in listed) == ["admin", "qa"]
    staff_id = next(t["id"] for t in listed if t["user"] == "qa")
    assert client.delete(f"/api/v1/tokens/{staff_id}", headers=_bearer(admin)).status_code == 200
    assert client.get("/api/v1/processes", headers=_bearer(staff)).status_code == 401


def test_the_tokens_page_issues_a_token_once_and_revokes_it(client, seeded):
    login(client, "qa")
    issued = client.post("/account/tokens/", data={"name": "ERP export", "days": "30"})
    page = issued.get_data(as_text=True)
    assert issued.status_code == 201 and issued.headers["Cache-Control"] == "no-store"
    token = re.search(r'data-testid="new-token">([^<]+)<', page).group(1)
    assert client.get("/api/v1/processes", headers=_bearer(token)).status_code == 200
    listing = client.get("/account/tokens/").get_data(as_text=True)
    assert "ERP export" in listing and token not in listing  # shown once: only its hash is kept

    token_id = db.session.scalar(db.select(ApiToken.id))
    assert client.post(f"/account/tokens/{token_id}/revoke").status_code == 302
    assert client.get("/api/v1/processes", headers=_bearer(token)).status_code == 401
    # qa reads Chinese: the row shows the revoked badge in the page language
    assert 'text-bg-danger">已撤销<' in client.get("/account/tokens/").get_data(as_text=True)


def test_the_tokens_page_refuses_a_longer_life_than_configured(client, seeded, app):
    login(client, "qa")
    response = client.post("/account/tokens/", data={"name": "forever", "days": str(app.config["API_TOKEN_DAYS"] + 1)})
    assert response.status_code == 422 and 'data-testid="token-error"' in response.get_data(as_text=True)
    assert db.session.scalar(db.select(ApiToken)) is None


def test_a_user_cannot_revoke_someone_elses_token_on_the_page(client, seeded):
    users.issue_token("head")
    login(client, "qa")
    token_id = db.session.scalar(db.select(ApiToken.id))
    assert client.post(f"/account/tokens/{token_id}/revoke").status_code == 404
    assert db.session.get(ApiToken, token_id).revoked_at is None


def test_the_command_line_issues_a_named_token_with_its_expiry(runner, seeded):
    result = runner.invoke(args=["users", "token", "qa", "--days", "7", "--name", "nightly export"])
    assert result.exit_code == 0, result.output
    row = db.session.scalar(db.select(ApiToken))
    assert row.name == "nightly export" and row.expires_at - row.created_at == timedelta(days=7)
    refused = runner.invoke(args=["users", "token", "qa", "--days", "0"])  # there is no "never"
    assert refused.exit_code == 1 and "A token is valid for 1 to 90 days." in refused.output
    assert db.session.scalar(db.select(db.func.count(ApiToken.id))) == 1

"""Rate limits as a guesser meets them: after a few failed sign-ins, signatures or API tokens, and after a few
requests to public links, the address gets 429 with Retry-After (a page in the browser, JSON on the API), even
for a right guess; other addresses are not affected. With Redis the counts are shared by every worker."""
from __future__ import annotations

import os
import socket
import uuid

import pytest

from app import create_app
from app.extensions import db
from app.services import demo
from tests.conftest import _reset_database, login
from tests.integration.capa_steps import ready_task, run_capa_to_approval

LIMITS = {"RATELIMIT_ENABLED": True, "RATELIMIT_SIGN_IN": "2 per minute", "RATELIMIT_SIGNATURE": "2 per minute",
          "RATELIMIT_API_TOKEN": "2 per minute", "RATELIMIT_PUBLIC_LINK": "3 per minute"}
OTHER_ADDRESS = {"REMOTE_ADDR": "192.0.2.7"}


def _make_app(tmp_path, **overrides):
    uri = os.environ.get("TEST_DATABASE_URL") or f"sqlite:///{tmp_path / 'test.sqlite'}"
    return create_app("testing", {"SQLALCHEMY_DATABASE_URI": uri, "SMTP_PORT": 1, "PLANT_TIME_ZONE": "UTC",
                                  "AUDIT_CHECKPOINT_DIR": tmp_path / "checkpoints", **LIMITS, **overrides})


@pytest.fixture
def app(tmp_path):
    """The usual test app, with rate limits on and small."""
    app = _make_app(tmp_path, RATELIMIT_KEY_PREFIX=f"test-{uuid.uuid4().hex}")
    with app.app_context():
        _reset_database()
        yield app
        db.session.remove()
        db.engine.dispose()


def _assert_429_page(response) -> None:
    assert response.status_code == 429 and int(response.headers["Retry-After"]) > 0
    assert response.mimetype == "text/html" and "Too many attempts" in response.get_data(as_text=True)


def _assert_429_json(response) -> None:
    assert response.status_code == 429 and int(response.headers["Retry-After"]) > 0
    assert response.mimetype == "application/json" and "Too many attempts" in response.get_json()["message"]


def test_failed_sign_ins_are_limited_per_address(client, seeded):
    assert login(client, "qa", "guess-1").status_code == 401
    assert login(client, "head", "guess-2").status_code == 401
    _assert_429_page(login(client, "qa"))  # even the right password, from this address, for a while

    elsewhere = client.post("/login", data={"username": "qa", "password": demo.DEMO_PASSWORD},
                            environ_base=OTHER_ADDRESS)
    assert elsewhere.status_code == 302


def test_successful_sign_ins_do_not_count(client, seeded):
    for _ in range(4):
        assert login(client, "qa").status_code == 302
        client.post("/logout")


def test_refused_signatures_are_limited(client, seeded, user):
    instance = run_capa_to_approval(user)
    task = ready_task(instance.id, "qa_approval")
    login(client, "head")
    form = {"decision": "approve", "approval_comment": "ok"}
    for _ in range(2):
        assert client.post(f"/tasks/{task.id}/complete", data={**form, "password": "wrong"}).status_code == 401
    _assert_429_page(client.post(f"/tasks/{task.id}/complete", data={**form, "password": demo.DEMO_PASSWORD}))
    assert ready_task(instance.id, "qa_approval") is not None  # nothing was signed


def test_refused_signatures_on_the_api_are_limited(client, seeded, user):
    from app.services import users
    instance = run_capa_to_approval(user)
    task = ready_task(instance.id, "qa_approval")
    headers = {"Authorization": f"Bearer {users.issue_token('head')}"}
    body = {"data": {"decision": "approve", "approval_comment": "ok"}, "password": "wrong"}
    for _ in range(2):
        assert client.post(f"/api/v1/tasks/{task.id}/complete", json=body, headers=headers).status_code == 401
    _assert_429_json(client.post(f"/api/v1/tasks/{task.id}/complete", json={**body, "password": "x"},
                                 headers=headers))


def test_failed_api_tokens_are_limited_before_the_token_is_looked_at(client, seeded):
    from app.services import users
    good = {"Authorization": f"Bearer {users.issue_token('qa')}"}
    assert client.get("/api/v1/processes", headers=good).status_code == 200  # successes do not count
    for guess in ("aaa", "bbb"):
        assert client.get("/api/v1/processes", headers={"Authorization": f"Bearer {guess}"}).status_code == 401
    _assert_429_json(client.get("/api/v1/processes", headers={"Authorization": "Bearer ccc"}))
    _assert_429_json(client.get("/api/v1/processes", headers=good))  # a right guess learns nothing now
    assert client.get("/api/v1/processes", headers=good, environ_base=OTHER_ADDRESS).status_code == 200


def test_public_links_are_limited_pages_and_api_together(client, seeded):
    assert client.get("/ack/guess-1").status_code == 404
    assert client.get("/api/v1/acknowledgments/guess-2").status_code == 404
    assert client.post("/scar/guess-3", data={}).status_code == 404
    _assert_429_page(client.get("/scar/guess-4"))
    _assert_429_json(client.get("/api/v1/scar-responses/guess-5"))
    assert client.get("/ack/guess-6", environ_base=OTHER_ADDRESS).status_code == 404


def _redis_answers() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=0.5).close()
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _redis_answers(), reason="no Redis on 127.0.0.1:6379")
def test_with_redis_every_worker_shares_the_counts(tmp_path, app):
    """Two app instances (two workers) on one Redis: the failures counted by one refuse on the other."""
    shared = {"RATELIMIT_STORAGE_URI": "redis://127.0.0.1:6379/0", "RATELIMIT_KEY_PREFIX": f"t-{uuid.uuid4().hex}",
              "SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"]}
    demo.seed_people()
    db.session.commit()
    for _ in range(2):
        assert _make_app(tmp_path, **shared).test_client().post(
            "/login", data={"username": "qa", "password": "wrong"}).status_code == 401
    _assert_429_page(_make_app(tmp_path, **shared).test_client().post(
        "/login", data={"username": "qa", "password": "wrong"}))


@pytest.mark.skipif(not _redis_answers(), reason="no Redis on 127.0.0.1:6379")
def test_with_redis_two_sites_with_their_own_prefixes_count_apart(tmp_path, app):
    """Two installations on one Redis, each with its own key prefix: one site's failed sign-ins do not refuse the
    other's, also when the second app is made in a process that made the first (as the test suites do)."""
    demo.seed_people()
    db.session.commit()
    database = {"RATELIMIT_STORAGE_URI": "redis://127.0.0.1:6379/0",
                "SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"]}
    first = _make_app(tmp_path, RATELIMIT_KEY_PREFIX=f"site-{uuid.uuid4().hex}", **database).test_client()
    for expected in (401, 401, 429):
        assert first.post("/login", data={"username": "qa", "password": "wrong"}).status_code == expected
    second = _make_app(tmp_path, RATELIMIT_KEY_PREFIX=f"site-{uuid.uuid4().hex}", **database).test_client()
    assert second.post("/login", data={"username": "qa", "password": "wrong"}).status_code == 401

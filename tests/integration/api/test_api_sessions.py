"""The REST API is stateless: bearer tokens, no session. Its answers set no cookie (a client has nothing to keep or
leak), ?lang= speaks for that request alone, and the pages keep their session cookie."""
from __future__ import annotations

from tests.conftest import login


def test_api_answers_set_no_cookie(client, auth):
    headers = auth("qa")
    for response in (client.get("/api/v1/tasks", headers=headers),
                     client.get("/api/v1/tasks?lang=zh-CN", headers=headers),
                     client.get("/api/v1/instances/999", headers=headers),
                     client.get("/api/v1/tasks")):
        assert response.headers.getlist("Set-Cookie") == [], response.headers


def test_lang_speaks_for_one_api_request(client, auth):
    headers = auth("qa")
    chinese = client.get("/api/v1/instances/999?lang=zh-CN", headers=headers).get_json()["message"]
    english = client.get("/api/v1/instances/999", headers=headers).get_json()["message"]
    assert chinese != english and any("\u4e00" <= ch <= "\u9fff" for ch in chinese), (chinese, english)
    assert all(ord(ch) < 128 for ch in english), english


def test_pages_keep_their_session_cookie(client, seeded):
    response = login(client, "qa")
    assert any(cookie.startswith("session=") for cookie in response.headers.getlist("Set-Cookie"))
    assert client.get("/").status_code == 200

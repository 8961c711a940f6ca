"""A body over the upload limit answers 413 in the endpoint's own JSON shape wherever a script is the caller: the
REST API, the studio's JSON endpoints (the modeler shows `message` and `problems`) and the form editor's."""
from __future__ import annotations

import pytest

from app.services import users
from tests.conftest import login

BIG = b"<x/>" * 2000


@pytest.fixture
def small_uploads(app):
    app.config["MAX_CONTENT_LENGTH"] = 4000
    return app


@pytest.mark.parametrize("method, path, content_type", [
    ("POST", "/studio/api/drafts", "application/xml"),
    ("PUT", "/studio/api/drafts/1", "application/xml"),
    ("POST", "/studio/api/validate", "application/xml"),
    ("POST", "/studio/api/drafts/1/deploy", "application/json"),
])
def test_studio_endpoints_answer_413_in_the_studio_shape(client, seeded, small_uploads, method, path, content_type):
    login(client, "admin")
    response = client.open(path, method=method, data=BIG, headers={"Content-Type": content_type})
    assert response.status_code == 413 and response.mimetype == "application/json"
    body = response.get_json()
    assert body["problems"] == [] and body["message"]


@pytest.mark.parametrize("method, path", [("PUT", "/studio/forms/capa_describe"),
                                          ("POST", "/studio/forms/capa_describe/preview")])
def test_form_editor_endpoints_answer_413_in_json(client, seeded, small_uploads, method, path):
    login(client, "admin")
    response = client.open(path, method=method, data=BIG, headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and response.mimetype == "application/json"
    assert response.get_json()["message"]


def test_api_uploads_answer_413_in_json(client, seeded, small_uploads):
    response = client.post("/api/v1/processes/deploy", data=BIG, headers={
        "Authorization": f"Bearer {users.issue_token('admin')}", "Content-Type": "multipart/form-data; boundary=x"})
    assert response.status_code == 413 and response.mimetype == "application/json"
    assert response.get_json()["message"]


def test_a_browser_upload_over_the_limit_gets_a_page(client, seeded, small_uploads):
    login(client, "admin")
    response = client.post("/studio/deploy", data=BIG, headers={"Content-Type": "multipart/form-data; boundary=x"})
    assert response.status_code == 413 and response.mimetype == "text/html"

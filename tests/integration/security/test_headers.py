"""Security headers on every answer, as a browser or an attacker reads them: a CSP without inline script that
forbids framing, nosniff, a referrer policy, no-store on everything but static files; HTTPS forced only when
configured; production refuses an empty SECRET_KEY."""
from __future__ import annotations

import re

import pytest

from app import create_app
from tests.conftest import ROOT, login


def _csp(response) -> dict[str, str]:
    policy = response.headers["Content-Security-Policy"]
    return {part.split()[0]: " ".join(part.split()[1:]) for part in policy.split(";") if part.strip()}


@pytest.mark.parametrize("path", ["/login", "/", "/account/tokens/", "/studio/", "/api/v1/docs",
                                  "/api/v1/openapi.json", "/instances/999999", "/ack/forged-token"])
def test_every_page_carries_the_security_headers(client, seeded, path):
    login(client, "admin")
    response = client.get(path)
    assert response.status_code in (200, 302, 404)
    csp = _csp(response)
    assert csp["script-src"] == "'self'"  # no inline script, no eval
    assert csp["frame-ancestors"] == "'none'" and response.headers["X-Frame-Options"] == "DENY"
    assert csp["object-src"] == "'none'" and csp["base-uri"] == "'none'"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] in ("same-origin", "no-referrer")
    assert response.headers["Cache-Control"] == "no-store"


def test_signed_in_pages_are_never_stored_static_files_are(client, seeded):
    login(client, "qa")
    assert client.get("/").headers["Cache-Control"] == "no-store"
    assert client.get("/account/tokens/").headers["Cache-Control"] == "no-store"
    static = client.get("/static/css/app.css")
    assert static.status_code == 200 and "no-store" not in static.headers.get("Cache-Control", "")
    assert static.headers["X-Content-Type-Options"] == "nosniff"


def test_public_links_keep_their_stricter_referrer_policy(client, seeded):
    response = client.get("/scar/not-a-real-token")
    assert response.status_code == 404
    assert response.headers["Referrer-Policy"] == "no-referrer" and response.headers["Cache-Control"] == "no-store"


INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>", re.I)
INLINE_HANDLER = re.compile(r"<[^>]+\son[a-z]+\s*=", re.I)


def test_no_template_has_inline_script_or_event_handlers():
    """The CSP would block them: scripts are static files; data goes in data-* attributes or JSON blocks."""
    found = []
    for template in sorted((ROOT / "app" / "templates").rglob("*.html")):
        text = template.read_text(encoding="utf-8")
        found += [f"{template.name}: {m.group(0)[:60]}" for m in INLINE_SCRIPT.finditer(text)]
        found += [f"{template.name}: {m.group(0)[:60]}" for m in INLINE_HANDLER.finditer(text)]
        found += [f"{template.name}: javascript: URL" for _ in re.finditer(r"javascript:", text, re.I)]
    assert found == []


def test_swagger_ui_page_loads_its_script_from_a_file(client, seeded):
    page = client.get("/api/v1/docs").get_data(as_text=True)
    assert 'src="/static/js/swagger_ui.js"' in page and 'data-spec-url="/api/v1/openapi.json"' in page
    assert INLINE_SCRIPT.search(page) is None


def test_https_is_forced_only_when_configured(tmp_path):
    database = {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'x.sqlite'}"}
    assert create_app("development", database).config["FORCE_HTTPS"] is False
    assert create_app("testing", database).test_client().get("/login").status_code == 200

    forced = create_app("testing", {**database, "FORCE_HTTPS": True}).test_client()
    redirect = forced.get("/login")
    assert redirect.status_code == 302 and redirect.headers["Location"].startswith("https://")
    behind_proxy = forced.get("/login", headers={"X-Forwarded-Proto": "https"})
    assert behind_proxy.status_code == 200
    assert behind_proxy.headers["Strict-Transport-Security"].startswith("max-age=")


@pytest.mark.parametrize("secret", [None, "", "   "])
def test_production_refuses_a_missing_or_empty_secret_key(tmp_path, monkeypatch, secret):
    overrides = {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'x.sqlite'}", "AUDIT_CHECKPOINT_KEY": "k"}
    if secret is not None:
        overrides["SECRET_KEY"] = secret
    else:
        from config import DEV_SECRET_KEY
        overrides["SECRET_KEY"] = DEV_SECRET_KEY  # what the config falls back to when SECRET_KEY is unset
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        create_app("production", overrides)
    assert create_app("production", {**overrides, "SECRET_KEY": "a-real-secret"}).secret_key == "a-real-secret"

"""Every API route, every method it takes, with bodies and query values of every wrong shape: never a server
error, and every refusal is the API's JSON error body ({error, message}), which clients and gateways parse."""
from __future__ import annotations

import re

import pytest

from app.models.types import utcnow
from tests.integration import recall_steps as steps

API = "/api/v1"
HUGE = 2**63
NUL = "\x00"

# Bodies of every shape a client could send by mistake (or on purpose).
BODIES = (None, HUGE, "x", [1, {"a": None}], {}, {"id": HUGE, "lot_id": -HUGE, "quantity": 10**30, "page": "x"},
          {"data": [], "title": ["x"], "reason": {"a": 1}, "password": HUGE, "process": None, "status": 1.5},
          {"rows": "x", "readings": [[1], "x"], "decisions": {"x": 1}, "lines": [None], "overrides": "shelf_life"})
QUERY = "&".join(f"{name}={value}" for name, value in (
    ("page", 10**20), ("per_page", -1), ("after", "%00"), ("q", "%00"), ("status", "x" * 300), ("lot", HUGE),
    ("from", "2026-02-30"), ("to", "x"), ("days", 10**20), ("location", "%00"), ("warehouse", HUGE)))


def _api_rules(app) -> list[tuple[str, str]]:
    return sorted({(rule.rule, method) for rule in app.url_map.iter_rules() if rule.rule.startswith(API)
                   for method in rule.methods - {"HEAD", "OPTIONS"}})


def _fill(rule: str, number: str) -> str:
    """The rule with its int parts set to number, a procedure key where one is read, "x" for other text."""
    return re.sub(r"<(?:([a-z]+):)?([a-z_]+)>",
                  lambda m: number if m.group(1) == "int" else "capa" if m.group(2) == "key" else "x", rule)


def _refused_as_json(response, where) -> None:
    assert response.status_code < 500, (where, response.status_code, response.get_data(as_text=True)[:300])
    if response.status_code >= 400:
        body = response.get_json(silent=True)
        assert isinstance(body, dict) and isinstance(body.get("message"), str), (where, response.status_code, body)


@pytest.fixture
def records(plant, user) -> None:
    """Lots, customers, shipments and a decided recall with its notices queued: id 1 names real records."""
    steps.step(steps.decide(user, utcnow()).id, "prepare_notices", steps.NOTICES, user, utcnow())


@pytest.mark.parametrize("number", ["1", str(HUGE)])
def test_every_api_route_answers_any_body_without_a_server_error(app, client, auth, records, number):
    headers = auth("admin")
    rules = _api_rules(app)
    assert len(rules) > 60  # the sweep reaches the whole API, not a few routes
    for rule, method in rules:
        path = _fill(rule, number)
        if method == "GET":
            _refused_as_json(client.get(f"{path}?{QUERY}", headers=headers), (method, rule))
            continue
        for body in BODIES:
            response = client.open(path, method=method, headers=headers, json=body)
            _refused_as_json(response, (method, rule, body))


def test_every_api_route_refuses_a_body_that_is_not_json(app, client, auth, records):
    headers = auth("admin")
    for rule, method in _api_rules(app):
        if method == "GET":
            continue
        for raw in ('{"title": "a', "\xff\xfe", '{"x": NaN}', f'{{"x": "{NUL}"}}'):
            response = client.open(_fill(rule, "1"), method=method, headers=headers, data=raw,
                                   content_type="application/json")
            _refused_as_json(response, (method, rule, raw))

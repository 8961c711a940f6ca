"""API token lifetimes: QUALIFLOW_API_TOKEN_DAYS is 1 to 3650 days or the app does not start; a token's days out of
that range are refused on the page and the command line with the reason, and nothing is written (no overflow, no
server error, no token that never expires)."""
from __future__ import annotations

from datetime import timedelta

import pytest

from app import create_app
from app.exceptions import FormInvalid
from app.extensions import db
from app.models import ApiToken
from app.services import users
from tests.conftest import login


@pytest.mark.parametrize("value", ["0", "-5", "abc", "", " ", "1.5", "²", "3651", "99999999999999999999", 0, -1,
                                   10**12, True])
def test_the_app_refuses_to_start_with_a_token_lifetime_out_of_range(tmp_path, value):
    with pytest.raises(RuntimeError) as refused:
        create_app("testing", {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'x.sqlite'}",
                               "API_TOKEN_DAYS": value})
    assert "QUALIFLOW_API_TOKEN_DAYS must be a whole number of days from 1 to 3650" in str(refused.value)
    assert "API tokens always expire" in str(refused.value)


def test_the_longest_lifetime_issues_tokens_that_expire_ten_years_on(app, seeded):
    app.config["API_TOKEN_DAYS"] = users.token_days_setting(" 3650 ")
    users.issue_token("qa")
    row = db.session.scalar(db.select(ApiToken))
    assert row.expires_at - row.created_at == timedelta(days=3650)


def _count() -> int:
    return db.session.scalar(db.select(db.func.count(ApiToken.id)))


@pytest.mark.parametrize("days", ["0", "-1", "91", "99999999999999999999999", "1e3", "²", "7.5", "30 days"])
def test_the_tokens_page_refuses_days_out_of_range(client, seeded, days):
    login(client, "head")
    response = client.post("/account/tokens/", data={"name": "export", "days": days})
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert 'data-testid="token-error"' in page and "A token is valid for 1 to 90 days." in page
    assert _count() == 0


def test_the_tokens_page_issues_the_longest_lifetime_when_no_days_are_given(client, seeded):
    login(client, "head")
    assert client.post("/account/tokens/", data={"name": "export", "days": ""}).status_code == 201
    row = db.session.scalar(db.select(ApiToken))
    assert row.expires_at - row.created_at == timedelta(days=90)


@pytest.mark.parametrize("days", ["0", "-3", "91", "99999999999999999999999"])
def test_the_command_line_refuses_days_out_of_range(runner, seeded, days):
    result = runner.invoke(args=["users", "token", "qa", "--days", days])
    assert result.exit_code == 1
    assert "A token is valid for 1 to 90 days." in result.output
    assert _count() == 0


@pytest.mark.parametrize("days", [0, -1, 91, 10**20, True, 2.5])
def test_the_service_refuses_days_out_of_range(seeded, days):
    with pytest.raises(FormInvalid, match="A token is valid for 1 to 90 days."):
        users.issue_token("qa", days=days)
    assert _count() == 0

"""Four eyes on a step that is not itself signed: whoever requested a destruction (a plain form, no signature)
may not approve it, even when their groups let them work on both steps."""
from __future__ import annotations

import pytest

from app.exceptions import PermissionDenied
from app.extensions import db
from app.services import demo
from tests.integration.stock.conftest import level, put_lot
from tests.integration.stock.test_scrap import REQUEST, complete, start


@pytest.fixture
def expired_lot(depot):
    return put_lot(depot["product"], "SCR-1", 30, "A-01", status="expired", expiry=-10)


def test_the_requester_in_both_groups_cannot_approve_their_own_destruction(expired_lot, user):
    instance = start(user, "head")  # the head of QA is in qa (request) and qa_management (approve)
    complete(instance.id, "request", REQUEST, user("head"))
    with pytest.raises(PermissionDenied, match="Four-eyes rule: you completed an earlier step"):
        complete(instance.id, "approve", {"approval": "approve"}, user("head"), demo.DEMO_PASSWORD)
    db.session.rollback()
    assert level("SCR-1", "A-01") == 30
    complete(instance.id, "approve", {"approval": "approve"}, user("admin"), demo.DEMO_PASSWORD)
    assert level("SCR-1", "A-01") == 0

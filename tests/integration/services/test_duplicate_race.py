"""Two people saving the same new record at the same moment: one is saved, the other is refused with a clear
conflict (409) - never a database error - and nothing is doubled."""
from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError

from app.exceptions import Conflict, FormInvalid
from app.extensions import db
from app.models import Supplier
from app.services import users
from app.services.lots import imports
from app.services.workflow.transaction import atomic
from tests.integration.services.scenarios import count, run_together

ROUNDS = 5


def _create_as(username: str, code: str):
    return lambda: imports.create_record("suppliers", {"code": code, "name": f"Supplier {code}"},
                                         users.get_by_username(username))


def test_simultaneous_creations_of_one_code_save_it_once_and_refuse_the_other_clearly(app, seeded):
    db.session.commit()  # hold no transaction (on SQLite, no write lock) while the racers run
    for round_ in range(ROUNDS):
        code = f"RACE-{round_}"
        results = run_together(app, [_create_as("qa", code), _create_as("head", code)])
        saved = [result for result in results if isinstance(result, int)]
        refused = [result for result in results if isinstance(result, (Conflict, FormInvalid))]
        assert len(saved) == 1 and len(refused) == 1, results
        assert count(Supplier, Supplier.code == code) == 1
        db.session.commit()  # hold no transaction (on SQLite, no write lock) while the next racers run


def test_a_unique_key_taken_meanwhile_is_a_conflict_and_other_integrity_errors_stay_errors(app, seeded):
    db.session.add(Supplier(code="TAKEN", name="First"))
    db.session.commit()
    with pytest.raises(Conflict, match="Someone saved the same record at the same time"), atomic():
        db.session.add(Supplier(code="TAKEN", name="Second"))
    assert count(Supplier, Supplier.code == "TAKEN") == 1
    with pytest.raises(IntegrityError), atomic():  # a missing required value is a bug to see, not a race
        db.session.add(Supplier(code=None, name="No code"))

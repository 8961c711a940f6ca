"""Schemathesis over the whole OpenAPI of /api/v1, as an admin and as a staff user: no input gives a server error,
and every answer (2xx and errors alike) has the status, content type and body the spec declares.

Bounded so CI stays fast (about a minute of CPU per user): a fixed seed (derandomized), the coverage phase's
boundary values plus a few generated examples per operation, no shrinking. One database per user for the whole
module, seeded with lot data, a recall and a CAPA so that some generated ids exist; requests pile up in it as in
a real fuzzing run.
"""
from __future__ import annotations

import os

import pytest
import schemathesis
from argon2 import PasswordHasher
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app import create_app
from app.extensions import db
from app.services import demo, users
from app.services.lots import imports
from app.services.procedures import recalls
from app.services.workflow import instances, processes
from tests.conftest import ROOT, _reset_database

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = 5  # generated per operation, user and mode, on top of the coverage phase's boundary values

# The spec does not depend on the database: read it once, from an app on an empty in-memory database.
schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json",
                                        create_app("testing", {"SQLALCHEMY_DATABASE_URI": "sqlite://"}))

RECORDS = [
    ("suppliers", {"code": "S1", "name": "Resin Co", "email": "s1@example.com"}),
    ("products", {"gtin": "06901234567892", "name": "Infusion set", "device_class": "II", "sterile": "no"}),
    ("material_lots", {"supplier_code": "S1", "material": "PVC resin", "lot_number": "M1",
                       "received_on": "2026-05-01"}),
    ("product_lots", {"gtin": "06901234567892", "lot_number": "L1", "quantity": "500", "status": "released",
                      "manufactured_on": "2026-06-01", "expiry_on": "2029-05-31"}),
    ("product_lots", {"gtin": "06901234567892", "lot_number": "L2", "quantity": "300"}),
    ("genealogy", {"product_lot": "L1", "material": "PVC resin", "material_lot": "M1", "quantity": "1"}),
    ("customers", {"code": "D1", "name": "Jiangsu Medical Distribution", "kind": "distributor",
                   "email": "d1@example.com"}),
    ("customers", {"code": "H1", "name": "Suzhou City Hospital", "kind": "hospital", "parent_code": "D1"}),
    ("shipments", {"product_lot": "L1", "customer_code": "D1", "quantity": "100", "shipped_on": "2026-07-01"}),
    ("shipments", {"product_lot": "L1", "customer_code": "H1", "quantity": "20", "shipped_on": "2026-07-03",
                   "from_customer_code": "D1"}),
    ("stock", {"product_lot": "L1", "location": "WH-A", "quantity": "380"}),
    ("serials", {"product_lot": "L2", "serial": "SN0001"}),
    ("inspections", {"stage": "final", "product_lot": "L2", "result": "pass", "inspected_on": "2026-06-02"}),
    ("sensors", {"code": "T1", "location": "WH-A", "interval_seconds": "300"}),
]


def _fill() -> None:
    """The demo users and the shipped processes; lot data through the import rules, a recall of L1 and a CAPA."""
    demo.seed_people()
    processes.deploy_directory(ROOT / "processes", None, "test setup",
                               release="Initial release of the shipped procedures at installation (test setup)")
    qa = users.get_by_username("qa")
    ids = {(kind, data.get("lot_number")): imports.create_record(kind, data, qa) for kind, data in RECORDS}
    recalls.start_recall(qa, lot_id=ids["product_lots", "L1"])
    instances.start_instance("capa", qa, {}, title="A CAPA to fuzz")


@pytest.fixture(scope="module", params=["admin", "qa"], ids=["admin", "staff"])
def fuzzed(request, tmp_path_factory):
    """An app on its own seeded database and the Authorization header of an admin's or a staff user's token
    (configured like tests/conftest.py's app fixture, but built once for all the operations)."""
    folder = tmp_path_factory.mktemp(f"fuzz-{request.param}")
    uri = os.environ.get("TEST_DATABASE_URL") or f"sqlite:///{folder / 'test.sqlite'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(users, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
        fuzz_app = create_app("testing", {"SQLALCHEMY_DATABASE_URI": uri, "SMTP_PORT": 1, "PLANT_TIME_ZONE": "UTC",
                                          "AUDIT_CHECKPOINT_DIR": folder / "checkpoints"})
        with fuzz_app.app_context():
            _reset_database()
            _fill()
            token = users.issue_token(request.param)
            db.session.remove()
        # Requests run in their own app contexts, as on a server.
        yield fuzz_app, {"Authorization": f"Bearer {token}"}
        with fuzz_app.app_context():
            db.session.remove()
            db.engine.dispose()


@schema.parametrize()
@settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
          phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
def test_no_server_error_and_answers_as_documented(case, fuzzed):
    fuzz_app, bearer = fuzzed
    token_id = (case.path_parameters or {}).get("token_id")
    if isinstance(token_id, int) and token_id <= 10:
        case.path_parameters["token_id"] = token_id + 10**6  # revoking our own token would end the run early
    case.call_and_validate(app=fuzz_app, headers=bearer, checks=CHECKS)

"""An event recorded with no reason (None, as the supplier review passes it) is stored and hashed as the empty
reason, so it is saved and the trail still verifies."""
from __future__ import annotations

from app.extensions import db
from app.models import AuditEvent
from app.services.evidence import audit
from tests.conftest import T0


def test_an_event_without_a_reason_is_saved_and_the_chain_verifies(app, seeded, user):
    audit.record(user("qa"), "supplier_review.started", "supplier", 1, new={"code": "SQ1"}, reason=None, at=T0)
    audit.record(user("qa"), "supplier.status_changed", "supplier", 1, reason="", at=T0)
    db.session.commit()
    reasons = db.session.scalars(db.select(AuditEvent.reason).where(AuditEvent.object_type == "supplier")).all()
    assert reasons == ["", ""]
    report = audit.verify()
    assert report.ok, report

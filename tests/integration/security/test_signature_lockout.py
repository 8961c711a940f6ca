"""A wrong password at an e-signature is counted and kept even though the signing is refused, the refusal says
what was not signed, and the account locks after too many: told in the signer's language."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest
from flask_babel import refresh

from app.exceptions import SignatureRejected
from app.extensions import db
from app.models import AuditEvent, User
from app.services.demo import DEMO_PASSWORD
from app.services.evidence import signatures

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def _sign(app, signer: User, password: str, lang: str) -> str:
    with app.test_request_context(f"/?lang={lang}"):
        refresh()
        try:
            signatures.authenticate_signer(signer, password, NOW, "The password is wrong; the batch was not signed.")
        except SignatureRejected as refused:
            db.session.rollback()  # what a refused use case does: its own work goes, the counted failure stays
            return refused.message
        db.session.commit()  # the use case goes on and commits with its own work
    return ""


@pytest.mark.parametrize("lang, failed, locked, still_locked", [
    ("en", "The password is wrong; the batch was not signed.", "Too many failed attempts: the account is locked.",
     "The account is locked until 2026-12-07 09:15 UTC."),
    ("zh_CN", "The password is wrong; the batch was not signed.", "失败次数过多：账户已锁定。",
     "账户已锁定，至 2026-12-07 09:15（UTC）解锁。"),
])
def test_wrong_signature_passwords_are_kept_and_lock_the_account(app, seeded, user, lang, failed, locked,
                                                                  still_locked):
    app.config["LOGIN_MAX_FAILURES"], app.config["LOGIN_LOCKOUT_MINUTES"] = 3, 15
    signer = user("qa")
    assert _sign(app, signer, "wrong", lang) == failed
    assert _sign(app, signer, "wrong", lang) == failed
    assert _sign(app, signer, "wrong", lang) == locked
    assert _sign(app, signer, DEMO_PASSWORD, lang) == still_locked  # the right password waits for the lock to end
    db.session.expire_all()
    assert db.session.get(User, signer.id).locked_until is not None
    failures = db.session.query(AuditEvent).filter_by(action="signature.failed", object_id=str(signer.id)).count()
    assert failures == 3


def test_the_right_password_signs_and_clears_the_count(app, seeded, user):
    signer = user("qa")
    assert _sign(app, signer, "wrong", "en")
    assert _sign(app, signer, DEMO_PASSWORD, "en") == ""
    db.session.expire_all()
    assert db.session.get(User, signer.id).failed_logins == 0

"""The instance page's "Move to another version" form: process owners move a running instance with a reason."""
from __future__ import annotations

from app.extensions import db
from app.models import ProcessInstance
from tests.conftest import login
from tests.integration.diagrams import capa_variant
from tests.integration.studio.capa_versions import WITHOUT_DESCRIBE, capa_v2
from tests.integration.studio.test_studio_service import audit_events, deploy_variant, start_capa


def _version(instance_id: int) -> int:
    db.session.expire_all()
    return db.session.get(ProcessInstance, instance_id).version.version


def test_a_process_owner_moves_an_instance_from_its_page(client, seeded, user):
    instance = start_capa(user)
    deploy_variant(user, capa_v2(), note="Triage step")
    login(client, "owner")
    page = client.get(f"/instances/{instance.id}").get_data(as_text=True)
    assert 'data-testid="migrate-instance"' in page and "v2 - Triage step" in page

    answer = client.post(f"/instances/{instance.id}/migrate", data={"version": "2", "reason": "Triage for all"},
                         follow_redirects=True)

    assert "The instance now runs on version 2." in answer.get_data(as_text=True)
    assert _version(instance.id) == 2
    assert [event.reason for event in audit_events("instance.migrated")] == ["Triage for all"]


def test_a_refused_move_says_why_and_changes_nothing(client, seeded, user):
    instance = start_capa(user)
    deploy_variant(user, capa_variant(WITHOUT_DESCRIBE))
    login(client, "owner")

    answer = client.post(f"/instances/{instance.id}/migrate", data={"version": "2", "reason": "Drop a step"},
                         follow_redirects=True).get_data(as_text=True)

    assert "Not moved:" in answer and "describe_problem" in answer
    missing_reason = client.post(f"/instances/{instance.id}/migrate", data={"version": "2", "reason": " "},
                                 follow_redirects=True).get_data(as_text=True)
    assert "Say why this instance moves to another version." in missing_reason
    assert _version(instance.id) == 1 and audit_events("instance.migrated") == []


def test_staff_see_no_move_form_and_cannot_move(client, seeded, user):
    instance = start_capa(user)
    deploy_variant(user, capa_v2())
    login(client, "head")
    assert 'data-testid="migrate-instance"' not in client.get(f"/instances/{instance.id}").get_data(as_text=True)
    answer = client.post(f"/instances/{instance.id}/migrate", data={"version": "2", "reason": "x"},
                         follow_redirects=True)
    assert "Not moved:" in answer.get_data(as_text=True) and _version(instance.id) == 1
